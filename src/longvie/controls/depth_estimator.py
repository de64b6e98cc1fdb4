"""``longvie depth-estimator``: train the small depth network on the rendered ground truth.

Training frames are the curated *train* clips of engine sources (rendered videos), each paired
with its ground-truth disparity mapped exactly like the clip's pixels. Held-out videos (benchmark,
val) are never seen: the accuracy in ``reports/controls.json`` is measured on them. With real
Depth Anything weights configured (``controls.depth.kind=transformers``) this step is not needed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from longvie.atomic import replace_directory, write_json_atomically
from longvie.config import LongvieConfig
from longvie.errors import LongvieError
from longvie.plots import plot_losses
from longvie.step_lock import locked_step

REPORT_NAME = "depth_estimator.json"
TRAINING_NAME = "training.json"
PLOT_NAME = "depth_estimator_loss.png"


def _training_rows(config: LongvieConfig) -> list[dict]:
    from longvie.controls.extract import plan_sources
    from longvie.controls.run import load_clip_rows

    plans = plan_sources(load_clip_rows(config), config)
    rows = [row for p in plans if p.kind == "engine" and p.split == "train" for row in p.clips]
    if not rows:
        raise LongvieError(
            "no training clips with ground truth (engine sources in the train split): render "
            "data with `longvie synth`, or configure controls.depth.kind=transformers"
        )
    return rows


def _fingerprint(config: LongvieConfig, rows: list[dict]) -> str:
    digest = hashlib.md5(json.dumps(config.controls.depth_training.__dict__, sort_keys=True,
                                    default=str).encode())
    for row in rows:
        digest.update(f"{row['clip_id']}|{row['source_frames']}".encode())
        digest.update((Path(config.paths.curated) / row["path"]).read_bytes())
    return digest.hexdigest()


def training_frames(config: LongvieConfig, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """RGB (N, H, W, 3) uint8 and ground-truth disparity (N, H, W), at most ``max_frames``.

    The first frame of every clip but a segment's first repeats the previous clip's last frame
    (1-frame overlap), so it is left out.
    """
    from longvie.controls import engine
    from longvie.video.io import read_video

    rng = np.random.default_rng(config.controls.depth_training.seed)
    rgb, disparity = [], []
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source_path"], []).append(row)
    raw = Path(config.paths.raw)
    for source_path, source_rows in by_source.items():
        gt = engine.load_source_groundtruth(raw, source_path)
        for row in source_rows:
            frames, _ = read_video(Path(config.paths.curated) / row["path"])
            skip = config.curation.clip_overlap if row["clip_index"] else 0
            rgb.append(frames[skip:])
            disparity.append(engine.clip_disparity(gt, row)[skip:])
    rgb_all, disparity_all = np.concatenate(rgb), np.concatenate(disparity)
    limit = config.controls.depth_training.max_frames
    if len(rgb_all) > limit:
        keep = np.sort(rng.choice(len(rgb_all), size=limit, replace=False))
        rgb_all, disparity_all = rgb_all[keep], disparity_all[keep]
    return rgb_all, disparity_all


@locked_step("depth_estimator", writes=lambda c: [c.paths.models, c.paths.reports])
def train_depth_estimator(config: LongvieConfig, progress: bool = True, force: bool = False) -> dict:
    """Train (unless the saved model was trained on the same data and settings) and save."""
    from longvie.controls.depth_net import train_depth_net

    started = time.perf_counter()
    training = config.controls.depth_training
    out_dir = Path(config.controls.depth.model)
    rows = _training_rows(config)
    stamp = _fingerprint(config, rows)
    record_path = out_dir / TRAINING_NAME
    if not force and record_path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("fingerprint") == stamp:
            report = {**_reported(record), "skipped": True, "model": str(out_dir),
                      "seconds": round(time.perf_counter() - started, 2)}
            plot = Path(config.paths.reports) / PLOT_NAME
            if "loss_per_step" in record and not (plot.is_file()
                                                  and plot.with_suffix(".csv").is_file()):
                # A run killed after the model was swapped in, before its plot was written.
                plot_losses(record["loss_per_step"], plot, "depth estimator")
            _write_report(config, report, overwrite=False)
            return report
    rgb, disparity = training_frames(config, rows)
    model, history = train_depth_net(rgb, disparity, training, progress=progress)
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    losses = history["loss"]
    tail = max(1, len(losses) // 20)
    record = {
        "fingerprint": stamp,
        "steps": history["steps"],
        "train_frames": int(len(rgb)),
        "train_clips": len(rows),
        "first_loss": float(np.mean(losses[:tail])),
        "final_loss": float(np.mean(losses[-tail:])),
        "train_seconds": round(history["seconds"], 2),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "losses": _thinned(losses),
        # Every step's loss, so that a rerun can draw the plot a killed run did not.
        "loss_per_step": [round(float(value), 6) for value in losses],
    }
    (staging / TRAINING_NAME).write_text(json.dumps(record, indent=2) + "\n")
    replace_directory(staging, out_dir)
    plot_losses(record["loss_per_step"], Path(config.paths.reports) / PLOT_NAME,
                "depth estimator")
    report = {**_reported(record), "skipped": False, "model": str(out_dir),
              "seconds": round(time.perf_counter() - started, 2)}
    _write_report(config, report, overwrite=True)
    return report


def _reported(record: dict) -> dict:
    """The training record as the report shows it (the loss curve thinned)."""
    return {k: v for k, v in record.items() if k != "loss_per_step"}


def _write_report(config: LongvieConfig, report: dict, overwrite: bool) -> None:
    """``reports/depth_estimator.json`` (a DVC metric): rewritten only when the model changed."""
    path = Path(config.paths.reports) / REPORT_NAME
    if path.is_file() and not overwrite:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomically(path, report)


def _thinned(losses: list[float], points: int = 200) -> list[float]:
    step = max(1, len(losses) // points)
    return [round(float(np.mean(losses[i : i + step])), 5) for i in range(0, len(losses), step)]



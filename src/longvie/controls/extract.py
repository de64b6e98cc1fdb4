"""Controls of one source video: three streaming passes over its curated clips.

1. per clip: disparity (ground truth or depth model) to a scratch file, tracks of a grid of
   queries on the clip's first frame (ground truth or KLT); held-out rendered videos are also run
   through the estimators and compared with the ground truth;
2. the video's global disparity percentiles from the scratch files (range pass, histogram pass);
3. per clip: normalised 16-bit depth and the point-map video, written beside the raw tracks.

Memory holds one clip at a time. The output folder appears atomically (staging folder, rename),
so a crash leaves the previous output or nothing, never a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from longvie.atomic import replace_directory
from longvie.config import LongvieConfig
from longvie.config.schema import ControlsConfig
from longvie.controls.accuracy import DepthStats, TrackingStats
from longvie.controls.depth_models import load_depth_estimator
from longvie.controls.klt import track_klt
from longvie.controls.normalise import (
    CONVENTION,
    DepthBounds,
    colour_inverse_depth,
    from_uint16,
    global_bounds,
    normalise_disparity,
    to_uint16,
)
from longvie.controls.pointmap import rectangle_half_sizes, render_point_map, track_colours
from longvie.errors import LongvieError
from longvie.plots import write_gif
from longvie.synth.groundtruth import GroundTruth, grid_queries
from longvie.video.io import VideoReadError, read_video

FORMAT_VERSION = 1
META_NAME = "meta.json"
PREVIEW_NAME = "preview.gif"


@dataclass
class SourcePlan:
    """One source video's clips and how its controls are made."""

    source_id: str
    source_path: str
    split: str
    kind: str  # "engine" | "estimated"
    evaluate: bool  # measure the estimators against the ground truth (held-out rendered video)
    clips: list[dict] = field(default_factory=list)


def source_kind(source_path: str, controls: ControlsConfig) -> str:
    """The configured source of a raw file's controls, by its first folder under paths.raw."""
    folder = Path(source_path).parts[0] if len(Path(source_path).parts) > 1 else ""
    return controls.source_by_dir.get(folder, controls.default_source)


def plan_sources(clips: list[dict], config: LongvieConfig) -> list[SourcePlan]:
    """Group clip-table rows by source video, in clip order."""
    plans: dict[str, SourcePlan] = {}
    for row in sorted(clips, key=lambda r: (r["source_id"], r["segment_index"], r["clip_index"])):
        plan = plans.get(row["source_id"])
        if plan is None:
            kind = source_kind(row["source_path"], config.controls)
            plan = SourcePlan(
                source_id=row["source_id"],
                source_path=row["source_path"],
                split=row["split"],
                kind=kind,
                evaluate=kind == "engine" and row["split"] in config.controls.evaluate_splits,
            )
            plans[row["source_id"]] = plan
        plan.clips.append(row)
    return list(plans.values())


def control_file(row: dict) -> str:
    """``clips/<source>/sSSS_cCCCC.mp4`` -> ``<source>/sSSS_cCCCC.npz`` under paths.controls."""
    return f"{row['source_id']}/{Path(row['path']).stem}.npz"


class Estimators:
    """The depth model and tracker of the ``estimated`` source, loaded once per process."""

    def __init__(self, config: LongvieConfig) -> None:
        self.config = config
        self._depth = None

    def disparity(self, frames: np.ndarray) -> np.ndarray:
        if self._depth is None:

            self._depth = load_depth_estimator(self.config.controls.depth)
        batch = max(1, self.config.controls.depth.batch_size)
        parts = [self._depth.predict(frames[i : i + batch]) for i in range(0, len(frames), batch)]
        return np.concatenate(parts).astype(np.float32)

    def tracks(self, frames: np.ndarray, query_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return track_klt(frames, query_xy, self.config.controls.tracker)


def clips_digest(plan: SourcePlan, curated: Path) -> str:
    """md5 of the source's curated clips (ids, frame ranges, bytes): what its controls are
    computed from. Curation records it per source and every control output records its own,
    so the retraining sensor sees a video that changed in place without reading any file."""
    digest = hashlib.md5()
    for row in plan.clips:
        digest.update(f"{row['clip_id']}|{list(row['source_frames'])}".encode())
        digest.update((curated / row["path"]).read_bytes())
    return digest.hexdigest()


def fingerprint(plan: SourcePlan, config: LongvieConfig) -> str:
    """Changes when anything the output depends on changes: clips' bytes, config, model, code."""
    digest = hashlib.md5()
    controls = config.controls
    settings = {
        "format": FORMAT_VERSION,
        "kind": plan.kind,
        "evaluate": plan.evaluate,
        "video": [config.video.width, config.video.height, config.video.fps],
        "grid": controls.track_grid,
        "percentiles": [controls.depth_low_percentile, controls.depth_high_percentile,
                        controls.colour_low_percentile, controls.colour_high_percentile,
                        controls.histogram_bins],
    }
    uses_models = plan.kind == "estimated" or plan.evaluate
    if uses_models:
        # The model enters by its files' bytes (below), not by its path: moving a project
        # (or a model folder) does not make outputs stale.
        settings["depth"] = [controls.depth.kind, controls.depth.output]
        settings["tracker"] = dict(sorted(vars(controls.tracker).items()))
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(clips_digest(plan, Path(config.paths.curated)).encode())
    if plan.kind == "engine":
        from longvie.controls.engine import sidecar_path

        sidecar = sidecar_path(Path(config.paths.raw), plan.source_path)
        if sidecar.is_file():
            digest.update(sidecar.read_bytes())
    model_dir = Path(controls.depth.model)
    if uses_models and not model_dir.is_dir():
        digest.update(f"hub:{controls.depth.model}".encode())  # a hub id, cached elsewhere
    if uses_models and model_dir.is_dir():
        for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
            digest.update(path.read_bytes())
    return digest.hexdigest()


def read_meta(out_dir: Path) -> dict | None:
    path = out_dir / META_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _read_clip(curated: Path, row: dict) -> np.ndarray:
    path = curated / row["path"]
    try:
        frames, _ = read_video(path)
    except (OSError, VideoReadError) as error:
        raise LongvieError(f"{path}: cannot read the curated clip: {error}") from error
    if len(frames) != int(row["num_frames"]):
        raise LongvieError(
            f"{path}: decoded {len(frames)} frames, the clip table says {row['num_frames']}"
        )
    return frames


def _sample(values: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """values (H, W) at the pixels nearest to xy (N, 2), clamped to the image."""
    height, width = values.shape
    x = np.clip(np.round(xy[:, 0]).astype(np.int64), 0, width - 1)
    y = np.clip(np.round(xy[:, 1]).astype(np.int64), 0, height - 1)
    return values[y, x]


class _Scratch:
    """Per-clip arrays of pass 1, kept on disk until pass 3."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def save(self, index: int, name: str, array: np.ndarray) -> None:
        np.save(self.folder / f"{index:05d}_{name}.npy", array)

    def load(self, index: int, name: str, mmap: bool = False) -> np.ndarray:
        return np.load(self.folder / f"{index:05d}_{name}.npy", mmap_mode="r" if mmap else None)

    def chunks(self, count: int, name: str) -> Iterator[np.ndarray]:
        for index in range(count):
            yield self.load(index, name, mmap=True)


def extract_source(
    plan: SourcePlan,
    config: LongvieConfig,
    estimators: Estimators | None = None,
    stamp: str | None = None,
) -> dict:
    """Write ``paths.controls/<source_id>/`` and return its metadata (also in meta.json).

    ``stamp`` is the source's :func:`fingerprint` when the caller has already computed it.
    """
    started = time.perf_counter()
    estimators = estimators or Estimators(config)
    out_root = Path(config.paths.controls)
    final = out_root / plan.source_id
    staging = out_root / f".{plan.source_id}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        meta = _extract_into(plan, config, estimators, staging)
        meta["fingerprint"] = stamp or fingerprint(plan, config)
        meta["seconds"] = round(time.perf_counter() - started, 3)
        (staging / META_NAME).write_text(json.dumps(meta, indent=2) + "\n")
        replace_directory(staging, final)
        return meta
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_into(
    plan: SourcePlan, config: LongvieConfig, estimators: Estimators, staging: Path
) -> dict:
    from longvie.controls import engine

    if not plan.clips:
        raise LongvieError(f"source {plan.source_id} has no curated clips")
    video = config.video
    queries = grid_queries(video.width, video.height, config.controls.track_grid)
    gt: GroundTruth | None = None
    if plan.kind == "engine" or plan.evaluate:
        gt = engine.load_source_groundtruth(Path(config.paths.raw), plan.source_path)
    scratch = _Scratch(staging / ".scratch")
    tracking = TrackingStats() if plan.evaluate else None
    timings = {"depth_seconds": 0.0, "tracks_seconds": 0.0, "frames": 0,
               "evaluation_depth_seconds": 0.0, "evaluation_tracks_seconds": 0.0}

    # Pass 1: raw disparity and tracks per clip (and the estimators on held-out ground truth).
    preview_rgb = _raw_pass(plan, config, estimators, gt, queries, scratch, tracking, timings)

    # Pass 2: the global bounds of the whole video (and of the prediction, when evaluating).
    count = len(plan.clips)
    percentiles = _percentile_settings(config.controls)
    bounds = global_bounds(lambda: scratch.chunks(count, "disparity"), **percentiles)
    predicted_bounds = (
        global_bounds(lambda: scratch.chunks(count, "predicted"), **percentiles)
        if plan.evaluate
        else None
    )

    # Pass 3: normalised depth + point maps per clip; the preview from the first frames.
    depth_stats = DepthStats() if plan.evaluate else None
    clips_meta, preview = _normalised_pass(plan, config, queries, scratch, staging,
                                           (bounds, predicted_bounds), depth_stats, preview_rgb)
    shutil.rmtree(scratch.folder)
    write_gif(staging / PREVIEW_NAME, preview[: config.controls.preview_frames], video.fps)

    meta = {
        "format": FORMAT_VERSION,
        "source_id": plan.source_id,
        "source_path": plan.source_path,
        "split": plan.split,
        "kind": plan.kind,
        "convention": CONVENTION,
        "bounds": bounds.as_dict(),
        "percentiles": percentiles,
        "frames": timings["frames"],
        "clips": clips_meta,
        "queries": int(len(queries)),
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "depth_model": (
            {"kind": config.controls.depth.kind, "model": config.controls.depth.model}
            if plan.kind == "estimated" or plan.evaluate
            else None
        ),
    }
    if plan.evaluate:
        meta["accuracy"] = {"tracking": tracking.to_json(), "depth": depth_stats.to_json(),
                            "predicted_bounds": predicted_bounds.as_dict()}
    return meta


def _raw_pass(plan: SourcePlan, config: LongvieConfig, estimators: Estimators,
              gt: GroundTruth | None, queries: np.ndarray, scratch: _Scratch,
              tracking: TrackingStats | None, timings: dict) -> list[np.ndarray]:
    """Raw disparity and tracks of every clip into ``scratch`` (with ``plan.evaluate``, the
    estimators' too, scored against the ground truth); returns the first frames' RGB kept for
    the preview."""
    from longvie.controls import engine

    curated = Path(config.paths.curated)
    preview_rgb: list[np.ndarray] = []
    for index, row in enumerate(plan.clips):
        frames = _read_clip(curated, row)
        timings["frames"] += len(frames)
        if len(preview_rgb) < config.controls.preview_frames:
            preview_rgb.extend(frames[config.curation.clip_overlap if index else 0 :])
        tick = time.perf_counter()
        if plan.kind == "engine":
            disparity = engine.clip_disparity(gt, row)
        else:
            disparity = estimators.disparity(frames)
        timings["depth_seconds"] += time.perf_counter() - tick
        tick = time.perf_counter()
        if plan.kind == "engine":
            xy, visible = engine.clip_tracks(gt, row, queries)
        else:
            xy, visible = estimators.tracks(frames, queries)
        timings["tracks_seconds"] += time.perf_counter() - tick
        scratch.save(index, "disparity", disparity)
        scratch.save(index, "xy", xy)
        scratch.save(index, "visible", visible)
        if plan.evaluate:
            tick = time.perf_counter()
            scratch.save(index, "predicted", estimators.disparity(frames))
            timings["evaluation_depth_seconds"] += time.perf_counter() - tick
            tick = time.perf_counter()
            predicted_xy, predicted_visible = estimators.tracks(frames, queries)
            timings["evaluation_tracks_seconds"] += time.perf_counter() - tick
            tracking.add(predicted_xy, predicted_visible, xy, visible)
    return preview_rgb


def _normalised_pass(plan: SourcePlan, config: LongvieConfig, queries: np.ndarray,
                     scratch: _Scratch, staging: Path, bounds: tuple,
                     depth_stats: DepthStats | None, preview_rgb: list[np.ndarray]
                     ) -> tuple[list[dict], list[np.ndarray]]:
    """Each clip's normalised depth and point map written to ``staging`` (``bounds``: the
    video's, and the prediction's when evaluating); returns the clips' entries for ``meta.json``
    and the preview frames."""
    bounds, predicted_bounds = bounds
    preview: list[np.ndarray] = []
    clips_meta = []
    for index, row in enumerate(plan.clips):
        disparity = scratch.load(index, "disparity")
        xy, visible = scratch.load(index, "xy"), scratch.load(index, "visible")
        depth = to_uint16(normalise_disparity(disparity, bounds))
        point_map = _point_map(disparity, xy, visible, queries, bounds)
        target = staging / Path(control_file(row)).name
        np.savez_compressed(
            target, depth=depth, point_map=point_map, tracks_xy=xy.astype(np.float32),
            tracks_visible=visible, query_xy=queries,
        )
        clips_meta.append({"clip_id": row["clip_id"], "file": target.name,
                           "num_frames": int(row["num_frames"])})
        if plan.evaluate:
            predicted = normalise_disparity(scratch.load(index, "predicted"), predicted_bounds)
            depth_stats.add(predicted, from_uint16(depth), bounds)
        skip = config.curation.clip_overlap if index else 0
        for t in range(skip, len(depth)):
            if len(preview) >= len(preview_rgb):
                break
            preview.append(_preview_frame(preview_rgb[len(preview)], depth[t], point_map[t]))
    return clips_meta, preview


def _percentile_settings(controls: ControlsConfig) -> dict:
    return {
        "depth_percentiles": (controls.depth_low_percentile, controls.depth_high_percentile),
        "colour_percentiles": (controls.colour_low_percentile, controls.colour_high_percentile),
        "bins": controls.histogram_bins,
    }


def _point_map(
    disparity: np.ndarray,
    xy: np.ndarray,
    visible: np.ndarray,
    queries: np.ndarray,
    bounds: DepthBounds,
) -> np.ndarray:
    """The clip's point map: colours from the query frame, per-frame far-to-near order."""
    height, width = disparity.shape[1:]
    colours = track_colours(queries, colour_inverse_depth(_sample(disparity[0], queries), bounds),
                            width, height)
    order = np.stack([_sample(disparity[t], xy[t]) for t in range(len(xy))])
    return render_point_map(xy, visible, colours, rectangle_half_sizes(queries), order,
                            height, width)


def _preview_frame(rgb: np.ndarray, depth: np.ndarray, point_map: np.ndarray) -> np.ndarray:
    grey = np.round(from_uint16(depth) * 255).astype(np.uint8)
    return np.concatenate([rgb, np.repeat(grey[..., None], 3, axis=2), point_map], axis=1)



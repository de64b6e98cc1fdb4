"""``render_dataset``: the whole rendered set under ``paths.raw/<synth.subdir>``, idempotently.

The set is rendered into a hidden sibling folder and renamed into place at the end, so a killed
run never leaves a half-written ``<subdir>``. ``manifest.json`` records a fingerprint of every
setting that changes the bytes plus each file's md5 and size: a rerun with the same settings and
intact files does nothing, anything else is an error unless ``synth.force`` is set. Nothing in
``paths.raw`` outside ``<subdir>`` (and its temporary sibling) is ever touched.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from longvie.atomic import replace_directory
from longvie.config.schema import LongvieConfig, SynthConfig
from longvie.errors import LongvieError
from longvie.step_lock import locked_step
from longvie.synth.render import SPLITS, render_video, video_frames
from longvie.synth.writer import write_video

MANIFEST = "manifest.json"
# Bump when the renderer's output changes for the same settings, so old sets are not reused.
RENDER_FORMAT = "longvie-synth/2"
# Settings that decide how the work is done, not what is written.
_NOT_FINGERPRINTED = ("workers", "force", "subdir")


class SynthError(LongvieError):
    """The rendered set cannot be produced or reused as asked (the message says what to do).

    A :class:`LongvieError` (hence a RuntimeError), so the CLI prints the message, not a traceback.
    """


def fingerprint(synth: SynthConfig) -> str:
    """sha256 of the format version and every synth setting that affects the written bytes."""
    settings = {k: v for k, v in asdict(synth).items() if k not in _NOT_FINGERPRINTED}
    text = json.dumps({"format": RENDER_FORMAT, "synth": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stem(index: int) -> str:
    return f"scene_{index:04d}"


def _render_one(synth: SynthConfig, split: str, index: int, folder: str) -> tuple[list[str], int]:
    """Render and write one video (runs in a worker); returns its relative paths and frame count."""
    video = render_video(synth, split, index)
    paths = write_video(video, Path(folder) / split, _stem(index), synth.crf)
    return [f"{split}/{p.name}" for p in paths], video.num_frames


def _check_existing(out_dir: Path, expected: str) -> str | None:
    """None when ``out_dir`` holds a complete set with fingerprint ``expected``, else the reason."""
    manifest_path = out_dir / MANIFEST
    if not manifest_path.is_file():
        return "it has no manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        return f"its manifest.json is unreadable ({error})"
    if manifest.get("fingerprint") != expected:
        return "it was rendered with different synth settings"
    for entry in manifest.get("files", []):
        path = out_dir / entry["path"]
        if not path.is_file():
            return f"{entry['path']} is missing"
        if path.stat().st_size != entry["size"] or _md5(path) != entry["md5"]:
            return f"{entry['path']} has changed"
    return None


def _jobs(synth: SynthConfig) -> list[tuple[str, int]]:
    """(split, index) of every video, longest first so the pool's tail is short."""
    counts = {"train": synth.train_videos, "benchmark": synth.benchmark_videos}
    jobs = [(split, index) for split in SPLITS for index in range(counts[split])]
    return sorted(jobs, key=lambda job: -video_frames(synth, job[0]))


def _render_all(synth: SynthConfig, folder: Path) -> tuple[list[str], int]:
    jobs = _jobs(synth)
    files: list[str] = []
    frames = 0
    bar = tqdm(total=len(jobs), desc="synth", unit="video")
    try:
        if synth.workers == 1 or len(jobs) <= 1:
            for split, index in jobs:
                written, count = _render_one(synth, split, index, str(folder))
                files += written
                frames += count
                bar.update()
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=synth.workers, mp_context=context) as pool:
                futures = [pool.submit(_render_one, synth, s, i, str(folder)) for s, i in jobs]
                try:
                    for future in as_completed(futures):
                        written, count = future.result()
                        files += written
                        frames += count
                        bar.update()
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)  # fail fast: skip queued videos
                    raise
    finally:
        bar.close()
    return sorted(files), frames


def _write_manifest(folder: Path, synth: SynthConfig, files: list[str], frames: int) -> None:
    settings = {k: v for k, v in asdict(synth).items() if k not in _NOT_FINGERPRINTED}
    manifest = {
        "fingerprint": fingerprint(synth),
        "format": RENDER_FORMAT,
        "synth": settings,
        "videos": synth.train_videos + synth.benchmark_videos,
        "frames": frames,
        "files": [
            {"path": name, "md5": _md5(folder / name), "size": (folder / name).stat().st_size}
            for name in files
        ],
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _video_seconds(synth: SynthConfig) -> float:
    return sum(video_frames(synth, split) / synth.fps for split, _ in _jobs(synth))


def _remove_leftovers(out_dir: Path) -> None:
    """Delete temporary siblings of ``out_dir`` left by runs that were killed (ours alone)."""
    for pattern in (f".{out_dir.name}.partial-*", f".{out_dir.name}.previous"):
        for leftover in out_dir.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


def _output_folder(cfg: LongvieConfig) -> Path:
    """``paths.raw/<subdir>``; the subdir must be a real sub-folder, since it may be deleted."""
    sub = Path(cfg.synth.subdir)
    if sub.is_absolute() or not sub.parts or any(part in ("", ".", "..") for part in sub.parts):
        raise SynthError(
            f"synth.subdir={cfg.synth.subdir!r} must be a relative folder name inside paths.raw "
            "(it is deleted and rewritten on synth.force=true)"
        )
    return Path(cfg.paths.raw) / sub


@locked_step("synth", writes=lambda c: [c.paths.raw])
def render_dataset(cfg: LongvieConfig) -> dict:
    """Render (or verify and reuse) the synthetic set; returns a small report.

    Report keys: videos, frames, seconds (wall time), video_seconds, out_dir, skipped.
    """
    synth = cfg.synth
    start = time.perf_counter()
    out_dir = _output_folder(cfg)
    expected = fingerprint(synth)
    videos = synth.train_videos + synth.benchmark_videos
    frames = sum(video_frames(synth, split) for split, _ in _jobs(synth))
    report = {
        "videos": videos,
        "frames": frames,
        "video_seconds": _video_seconds(synth),
        "out_dir": str(out_dir),
    }
    if out_dir.exists() and any(out_dir.iterdir()):
        problem = _check_existing(out_dir, expected)
        if problem is None:
            return {**report, "seconds": time.perf_counter() - start, "skipped": True}
        if not synth.force:
            raise SynthError(
                f"{out_dir} already exists but does not hold this rendering ({problem}); "
                f"pass synth.force=true to delete that folder and render it again"
            )
    _remove_leftovers(out_dir)
    partial = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    partial.mkdir(parents=True)
    try:
        files, rendered_frames = _render_all(synth, partial)
        _write_manifest(partial, synth, files, rendered_frames)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    replace_directory(partial, out_dir)
    return {
        **report,
        "frames": rendered_frames,
        "seconds": time.perf_counter() - start,
        "skipped": False,
    }

"""``longvie curate``: every raw file → clips.parquet, rejected.parquet, curation.json.

The new curated folder is built beside the old one and swapped in only after the Great
Expectations suite passes, so a failed run never leaves a half-written or invalid clip table
where training would read it. Nothing under ``paths.raw`` is written to.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from longvie.atomic import replace_directory, write_atomically, write_json_atomically
from longvie.config.schema import CurationConfig, LongvieConfig
from longvie.curation.process import SegmentResult, SourceResult, curate_source, delete_clips
from longvie.curation.sources import SourceFile, discover
from longvie.errors import LongvieError
from longvie.step_lock import locked_step
from longvie.validation.clip_table import ValidationOutcome, validate_clip_table
from longvie.video.io import read_video

CLIPS_TABLE = "clips.parquet"
REJECTED_TABLE = "rejected.parquet"
REPORT_NAME = "curation.json"
PREVIEW_NAME = "curation_preview.png"


class CurationError(LongvieError):
    """Curation cannot run or its output failed validation; the message says which and why."""


@locked_step("curate", writes=lambda c: [str(Path(c.paths.curated).parent), c.paths.reports])
def curate(config: LongvieConfig, progress: bool = True) -> dict:
    """Curate ``paths.raw`` into ``paths.curated``; returns the report also written as JSON."""
    started = time.perf_counter()
    raw, curated = Path(config.paths.raw), Path(config.paths.curated)
    videos, unsupported = _find_sources(raw, config.curation)
    staging = curated.with_name(curated.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)

    kept_for_inspection = False
    try:
        results = _curate_all(videos, config, staging, progress)
        _reject_near_duplicates(results, config.curation.duplicate_max_diff, staging)
        clips = _clip_table(results)
        rejected = _rejected_table(results, unsupported)
        if clips.empty:
            raise CurationError(_nothing_kept(raw, len(videos), rejected, curated))
        clips.to_parquet(staging / CLIPS_TABLE, index=False)
        rejected.to_parquet(staging / REJECTED_TABLE, index=False)

        outcome = validate_clip_table(clips, staging, config.video)
        report = _report(videos, results, clips, rejected, outcome, config.video.fps,
                         time.perf_counter() - started)
        reports = Path(config.paths.reports)
        reports.mkdir(parents=True, exist_ok=True)
        if not outcome.success:
            write_json_atomically(reports / REPORT_NAME, report)
            kept_for_inspection = True
            raise CurationError(
                f"clip table failed validation, output kept for inspection in {staging}\n"
                + outcome.summary()
            )
        replace_directory(staging, curated)
    finally:
        if not kept_for_inspection:  # a failure (a full disk) leaves no half-made staging
            shutil.rmtree(staging, ignore_errors=True)
    write_preview(clips, curated, reports / PREVIEW_NAME, config.curation.preview_clips)
    report["seconds"] = round(time.perf_counter() - started, 2)
    write_json_atomically(reports / REPORT_NAME, report)
    return report


def _find_sources(raw: Path, curation: CurationConfig) -> tuple[list[SourceFile], list[dict]]:
    if not raw.is_dir():
        raise CurationError(
            f"raw folder {raw} does not exist: render the default data with `longvie synth`, "
            "fetch it with `dvc pull`, or point paths.raw at your videos"
        )
    videos, unsupported = discover(raw, curation)
    if not videos:
        what = f"only {len(unsupported)} non-video files" if unsupported else "no files"
        raise CurationError(
            f"raw folder {raw} holds {what}: expected videos with extensions "
            f"{', '.join(curation.video_extensions)}"
        )
    return videos, unsupported


def _curate_all(
    videos: list[SourceFile], config: LongvieConfig, staging: Path, progress: bool
) -> list[SourceResult]:
    bar = tqdm(total=len(videos), desc="curate", unit="video", disable=not progress)
    results: list[SourceResult] = []
    if config.curation.workers == 1 or len(videos) == 1:
        for video in videos:
            results.append(curate_source(video, config.video, config.curation, staging))
            bar.update()
    else:
        # spawn: decoder libraries hold threads, which fork copies badly.
        with ProcessPoolExecutor(config.curation.workers, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(curate_source, v, config.video, config.curation, staging)
                for v in videos
            ]
            for future in futures:
                results.append(future.result())
                bar.update()
    bar.close()
    return results


def _reject_near_duplicates(results: list[SourceResult], max_diff: float, staging: Path) -> None:
    """Keep the first of each group of near-identical segments (in path order), reject the rest.

    A segment's fingerprint is its first frame and its mean frame as 16x16 grey thumbnails; both
    must match, so different scenes that share a layout are not confused.
    """
    kept: list[tuple[str, SegmentResult]] = []
    for result in results:
        for segment in result.segments:
            if segment.reason or segment.first_thumbnail is None:
                continue
            for path, other in kept:
                first = np.abs(segment.first_thumbnail - other.first_thumbnail).mean()
                mean = np.abs(segment.mean_thumbnail - other.mean_thumbnail).mean()
                if first < max_diff and mean < max_diff:
                    segment.reason = (
                        f"near-duplicate: of {path} segment {other.index} "
                        f"(thumbnail difference {max(first, mean):.2f} < {max_diff})"
                    )
                    delete_clips(staging, segment.clips)
                    segment.clips = []
                    break
            else:
                kept.append((result.source.relative, segment))


def _clip_table(results: list[SourceResult]) -> pd.DataFrame:
    rows = [clip for r in results for s in r.segments for clip in s.clips]
    table = pd.DataFrame(rows)
    return table.sort_values("clip_id").reset_index(drop=True) if rows else table


def _rejected_table(results: list[SourceResult], unsupported: list[dict]) -> pd.DataFrame:
    rows = [{"path": u["path"], "segment": "", "reason": u["reason"]} for u in unsupported]
    for result in results:
        path = result.source.relative
        if result.reason:
            rows.append({"path": path, "segment": "", "reason": result.reason})
        for s in result.segments:
            if s.reason:
                span = f"segment {s.index} ({s.start_seconds:.2f}-{s.end_seconds:.2f} s)"
                rows.append({"path": path, "segment": span, "reason": s.reason})
    return pd.DataFrame(rows, columns=["path", "segment", "reason"])


def _nothing_kept(raw: Path, videos: int, rejected: pd.DataFrame, curated: Path,
                  listed: int = 20) -> str:
    """Why a curation kept no clip: every file's reasons, not a validation of an empty table."""
    lines = [f"  {row.path}{f' {row.segment}' if row.segment else ''}: {row.reason}"
             for row in rejected.head(listed).itertuples()]
    if len(rejected) > listed:
        lines.append(f"  ... and {len(rejected) - listed} more")
    return (f"every video in {raw} was rejected ({videos} videos, {len(rejected)} rejections); "
            f"nothing was curated and {curated} is left as it was:\n" + "\n".join(lines))


def _category(reason: str) -> str:
    return reason.split(":", 1)[0].strip()


def _report(
    videos: list[SourceFile],
    results: list[SourceResult],
    clips: pd.DataFrame,
    rejected: pd.DataFrame,
    outcome: ValidationOutcome,
    fps: int,
    seconds: float,
) -> dict:
    curated_sources = set(clips["source_path"]) if len(clips) else set()
    by_split = clips.groupby("split").size().to_dict() if len(clips) else {}
    kept_frames = sum(s.frames for r in results for s in r.segments if not s.reason)
    return {
        "videos_in": len(videos),
        "videos_curated": len(curated_sources),
        "clips": len(clips),
        "clips_by_split": {k: int(v) for k, v in by_split.items()},
        "sources_by_split": {
            split: int(clips.loc[clips["split"] == split, "source_id"].nunique())
            for split in by_split
        },
        "rejected": rejected[["path", "segment", "reason"]].to_dict(orient="records"),
        "reasons_histogram": dict(Counter(_category(r) for r in rejected["reason"]).most_common()),
        "raw_seconds": round(sum(r.duration_seconds for r in results), 2),
        "curated_seconds": round(kept_frames / fps, 2),
        "validation": {
            "success": outcome.success,
            "expectations": outcome.evaluated,
            "failures": outcome.failures,
        },
        "seconds": round(seconds, 2),
    }


def write_preview(clips: pd.DataFrame, curated: Path, out: Path, count: int) -> Path | None:
    """A contact sheet: first, middle and last frame of up to ``count`` clips, one row each,
    taken from as many different sources as possible."""
    from PIL import Image

    if clips.empty or count <= 0:
        return None
    firsts = clips.drop_duplicates("source_id")
    chosen = pd.concat([firsts, clips.drop(firsts.index)]).head(count)
    rows = []
    for path in chosen["path"]:
        frames, _ = read_video(curated / path)
        rows.append(np.concatenate([frames[0], frames[len(frames) // 2], frames[-1]], axis=1))
    sheet = np.concatenate(rows, axis=0)
    scale = max(1, 192 // sheet.shape[1] * 2)
    image = Image.fromarray(sheet).resize(
        (sheet.shape[1] * scale, sheet.shape[0] * scale), Image.NEAREST
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, lambda temporary: image.save(temporary, format="PNG"))
    return out

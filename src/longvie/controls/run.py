"""``longvie controls``: controls for every curated source video, then the report.

Sources whose output is up to date (same fingerprint: clips' bytes, config, model) are skipped,
so adding one video computes one video. A source that fails is reported with its reason and the
others go on; its stale output is removed so nothing trains on controls of other clips.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from longvie.atomic import write_atomically, write_json_atomically
from longvie.config import LongvieConfig
from longvie.controls.accuracy import DepthStats, TrackingStats
from longvie.controls.checks import check_source_controls
from longvie.step_lock import locked_step
from longvie.controls.extract import (
    SourcePlan,
    control_file,
    extract_source,
    fingerprint,
    plan_sources,
    read_meta,
)
from longvie.errors import LongvieError
from longvie.preflight import OutOfSpaceError, is_out_of_space

REPORT_NAME = "controls.json"
INDEX_NAME = "controls.parquet"


def load_clip_rows(config: LongvieConfig) -> list[dict]:
    """The curated clip table as dicts (``longvie curate`` writes it)."""
    import pandas as pd

    table = Path(config.paths.curated) / "clips.parquet"
    if not table.is_file():
        raise LongvieError(f"{table} does not exist: run `longvie curate` first")
    rows = pd.read_parquet(table).to_dict(orient="records")
    if rows and "source_frames" not in rows[0]:
        raise LongvieError(
            f"{table} has no source_frames column (written by an older curation): "
            "run `longvie curate` again"
        )
    for row in rows:
        row["source_frames"] = [int(i) for i in row["source_frames"]]
    return rows


def source_plans(config: LongvieConfig) -> list[SourcePlan]:
    return plan_sources(load_clip_rows(config), config)


def is_up_to_date(plan: SourcePlan, config: LongvieConfig, stamp: str | None = None) -> bool:
    meta = read_meta(Path(config.paths.controls) / plan.source_id)
    stamp = stamp or fingerprint(plan, config)
    return meta is not None and meta.get("fingerprint") == stamp


def expected_frames(plan: SourcePlan) -> dict[str, int]:
    return {row["clip_id"]: int(row["num_frames"]) for row in plan.clips}


@locked_step(lambda call: f"controls_{call.arguments['plan'].source_id}", tracked=True)
def extract_checked(plan: SourcePlan, config: LongvieConfig, force: bool = False) -> dict:
    """One source (one Dagster partition): extract unless up to date, then check the output.

    Raises LongvieError with the reason when extraction fails or the output breaks a check;
    the output of a failed source is removed.
    """
    out_dir = Path(config.paths.controls) / plan.source_id
    stamp = fingerprint(plan, config)  # reads every clip's bytes: once per source
    if not force and is_up_to_date(plan, config, stamp):
        meta = read_meta(out_dir)
        meta["up_to_date"] = True
        return meta
    try:
        meta = extract_source(plan, config, stamp=stamp)
        problems = check_source_controls(out_dir, expected_frames(plan))
        if problems:
            raise LongvieError("; ".join(problems[:5]))
    except Exception as error:
        if is_out_of_space(error):
            raise  # not this video's fault: its previous controls stay, the whole step stops
        shutil.rmtree(out_dir, ignore_errors=True)
        if isinstance(error, LongvieError):
            raise
        raise LongvieError(f"{type(error).__name__}: {error}") from error
    meta["up_to_date"] = False
    return meta


def _job(plan: SourcePlan, config: LongvieConfig, force: bool) -> tuple[str, dict | str]:
    try:
        return "ok", extract_checked(plan, config, force)
    except OutOfSpaceError:
        raise
    except LongvieError as error:
        return "failed", str(error)


def _init_worker() -> None:
    # Each worker is one of `workers` processes: one BLAS/torch thread each, no oversubscription.
    os.environ["OMP_NUM_THREADS"] = "1"


def extract_sources(plans: list[SourcePlan], config: LongvieConfig, progress: bool = True,
                    force: bool = False) -> dict[str, tuple[str, dict | str]]:
    """``extract_checked`` of each plan over ``controls.workers`` processes: source id ->
    ("ok", meta) or ("failed", reason). One failed source never stops the others."""
    from tqdm import tqdm

    results: dict[str, tuple[str, dict | str]] = {}
    bar = tqdm(total=len(plans), desc="controls", unit="video", disable=not progress)
    workers = min(config.controls.workers, len(plans))
    if workers <= 1:
        for plan in plans:
            results[plan.source_id] = _job(plan, config, force)
            bar.update()
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
            futures = {pool.submit(_job, plan, config, force): plan for plan in plans}
            for future in as_completed(futures):
                results[futures[future].source_id] = future.result()
                bar.update()
    bar.close()
    return results


@locked_step("controls", writes=lambda c: [c.paths.controls, c.paths.reports], tracked=True)
def extract_controls(config: LongvieConfig, progress: bool = True, force: bool = False) -> dict:
    """Every source of the clip table; writes the index and ``reports/controls.json``."""
    started = time.perf_counter()
    plans = source_plans(config)
    out_root = Path(config.paths.controls)
    out_root.mkdir(parents=True, exist_ok=True)
    _remove_stale(out_root, {plan.source_id for plan in plans})
    results = extract_sources(plans, config, progress, force)
    _write_index(config, plans)
    report = summarise(config, plans, results, time.perf_counter() - started)
    reports = Path(config.paths.reports)
    reports.mkdir(parents=True, exist_ok=True)
    write_json_atomically(reports / REPORT_NAME, report)
    return report


def _remove_stale(out_root: Path, current: set[str]) -> None:
    """Controls of sources no longer curated go (derived data; the raw files are untouched)."""
    for folder in out_root.iterdir():
        if folder.is_dir() and folder.name not in current:
            shutil.rmtree(folder, ignore_errors=True)


def _write_index(config: LongvieConfig, plans: list[SourcePlan]) -> None:
    """``controls.parquet``: clip_id -> control file, for every source whose output exists."""
    import pandas as pd

    out_root = Path(config.paths.controls)
    rows = []
    for plan in plans:
        meta = read_meta(out_root / plan.source_id)
        if meta is None:
            continue
        for row in plan.clips:
            rows.append({
                "clip_id": row["clip_id"],
                "source_id": plan.source_id,
                "split": plan.split,
                "kind": plan.kind,
                "path": control_file(row),
                "near_disparity": meta["bounds"]["near"],
                "far_disparity": meta["bounds"]["far"],
            })
    table = pd.DataFrame(rows)
    write_atomically(out_root / INDEX_NAME, lambda path: table.to_parquet(path, index=False))


def summarise(
    config: LongvieConfig,
    plans: list[SourcePlan],
    results: dict[str, tuple[str, dict | str]],
    seconds: float,
) -> dict:
    """The report: counts, failures, accuracy merged over held-out videos, extractor speed."""
    tracking, depth = TrackingStats(), DepthStats()
    evaluated: list[str] = []
    speed = {"engine": [0, 0.0, 0.0], "estimated": [0, 0.0, 0.0]}
    failed, computed, up_to_date, by_kind = [], 0, 0, {"engine": 0, "estimated": 0}
    for plan in plans:
        status, payload = results.get(plan.source_id, ("failed", "not run"))
        if status != "ok":
            failed.append({"source_id": plan.source_id, "path": plan.source_path,
                           "reason": payload})
            continue
        meta = payload
        by_kind[plan.kind] += 1
        up_to_date += bool(meta.get("up_to_date"))
        computed += not meta.get("up_to_date")
        timing = meta["timings"]
        totals = speed[plan.kind]
        totals[0] += timing["frames"]
        totals[1] += timing["depth_seconds"]
        totals[2] += timing["tracks_seconds"]
        if "accuracy" in meta:
            evaluated.append(plan.source_id)
            tracking.merge(TrackingStats.from_json(meta["accuracy"]["tracking"]))
            depth.merge(DepthStats.from_json(meta["accuracy"]["depth"]))
            estimated = speed["estimated"]
            estimated[0] += timing["frames"]
            estimated[1] += timing.get("evaluation_depth_seconds", 0.0)
            estimated[2] += timing.get("evaluation_tracks_seconds", 0.0)
    return {
        "profile": config.profile_name,
        "videos": len(plans),
        "extracted": len(plans) - len(failed),
        "computed": computed,
        "up_to_date": up_to_date,
        "by_kind": by_kind,
        "failed": failed,
        "tracking": {**tracking.summary(), "videos": len(evaluated),
                     "tracker": "opencv pyramidal Lucas-Kanade + forward-backward check"},
        "depth": {**depth.summary(), "videos": len(evaluated),
                  "model": f"{config.controls.depth.kind}:{config.controls.depth.model}"},
        "frames_per_second": {
            f"{kind}_{part}": round(frames / spent, 1) if spent else None
            for kind, (frames, depth_s, tracks_s) in speed.items()
            for part, spent in (("depth", depth_s), ("tracks", tracks_s))
        },
        "evaluated_sources": evaluated,
        "seconds": round(seconds, 2),
    }


def report_from_outputs(config: LongvieConfig, seconds: float = 0.0) -> dict:
    """The report over what is on disk (Dagster's partitions compute sources one at a time).

    A source without up-to-date output counts as failed with that reason.
    """
    plans = source_plans(config)
    results: dict[str, tuple[str, dict | str]] = {}
    for plan in plans:
        if is_up_to_date(plan, config):
            meta = read_meta(Path(config.paths.controls) / plan.source_id)
            results[plan.source_id] = ("ok", {**meta, "up_to_date": True})
        else:
            results[plan.source_id] = (
                "failed", "no up-to-date controls: materialise its control_signals partition"
            )
    _write_index(config, plans)
    report = summarise(config, plans, results, seconds)
    reports = Path(config.paths.reports)
    reports.mkdir(parents=True, exist_ok=True)
    write_json_atomically(reports / REPORT_NAME, report)
    return report

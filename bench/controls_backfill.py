"""Controls through Dagster: the `controls` job once per source video (what the sensor asks for
each new or changed video) against one run over every video (what `make run` and a backfill
from the UI do, by the asset's single-run backfill policy: the videos share the controls
process pool, ``controls.workers``).

Both arms start from the same curated clips and depth network in a scratch root, each on a
fresh Dagster instance with its own empty ``data/controls``, and do the same work per video:
extraction, the validity check, one MLflow run. The ratio printed is per-partition seconds /
single-run seconds.

    .venv/bin/python bench/controls_backfill.py --source /path/to/a/made/root [--profile tiny]

``--source`` is a project root where `make run` (or `longvie curate` + `longvie depth-estimator`)
has run: its ``data/raw``, ``data/curated`` and ``models/depth_estimator`` are copied.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # orchestration/ is a top-level package of the checkout

from orchestration.partitions import source_videos

INPUTS = ("data/raw", "data/curated", "models/depth_estimator")


def fresh_instance(folder: Path, partitions: list[str]) -> dg.DagsterInstance:
    folder.mkdir(parents=True)
    instance = dg.DagsterInstance.local_temp(str(folder))
    instance.add_dynamic_partitions(source_videos.name, partitions)
    return instance


def _controls(overrides: list[str], instance, tags: dict[str, str],
              partition_key: str | None = None) -> None:
    from orchestration.definitions import defs
    from orchestration.main_job import run_config

    outcome = defs.resolve_job_def("controls").execute_in_process(
        run_config=run_config(overrides), instance=instance, raise_on_error=False, tags=tags,
        partition_key=partition_key)
    if not outcome.success:
        raise SystemExit(f"the controls run {partition_key or tags} failed")


def per_partition(overrides: list[str], partitions: list[str], instance) -> float:
    """One run per video, as the sensor asks for new or changed videos."""
    started = time.perf_counter()
    for key in partitions:
        _controls(overrides, instance, {}, partition_key=key)
    return time.perf_counter() - started


def single_run(overrides: list[str], partitions: list[str], instance) -> float:
    """One run over the whole partition range (Dagster's range tags, as a backfill sets them)."""
    started = time.perf_counter()
    _controls(overrides, instance, {"dagster/asset_partition_range_start": partitions[0],
                                    "dagster/asset_partition_range_end": partitions[-1]})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--out", type=Path,
                        default=REPO / "bench" / "results" / "controls_backfill.json")
    args = parser.parse_args()
    missing = [name for name in INPUTS if not (args.source / name).exists()]
    if missing:
        raise SystemExit(f"{args.source}: missing {', '.join(missing)} (run `make run` there)")

    from longvie.config import compose
    from longvie.controls.run import source_plans

    scratch = Path(tempfile.mkdtemp(prefix="controls_backfill_"))
    try:
        for name in INPUTS:
            shutil.copytree(args.source / name, scratch / name)
        overrides = [f"profile={args.profile}", f"paths.root={scratch}"]
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{scratch / 'mlflow.db'}"
        config = compose(overrides)
        partitions = [plan.source_id for plan in source_plans(config)]
        seconds = {}
        for arm, measure in (("per_partition", per_partition), ("single_run", single_run)):
            shutil.rmtree(scratch / "data" / "controls", ignore_errors=True)
            instance = fresh_instance(scratch / f"dagster_{arm}", partitions)
            seconds[arm] = round(measure(overrides, partitions, instance), 1)
            instance.dispose()
            print(f"{arm}: {len(partitions)} videos in {seconds[arm]:.1f} s", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ratio = seconds["per_partition"] / seconds["single_run"]
    results = {
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
        "profile": args.profile,
        "videos": len(partitions),
        "controls_workers": config.controls.workers,
        "seconds": seconds,
        "per_partition_over_single_run": round(ratio, 2),
    }
    print(f"per-partition / single-run: {ratio:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()

"""Controls through Dagster: one run per source video (what `make run` and the sensor do) against
one run for every video (a single-run backfill over the CLI's process pool).

Issue 17 asked for the second. It was not adopted: ``controls_are_valid`` is a blocking check
per video, and Dagster 1.13 records a check result only for a run's one partition key, so a
range run cannot block training on the one video that failed (README, "Known limits"). This
script measures what that choice costs. Both arms start from the same curated clips and depth
network in a scratch root, each on a fresh Dagster instance with its own empty
``data/controls``, and do the same work per video: extraction, the validity check, one MLflow
run. The ratio printed is per-partition seconds / single-run seconds.

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

from orchestration.assets.controls import source_summary
from orchestration.partitions import source_videos
from orchestration.resources import LongvieConfigResource, MlflowResource

INPUTS = ("data/raw", "data/curated", "models/depth_estimator")


def single_run_definitions():
    """A ``control_signals`` whose backfills are one run over all partitions: the CLI's process
    pool extracts them, then each video is checked and logged as the per-partition asset does."""

    @dg.asset(name="control_signals", partitions_def=source_videos,
              backfill_policy=dg.BackfillPolicy.single_run())
    def control_signals_single_run(
        context: dg.AssetExecutionContext, longvie: LongvieConfigResource, mlflow: MlflowResource
    ) -> dg.MaterializeResult:
        from longvie.controls.checks import check_source_controls
        from longvie.controls.report import log_source_run
        from longvie.controls.run import expected_frames, extract_sources, source_plans

        config = longvie.compose()
        keys = set(context.partition_keys)
        plans = [plan for plan in source_plans(config) if plan.source_id in keys]
        results = extract_sources(plans, config, progress=False)
        failed = {key: reason for key, (status, reason) in results.items() if status != "ok"}
        problems = {}
        for plan in plans:
            if plan.source_id in failed:
                continue
            found = check_source_controls(Path(config.paths.controls) / plan.source_id,
                                          expected_frames(plan))
            if found:
                problems[plan.source_id] = found
            log_source_run(config, plan.source_id, source_summary(results[plan.source_id][1]),
                           {"dagster.run_id": context.run.run_id})
        if failed or problems:
            raise dg.Failure(f"failed: {failed}; invalid: {problems}")
        return dg.MaterializeResult(metadata={"videos": len(plans)})

    job = dg.define_asset_job("controls_single_run", selection=[control_signals_single_run])
    return dg.Definitions(assets=[control_signals_single_run], jobs=[job],
                          resources={"longvie": LongvieConfigResource(),
                                     "mlflow": MlflowResource()})


def fresh_instance(folder: Path, partitions: list[str]) -> dg.DagsterInstance:
    folder.mkdir(parents=True)
    instance = dg.DagsterInstance.local_temp(str(folder))
    instance.add_dynamic_partitions(source_videos.name, partitions)
    return instance


def per_partition(overrides: list[str], partitions: list[str], instance) -> float:
    """Today's path: the `controls` job once per video, as `make run` runs it."""
    from orchestration.definitions import defs
    from orchestration.main_job import run_config

    job = defs.resolve_job_def("controls")
    started = time.perf_counter()
    for key in partitions:
        outcome = job.execute_in_process(run_config=run_config(overrides), instance=instance,
                                         partition_key=key, raise_on_error=False)
        if not outcome.success:
            raise SystemExit(f"controls[{key}] failed")
    return time.perf_counter() - started


def single_run(overrides: list[str], partitions: list[str], instance) -> float:
    """One run over the whole partition range (Dagster's range tags, as a backfill sets them)."""
    from orchestration.main_job import run_config

    job = single_run_definitions().resolve_job_def("controls_single_run")
    started = time.perf_counter()
    outcome = job.execute_in_process(
        run_config=run_config(overrides), instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": partitions[0],
              "dagster/asset_partition_range_end": partitions[-1]})
    if not outcome.success:
        raise SystemExit("the single run failed")
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

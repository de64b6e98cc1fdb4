"""`make run`: the whole asset graph materialised in-process, job by job, on one Dagster instance.

Dagster runs a partitioned asset (``control_signals``, one partition per source video) and
unpartitioned ones in separate runs, so the graph is three jobs: ``curation`` (raw videos,
curated clips, the depth estimator), ``controls`` once over every source-video partition (one
run, as a single-run backfill makes it: the videos share the controls process pool), and
``training`` (controls report, base, stages 1-3, benchmark, promotion). Each is a real run in the
instance under ``DAGSTER_HOME`` (the project's ``.dagster_home/`` by default), so `make ui` shows
them afterwards. Every step skips work whose inputs did not change, so a second `make run` is
quick. The rendered default data (``longvie synth``) comes first: it stands in for `dvc pull`.

Run: ``python -m orchestration.main_job [hydra overrides]``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from longvie.config import ConfigError, compose
from longvie.data_version import DataVersionError, record_stages
from longvie.steps import synth_default_data
from longvie.summaries import print_benchmark_summary, print_promotion
from orchestration.definitions import defs
from longvie.dagster_home import dagster_home
from orchestration.partitions import source_videos
from orchestration.step_times import breakdown, format_breakdown

JOBS = ("curation", "controls", "training")


@dataclass
class GraphRun:
    """What one pass over the graph did: each Dagster run's job, partition, status and time."""

    runs: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def success(self) -> bool:
        return all(run["success"] for run in self.runs)

    def failed(self) -> list[dict]:
        return [run for run in self.runs if not run["success"]]


def default_instance(root: Path) -> dg.DagsterInstance:
    """The instance in the project's Dagster home (longvie.dagster_home), the one `make ui` shows."""
    os.environ["DAGSTER_HOME"] = str(dagster_home(root))
    return dg.DagsterInstance.get()


# Dagster's console logger prints every event at DEBUG; a terminal wants the steps' own messages.
LOG_LEVEL = os.environ.get("LONGVIE_DAGSTER_LOG_LEVEL", "INFO")


def run_config(overrides: Sequence[str], progress: bool = False) -> dict:
    """The launchpad config: the Hydra overrides and progress bars for the config resource,
    the console log level."""
    return {"resources": {"longvie": {"config": {"overrides": list(overrides),
                                                 "progress": progress}}},
            "loggers": {"console": {"config": {"log_level": LOG_LEVEL}}}}


def materialize_graph(overrides: Sequence[str], instance: dg.DagsterInstance,
                      log: Callable[[str], None] = print, progress: bool = False) -> GraphRun:
    """Run curation, every source video's controls (one run over the partition range), then
    training; stop at the first failure.

    A failed controls partition stops the pass before training (its check is blocking, and a
    model trained without one video's controls would not be the model the data describe); the
    other videos' controls are still materialised.
    """

    started = time.perf_counter()
    result = GraphRun()
    config = run_config(overrides, progress)

    def execute(name: str, partitions: Sequence[str] = ()) -> bool:
        job = defs.resolve_job_def(name)
        tags = {"longvie/trigger": "make run"}
        if partitions:  # the tags a single-run backfill of these partitions sets
            tags.update({"dagster/asset_partition_range_start": partitions[0],
                         "dagster/asset_partition_range_end": partitions[-1]})
        began = time.perf_counter()
        outcome = job.execute_in_process(run_config=config, instance=instance,
                                         raise_on_error=False, tags=tags)
        seconds = time.perf_counter() - began
        partition = (None if not partitions else partitions[0] if len(partitions) == 1
                     else f"{partitions[0]}...{partitions[-1]}")
        label = name if partition is None else f"{name}[{partition}]"
        result.runs.append({"job": name, "partition": partition, "run_id": outcome.run_id,
                            "success": outcome.success, "seconds": round(seconds, 2)})
        log(f"dagster: {label} {'succeeded' if outcome.success else 'FAILED'} in "
            f"{seconds:.1f} s (run {outcome.run_id[:8]})")
        if not outcome.success:
            for event in outcome.all_events:
                if event.is_step_failure and event.step_failure_data is not None:
                    log(f"  {event.step_key}: {event.step_failure_data.error.message.strip()}")
        return outcome.success

    if execute("curation"):
        partitions = instance.get_dynamic_partitions(source_videos.name)
        log(f"dagster: controls for {len(partitions)} source videos in one run")
        if not partitions or execute("controls", partitions):
            execute("training")
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    overrides = list(sys.argv[1:] if argv is None else argv)
    try:
        config = compose(overrides)
    except ConfigError as error:
        print(f"make run: {error}", file=sys.stderr)
        return 2
    rendering = time.perf_counter()
    synth_default_data(config)
    render_seconds = time.perf_counter() - rendering
    instance = default_instance(Path(config.paths.root))
    run = materialize_graph(overrides, instance, progress=sys.stderr.isatty())
    if not run.success:
        failed = ", ".join(r["job"] + (f"[{r['partition']}]" if r["partition"] else "")
                           for r in run.failed())
        print(f"make run: failed in {failed} after {run.seconds:.0f} s; see `make ui`",
              file=sys.stderr)
        return 1
    _print_outcome(Path(config.paths.reports))
    _print_breakdown(instance, run, render_seconds)
    try:
        print(f"make run: {record_stages(Path(config.paths.root), config)}")
    except DataVersionError as error:
        print(f"make run: the run succeeded but DVC could not record it: {error}",
              file=sys.stderr)
        return 1
    return 0


def _print_breakdown(instance: dg.DagsterInstance, run: GraphRun, render_seconds: float) -> None:
    """Where this pass's time went: the rendering, then each Dagster job and step."""

    records = instance.get_run_records(
        filters=dg.RunsFilter(run_ids=[r["run_id"] for r in run.runs]), ascending=True)
    print(f"make run: rendering the default data {render_seconds:.0f} s, then "
          f"{len(run.runs)} Dagster runs in {run.seconds:.0f} s:")
    print("\n".join(format_breakdown(breakdown(instance, records))))


def _print_outcome(reports: Path) -> None:
    """The benchmark table and the promotion decision, as the training job left them."""
    import json

    print_benchmark_summary(json.loads((reports / "benchmark.json").read_text()))
    print_promotion(json.loads((reports / "promotion.json").read_text()))


if __name__ == "__main__":
    raise SystemExit(main())

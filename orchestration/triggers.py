"""Retraining triggers: a weekly schedule, and a sensor that follows the DVC version of data/raw.

Why two: the schedule retrains on whatever data is checked out (new code, new seeds, drift in
what the benchmark measures), while the sensor reacts to new data as soon as ``data.dvc`` records
a new md5 for ``data/raw``, and spends compute only where the data changed.

Why the sensor is a state machine and not one run: Dagster cannot put the partitioned
``control_signals`` (one partition per source video) and the unpartitioned assets in one run.
So each tick looks at the instance (event log, dynamic partitions, runs) and asks one run of the
next step; the cursor holds the last md5 whose retraining succeeded (a failed training is asked
again on the next tick). The jobs are
passed in (they are defined next to the assets in ``orchestration/definitions.py``, which
imports this module, so importing them here would be circular).

Every run these triggers ask carries ``longvie/trigger`` (who asked) and ``longvie/data_md5``
(which data version it is for); the sensor finds its own runs by those tags. Nothing heavy is
imported here: a tick reads one YAML file, composes the config and queries the instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from longvie.config import LongvieConfig
from longvie.data_version import DVC_FILE, raw_data_hash
from longvie.step_lock import lock_holder
from orchestration.assets.controls import control_signals
from orchestration.assets.data import clip_table_is_valid, curated_clips, raw_videos
from orchestration.partitions import CLIPS_DIGEST, SOURCE_DIGESTS, source_videos
from orchestration.resources import LongvieConfigResource

# Monday 03:00 UTC: after a weekend of data drops, before anyone looks at the benchmark.
WEEKLY_CRON = "0 3 * * 1"
WEEKLY_TIMEZONE = "UTC"
# Reading data.dvc and a few instance queries per tick: once a minute is plenty.
SENSOR_INTERVAL_SECONDS = 60

TRIGGER_TAG = "longvie/trigger"
MD5_TAG = "longvie/data_md5"
# Set by Dagster on every run of a partitioned job.
PARTITION_TAG = "dagster/partition"

IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
FAILED = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def read_data_version(root: Path) -> tuple[str | None, str | None]:
    """``(md5, None)`` from ``root/data.dvc``, or ``(None, why not)`` naming the file.

    A tick must not crash on a data.dvc that is missing or half-written by ``dvc commit``: the
    reason is shown as the tick's skip message and the next tick reads it again.
    """

    path = root / DVC_FILE
    if not path.is_file():
        return None, f"{path} does not exist: data/raw is not tracked by DVC, no version to watch"
    try:
        md5 = raw_data_hash(root)
    except Exception as error:  # noqa: BLE001 - any unreadable file is reported, not raised
        return None, f"cannot read {path}: {type(error).__name__}: {error}"
    if not isinstance(md5, str) or not md5:
        return None, f"{path} records no md5 for data/raw (run `dvc commit {DVC_FILE}`)"
    return md5, None


def _tags(trigger: str, md5: str) -> dict[str, str]:
    return {TRIGGER_TAG: trigger, MD5_TAG: md5}


def _runs(instance: dg.DagsterInstance, job_names: Sequence[str],
          statuses: Sequence[dg.DagsterRunStatus], md5: str | None = None) -> list[dg.DagsterRun]:
    """Runs of these jobs in these states (for one data version if ``md5``), newest first."""
    tags = {MD5_TAG: md5} if md5 else {}
    runs: list[dg.DagsterRun] = []
    for name in job_names:
        runs += instance.get_runs(dg.RunsFilter(job_name=name, statuses=list(statuses), tags=tags))
    return runs


def _describe(runs: Sequence[dg.DagsterRun]) -> str:
    return ", ".join(f"{run.job_name} run {run.run_id[:8]}" for run in runs)


# --------------------------------------------------------------------------------------------
# The weekly schedule


def build_weekly_retraining(training: dg.UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    """The schedule ``weekly_retraining``: one ``training`` run every Monday 03:00 UTC.

    It retrains on the data as it is (no curation or controls first: new data is the sensor's
    job); the data md5 is only a label here, so an untracked data/raw still retrains. The run key
    is the tick's time, so a daemon that evaluates a tick twice launches it once. It skips while
    a training run is in flight: two trainings would write the same model folders.
    """

    @dg.schedule(
        name="weekly_retraining",
        job=training,
        cron_schedule=WEEKLY_CRON,
        execution_timezone=WEEKLY_TIMEZONE,
        description="Retrain on the current data once a week (Monday 03:00 UTC).",
    )
    def weekly_retraining(context: dg.ScheduleEvaluationContext, longvie: LongvieConfigResource):
        busy = _runs(context.instance, [training.name], IN_FLIGHT)
        if busy:
            return dg.SkipReason(f"a training is still in flight ({_describe(busy)}): skipping "
                                 "this week's tick rather than training twice at once")
        md5, _ = read_data_version(Path(longvie.compose().paths.root))
        when = context.scheduled_execution_time or datetime.now(timezone.utc)
        return dg.RunRequest(
            run_key=f"weekly:{when.isoformat()}",
            job_name=training.name,
            tags=_tags("weekly_retraining", md5 or "untracked"),
        )

    return weekly_retraining


# --------------------------------------------------------------------------------------------
# The data sensor


@dataclass(frozen=True)
class _Retraining:
    """One tick's view of the retraining for data version ``md5``: which step is next.

    Each step method returns what to do now (a SkipReason or run requests), or None when the
    step is complete and the next one may go.
    """

    instance: dg.DagsterInstance
    md5: str
    curation: str
    controls: str
    training: str
    config: LongvieConfig

    def held_outside(self, *steps: str) -> str | None:
        """A run of one of these steps holding its lock on the root (one started from the CLI
        or by hand, which Dagster's instance does not know), described; None when all are free.
        """

        for step in steps:
            holder = lock_holder(self.config, step)
            if holder is not None:
                return f"{step} ({holder})"
        return None

    def request(self, job: str, step_key: str, partition_key: str | None = None,
                attempt: str = "") -> dg.RunRequest:
        # The run key makes asking twice harmless: the daemon launches each key once per sensor.
        # ``attempt`` (a clips digest, a retry number) makes a deliberate second ask a new key.
        parts = [step_key, self.md5, partition_key, attempt]
        return dg.RunRequest(
            job_name=job,
            partition_key=partition_key,
            run_key=":".join(part for part in parts if part),
            tags=_tags("raw_data_sensor", self.md5),
        )

    def curated_md5(self) -> str | None:
        """The raw data version the newest curated clips were computed from.

        Dagster records it itself: ``raw_videos`` returns the data.dvc md5 as its data version,
        and the provenance of a ``curated_clips`` materialisation names its inputs' versions.
        So a curation launched by hand or by ``make run`` counts as well as one asked here.
        """
        event = self.instance.get_latest_materialization_event(curated_clips.key)
        if event is None or event.asset_materialization is None:
            return None
        provenance = dg.DataProvenance.from_tags(event.asset_materialization.tags or {})
        version = provenance.input_data_versions.get(raw_videos.key) if provenance else None
        return version.value if version else None

    def curate(self) -> dg.SkipReason | dg.RunRequest | None:
        """(a) The curated clips must come from this data version and pass their check."""
        curating = _runs(self.instance, [self.curation], IN_FLIGHT)
        if curating:  # its clips may be written but not yet checked
            return dg.SkipReason(f"data/raw is at {self.md5}; waiting for {_describe(curating)}"
                                 " to finish")
        outside = self.held_outside("synth", "curate")
        if outside:
            return dg.SkipReason(f"data/raw is at {self.md5}; waiting for a run started outside "
                                 f"Dagster: {outside}")
        if self.curated_md5() != self.md5:
            # Curation rewrites data/curated, which controls and training runs read: wait.
            busy = _runs(self.instance, [self.controls, self.training], IN_FLIGHT)
            if busy:
                return dg.SkipReason(f"data/raw is at {self.md5}; waiting for {_describe(busy)} "
                                     "to finish before curating it")
            failed = _runs(self.instance, [self.curation], FAILED, self.md5)
            if failed:
                return dg.SkipReason(f"curation of {self.md5} failed ({_describe(failed[:1])}): "
                                     "fix it and re-execute that run, or commit new data")
            return self.request(self.curation, "curation")
        record = self.instance.get_latest_asset_check_evaluation_record(
            dg.AssetCheckKey(curated_clips.key, clip_table_is_valid.check_key.name)
        )
        if record is not None and record.status.value == "FAILED":
            return dg.SkipReason(f"the clips curated from {self.md5} failed {record.key.name} "
                                 f"(run {record.run_id[:8]}): no controls or training on them")
        return None

    def curated_digests(self) -> dict[str, str]:
        """source id -> the digest of its clips, from the newest curated_clips materialisation."""
        event = self.instance.get_latest_materialization_event(curated_clips.key)
        if event is None or event.asset_materialization is None:
            return {}
        value = event.asset_materialization.metadata.get(SOURCE_DIGESTS)
        return dict(value.value) if value is not None else {}

    def controls_digest(self, partition: str) -> str | None:
        """The clips digest the partition's newest control signals were computed from ('' when
        it was materialised without one; None when it never was)."""
        result = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=control_signals.key, asset_partitions=[partition]),
            limit=1)
        if not result.records or result.records[0].asset_materialization is None:
            return None
        value = result.records[0].asset_materialization.metadata.get(CLIPS_DIGEST)
        return str(value.value) if value is not None else ""

    def stale_partitions(self, partitions: list[str]) -> dict[str, str]:
        """Partitions whose control signals are missing or were computed from other clips than
        the curated ones (a video changed in place keeps its partition but not its digest),
        each with the digest that names this version of its clips in run keys."""
        digests = self.curated_digests()
        stale = {}
        for key in sorted(partitions):
            have = self.controls_digest(key)
            wanted = digests.get(key)
            if have is None or (wanted is not None and have != wanted):
                stale[key] = wanted or ""
        return stale

    def controls_on_disk(self, stale: dict[str, str]) -> list[dg.AssetMaterialization]:
        """Stale partitions whose controls on disk are current for the curated clips (their
        fingerprint matches and they pass ``controls_are_valid``): computed by a CLI run, or by
        a run Dagster saw fail after the fact. Each becomes a materialisation from disk."""
        from longvie.controls.checks import check_source_controls
        from longvie.controls.extract import clips_digest
        from longvie.controls.run import expected_frames, is_up_to_date, source_plans

        config = self.config
        controls = Path(config.paths.controls)
        if not any((controls / key / "meta.json").is_file() for key in stale):
            return []
        events = []
        for plan in source_plans(config):
            if plan.source_id not in stale or not is_up_to_date(plan, config):
                continue
            out_dir = Path(config.paths.controls) / plan.source_id
            if check_source_controls(out_dir, expected_frames(plan)):
                continue
            events.append(dg.AssetMaterialization(
                asset_key=control_signals.key, partition=plan.source_id,
                metadata={CLIPS_DIGEST: clips_digest(plan, Path(config.paths.curated)),
                          "path": dg.MetadataValue.path(str(out_dir)),
                          "recorded_by": "raw_data_sensor: current controls found on disk"}))
        return events

    def compute_controls(self) -> dg.SkipReason | list[dg.RunRequest] | dg.SensorResult | None:
        """(b) Every current source video needs control signals of its current clips.

        A partition is stale when it was never materialised (a new video: curation adds its
        partition) or when its newest control signals record another clips digest than the
        newest curation (a video replaced under the same path: same partition, new bytes).
        Only stale partitions are asked; a removed video has lost its partition.
        """
        partitions = self.instance.get_dynamic_partitions(source_videos.name)
        if not partitions:
            return dg.SkipReason(f"curation of {self.md5} left no source videos "
                                 f"(no {source_videos.name} partitions): nothing to train on")
        stale = self.stale_partitions(list(partitions))
        if not stale:
            return None
        outside = self.held_outside("controls")
        if outside:
            return dg.SkipReason(f"waiting for a controls run started outside Dagster: "
                                 f"{outside}")
        on_disk = self.controls_on_disk(stale)
        if on_disk:  # recorded now; the next tick sees those partitions as current
            return dg.SensorResult(
                asset_events=on_disk,
                skip_reason=f"control signals of {', '.join(e.partition for e in on_disk)} are "
                            "on disk and current (computed outside Dagster): recorded")
        held = {key: holder for key in stale
                if (holder := self.held_outside(f"controls_{key}")) is not None}
        if held:
            return dg.SkipReason(f"waiting for control signals computed outside Dagster: "
                                 f"{'; '.join(held.values())}")
        running = {run.tags.get(PARTITION_TAG)
                   for run in _runs(self.instance, [self.controls], IN_FLIGHT)}
        failed = {run.tags.get(PARTITION_TAG): run  # oldest first, so the newest run wins
                  for run in reversed(_runs(self.instance, [self.controls], FAILED, self.md5))}
        to_ask = [key for key in stale if key not in running and key not in failed]
        if to_ask:
            return [self.request(self.controls, "controls", key, stale[key]) for key in to_ask]
        stuck = [key for key in stale if key in failed and key not in running]
        if stuck:
            return dg.SkipReason(
                f"control signals failed for {', '.join(stuck)} ("
                f"{_describe([failed[key] for key in stuck])}): re-execute those runs; "
                "training waits for every source video"
            )
        return dg.SkipReason(f"waiting for control signals of {', '.join(stale)} (in flight)")

    def train(self) -> dg.SkipReason | dg.RunRequest | dg.SensorResult:
        """(c) Everything upstream is current: ask a training run until one succeeds.

        The cursor moves to the md5 only when a training run for it succeeded; a failed one
        is asked again on the next tick (a new run key per attempt)."""
        busy = _runs(self.instance, [self.training], IN_FLIGHT)
        if busy:
            return dg.SkipReason(f"controls of {self.md5} are complete; waiting for "
                                 f"{_describe(busy)} to finish before training again")
        outside = self.held_outside("train_base", "train_1", "train_2", "train_3", "benchmark",
                                    "promote")
        if outside:
            return dg.SkipReason(f"controls of {self.md5} are complete; waiting for a run "
                                 f"started outside Dagster: {outside}")
        succeeded = _runs(self.instance, [self.training], [dg.DagsterRunStatus.SUCCESS],
                          self.md5)
        if succeeded:
            return dg.SensorResult(
                skip_reason=f"data/raw at {self.md5} is trained ({_describe(succeeded[:1])})",
                cursor=self.md5)
        failed = _runs(self.instance, [self.training], FAILED, self.md5)
        attempt = f"retry{len(failed)}" if failed else ""
        return self.request(self.training, "training", attempt=attempt)


def build_raw_data_sensor(
    curation: dg.UnresolvedAssetJobDefinition,
    controls: dg.UnresolvedAssetJobDefinition,
    training: dg.UnresolvedAssetJobDefinition,
) -> dg.SensorDefinition:
    """The sensor ``raw_data_sensor``: a new md5 of data/raw in data.dvc drives a retraining.

    Each tick, for the md5 in data.dvc (``paths.root`` of the config resource):

    - the cursor already holds it -> skip: its retraining succeeded;
    - (a) the newest curated_clips were not computed from it -> a ``curation`` run;
    - (b) some source_videos partition has no control_signals of its current clips (a new
      video, or one changed in place) -> one ``controls`` run per such partition (none for
      partitions in flight or failed for this md5);
    - (c) otherwise -> a ``training`` run until one succeeds; then the cursor becomes the md5.

    A missing or unreadable data.dvc skips with the reason. A failed curation or controls run
    is not retried by the sensor (its run key is spent): the tick says which run to re-execute.
    A failed training is asked again on the next tick: a killed run or a full disk passes,
    and the data version must not count as trained until a training has succeeded.
    """

    @dg.sensor(
        name="raw_data_sensor",
        jobs=[curation, controls, training],
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        description="Retrain when data.dvc records a new md5 for data/raw: curate, compute "
        "controls for new or changed source videos only, then train.",
    )
    def raw_data_sensor(context: dg.SensorEvaluationContext, longvie: LongvieConfigResource):
        md5, problem = read_data_version(Path(longvie.compose().paths.root))
        if md5 is None:
            return dg.SkipReason(problem)
        if md5 == context.cursor:
            return dg.SkipReason(f"data/raw unchanged (md5 {md5}): its retraining succeeded")
        retraining = _Retraining(context.instance, md5, curation.name, controls.name,
                                 training.name, longvie.compose())
        for step in (retraining.curate, retraining.compute_controls):
            outcome = step()
            if outcome is not None:
                return outcome
        return retraining.train()

    return raw_data_sensor

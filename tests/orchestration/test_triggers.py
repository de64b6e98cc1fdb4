"""Retraining triggers: the weekly schedule and the data.dvc sensor, tick by tick.

Each test builds a project root with a hand-written data.dvc, a Dagster instance, and
evaluates ticks the way the daemon does (``evaluate_tick`` with the code location's definitions).
Curation is a real in-process run of ``raw_videos`` and a stand-in ``curated_clips`` that only
registers the source_videos partitions; controls, checks and runs are reported to the instance.
Nothing is curated or trained for real.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test
from dagster._utils.schedules import cron_string_iterator

from orchestration.assets.controls import control_signals
from orchestration.assets.data import _sync_partitions, curated_clips, raw_videos
from orchestration.definitions import defs
from orchestration.resources import LongvieConfigResource
from orchestration.partitions import CLIPS_DIGEST, SOURCE_DIGESTS
from orchestration.triggers import MD5_TAG, PARTITION_TAG, TRIGGER_TAG
from tests.helpers.project import resources_with

SENSOR = defs.resolve_sensor_def("raw_data_sensor")
SCHEDULE = defs.resolve_schedule_def("weekly_retraining")
V1 = "1" * 32 + ".dir"
V2 = "2" * 32 + ".dir"


class Project:
    """A project root, its config resource and a Dagster instance: the world a tick sees."""

    def __init__(self, root: Path, persistent: bool = False, postgres_url: str | None = None):
        self.root = root
        (root / "data" / "raw").mkdir(parents=True, exist_ok=True)
        self.resource = LongvieConfigResource(overrides=[f"paths.root={root}", "profile=smoke"])
        if postgres_url:  # docs/scale_out.md's storage
            (root / "dagster_home").mkdir()
            self.instance = dg.DagsterInstance.local_temp(
                str(root / "dagster_home"),
                overrides={"telemetry": {"enabled": False},
                           "storage": {"postgres": {"postgres_url": postgres_url}}})
        elif persistent:  # as the daemon's; a schedule context reaches its instance by a ref
            (root / "dagster_home").mkdir()
            self.instance = dg.DagsterInstance.local_temp(
                str(root / "dagster_home"), overrides={"telemetry": {"enabled": False}})
        else:  # in memory: a few seconds faster per test
            self.instance = dg.DagsterInstance.ephemeral()

    def commit(self, md5: str) -> None:
        """What `dvc commit` leaves behind: data.dvc with the new md5 of data/raw."""
        (self.root / "data.dvc").write_text(f"outs:\n- path: data/raw\n  md5: {md5}\n")

    def tick(self, cursor: str | None = None):
        with (
            dg.build_sensor_context(
                instance=self.instance, cursor=cursor, resources=resources_with(self.resource),
                definitions=defs,
            ) as context,
            # As the daemon does: partition keys are checked against this instance's partitions.
            dg.partition_loading_context(dynamic_partitions_store=self.instance),
        ):
            return SENSOR.evaluate_tick(context)

    def tick_while_held(self, step: str):
        """A tick while another process (a CLI run) holds ``step``'s lock on the root."""
        from tests.reliability.test_step_lock import hold_lock

        holder = hold_lock(self.root, step)
        try:
            return self.tick()
        finally:
            holder.kill()
            holder.wait()

    def curate(self, sources: list[str] | dict[str, str]) -> None:
        """A curation run: raw_videos (the real asset) then clips from these source videos
        (a dict gives each source's clips digest, as the real curated_clips records it)."""
        digests = sources if isinstance(sources, dict) else {key: "d0" for key in sources}

        @dg.asset(key=curated_clips.key, deps=[raw_videos])
        def stand_in(context) -> dg.MaterializeResult:  # (a string annotation is refused)
            added, _ = _sync_partitions(context.instance, list(digests))
            return dg.MaterializeResult(metadata={"partitions_added": dg.MetadataValue.json(added),
                                                  SOURCE_DIGESTS: dg.MetadataValue.json(digests)})

        result = dg.materialize([raw_videos, stand_in], instance=self.instance,
                                resources=resources_with(self.resource))
        assert result.success

    def controls_done(self, *sources: str, digest: str = "d0") -> None:
        for source in sources:
            self.instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key=control_signals.key, partition=source,
                                        metadata={CLIPS_DIGEST: digest})
            )

    def trained(self, md5: str, status=dg.DagsterRunStatus.SUCCESS) -> dg.DagsterRun:
        """A training run the sensor asked for data version ``md5``, ended with ``status``."""
        return self.run("training", status, **{MD5_TAG: md5, TRIGGER_TAG: "raw_data_sensor"})

    def run(self, job: str, status: dg.DagsterRunStatus, **tags: str) -> dg.DagsterRun:
        return create_run_for_test(self.instance, job_name=job, status=status, tags=tags)


@pytest.fixture
def project(tmp_path):
    world = Project(tmp_path)
    yield world
    world.instance.dispose()


@pytest.fixture
def project_on_disk(tmp_path):
    world = Project(tmp_path, persistent=True)
    yield world
    world.instance.dispose()


def assert_asks(request: dg.RunRequest, job: str, run_key: str, md5: str,
                trigger: str = "raw_data_sensor") -> None:
    assert (request.job_name, request.run_key) == (job, run_key)
    assert request.tags[TRIGGER_TAG] == trigger and request.tags[MD5_TAG] == md5
    # What the daemon would launch is valid for the job (the resources need no run config).
    assert dg.validate_run_config(defs.resolve_job_def(job), request.run_config) is not None


# --------------------------------------------------------------------------------------------
# raw_data_sensor


def test_a_new_data_version_first_asks_for_its_curation(project):
    project.commit(V1)

    tick = project.tick()

    [request] = tick.run_requests
    assert_asks(request, "curation", f"curation:{V1}", V1)
    assert tick.cursor is None  # not handled until its training succeeded


def test_once_curated_only_source_videos_without_control_signals_are_asked(project):
    project.commit(V1)
    project.curate(["a", "b", "c"])
    project.controls_done("a")  # e.g. computed by an earlier retraining

    tick = project.tick()

    assert [r.partition_key for r in tick.run_requests] == ["b", "c"]
    for request in tick.run_requests:
        assert_asks(request, "controls", f"controls:{V1}:{request.partition_key}:d0", V1)
        assert request.tags[PARTITION_TAG] == request.partition_key
    assert tick.cursor is None


def test_when_every_source_video_has_control_signals_training_is_asked(project):
    project.commit(V1)
    project.curate(["a", "b"])
    project.controls_done("a", "b")

    tick = project.tick()

    [request] = tick.run_requests
    assert_asks(request, "training", f"training:{V1}", V1)
    assert request.partition_key is None
    assert tick.cursor is None  # asked, not yet trained


def test_the_cursor_moves_only_when_the_training_succeeded(project):
    project.commit(V1)
    project.curate(["a"])
    project.controls_done("a")
    running = project.trained(V1, dg.DagsterRunStatus.STARTED)

    waiting = project.tick()
    assert waiting.run_requests == [] and waiting.cursor is None
    assert running.run_id[:8] in waiting.skip_message

    project.instance.delete_run(running.run_id)
    done = project.trained(V1)
    tick = project.tick()
    assert tick.run_requests == []
    assert tick.cursor == V1
    assert done.run_id[:8] in tick.skip_message


def test_a_failed_training_is_asked_again_on_the_next_tick(project):
    project.commit(V1)
    project.curate(["a"])
    project.controls_done("a")
    [first] = project.tick().run_requests
    project.trained(V1, dg.DagsterRunStatus.FAILURE)

    again = project.tick()

    [retry] = again.run_requests
    assert_asks(retry, "training", f"training:{V1}:retry1", V1)
    assert retry.run_key != first.run_key  # a spent run key would never launch again
    assert again.cursor is None
    project.trained(V1, dg.DagsterRunStatus.FAILURE)
    [third] = project.tick().run_requests
    assert third.run_key == f"training:{V1}:retry2"


def test_the_sensor_walks_a_retraining_on_a_postgresql_instance(tmp_path, postgres):
    world = Project(tmp_path, postgres_url=postgres.database("dagster_sensor"))
    try:
        assert type(world.instance.run_storage).__name__ == "PostgresRunStorage"
        world.commit(V1)
        [curation] = world.tick().run_requests
        assert_asks(curation, "curation", f"curation:{V1}", V1)
        world.curate(["a", "b"])
        asked = world.tick().run_requests
        assert [r.partition_key for r in asked] == ["a", "b"]
        world.controls_done("a", "b")
        [training] = world.tick().run_requests
        assert_asks(training, "training", f"training:{V1}", V1)
        world.trained(V1)
        assert world.tick().cursor == V1
    finally:
        world.instance.dispose()


def test_an_unchanged_data_version_is_skipped(project):
    project.commit(V1)

    tick = project.tick(cursor=V1)

    assert tick.run_requests == []
    assert tick.skip_message == f"data/raw unchanged (md5 {V1}): its retraining succeeded"
    assert tick.cursor == V1


def test_new_videos_in_a_new_data_version_recompute_only_their_partitions(project):
    project.commit(V1)
    project.curate(["a", "b"])
    project.controls_done("a", "b")
    project.trained(V1)
    assert project.tick().cursor == V1

    project.commit(V2)  # one video added to data/raw
    [curation] = project.tick(cursor=V1).run_requests
    assert_asks(curation, "curation", f"curation:{V2}", V2)

    project.curate(["a", "b", "c"])
    controls = project.tick(cursor=V1)
    assert [(r.job_name, r.partition_key) for r in controls.run_requests] == [("controls", "c")]
    assert controls.cursor == V1

    project.controls_done("c")
    training = project.tick(cursor=V1)
    [request] = training.run_requests
    assert_asks(request, "training", f"training:{V2}", V2)
    assert training.cursor == V1  # until that training succeeds


def test_a_video_changed_in_place_recomputes_its_partition_only(project):
    project.commit(V1)
    project.curate({"a": "a1", "b": "b1"})
    project.controls_done("a", digest="a1")
    project.controls_done("b", digest="b1")
    project.trained(V1)
    assert project.tick().cursor == V1

    project.commit(V2)  # b's file rewritten under the same path: same partition, new clips
    project.curate({"a": "a1", "b": "b2"})
    controls = project.tick(cursor=V1)

    [request] = controls.run_requests
    assert request.partition_key == "b"
    assert_asks(request, "controls", f"controls:{V2}:b:b2", V2)
    project.controls_done("b", digest="b2")
    [training] = project.tick(cursor=V1).run_requests
    assert training.job_name == "training"


def test_controls_in_flight_are_waited_for_not_asked_twice(project):
    project.commit(V1)
    project.curate(["a", "b"])
    project.controls_done("a")
    project.run("controls", dg.DagsterRunStatus.STARTED, **{PARTITION_TAG: "b", MD5_TAG: V1})

    tick = project.tick()

    assert tick.run_requests == []
    assert tick.skip_message == "waiting for control signals of b (in flight)"


def test_failed_controls_block_training_and_name_the_run_to_re_execute(project):
    project.commit(V1)
    project.curate(["a", "b", "c"])
    failed = project.run("controls", dg.DagsterRunStatus.FAILURE,
                         **{PARTITION_TAG: "a", MD5_TAG: V1})
    project.controls_done("c")

    asked = project.tick()
    assert [r.partition_key for r in asked.run_requests] == ["b"]  # the others still go

    project.controls_done("b")
    stuck = project.tick()
    assert stuck.run_requests == []
    assert "control signals failed for a" in stuck.skip_message
    assert failed.run_id[:8] in stuck.skip_message


def test_a_failed_curation_is_reported_not_asked_again(project):
    project.commit(V1)
    failed = project.run("curation", dg.DagsterRunStatus.FAILURE, **{MD5_TAG: V1})

    tick = project.tick()

    assert tick.run_requests == []
    assert f"curation of {V1} failed" in tick.skip_message
    assert failed.run_id[:8] in tick.skip_message


def test_curation_waits_for_runs_that_read_the_curated_data(project):
    project.commit(V1)
    busy = project.run("training", dg.DagsterRunStatus.STARTED, **{MD5_TAG: V2})

    tick = project.tick()

    assert tick.run_requests == []
    assert f"waiting for training run {busy.run_id[:8]}" in tick.skip_message


def test_clips_that_fail_their_check_get_no_controls(project):
    project.commit(V1)
    project.curate(["a"])
    project.instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(asset_key=curated_clips.key, check_name="clip_table_is_valid",
                                passed=False)
    )

    tick = project.tick()

    assert tick.run_requests == []
    assert "failed clip_table_is_valid" in tick.skip_message


def test_clips_curated_from_an_older_version_do_not_count(project):
    project.commit(V1)
    project.curate(["a"])
    project.controls_done("a")
    project.commit(V2)  # the data moved on after that curation

    [request] = project.tick(cursor=None).run_requests

    assert_asks(request, "curation", f"curation:{V2}", V2)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ("outs: [unclosed\n", "cannot read"),
        ("outs:\n- path: data/raw\n", "records no md5"),
    ],
    ids=["missing", "not yaml", "no md5"],
)
def test_a_missing_or_unreadable_data_dvc_is_a_skip_naming_the_file(project, content, expected):
    if content is not None:
        (project.root / "data.dvc").write_text(content)

    tick = project.tick(cursor=V1)

    assert tick.run_requests == []
    assert str(project.root / "data.dvc") in tick.skip_message
    assert expected in tick.skip_message
    assert tick.cursor == V1


# --------------------------------------------------------------------------------------------
# weekly_retraining
MONDAY_3AM = datetime(2025, 1, 6, 3, tzinfo=timezone.utc)


def weekly_tick(project: Project, when: datetime = MONDAY_3AM):
    with dg.build_schedule_context(
        instance=project.instance, scheduled_execution_time=when,
        resources=resources_with(project.resource),
    ) as context:
        return SCHEDULE.evaluate_tick(context)


def test_the_schedule_fires_every_monday_at_three_utc():
    sunday_noon = datetime(2025, 1, 5, 12, tzinfo=timezone.utc).timestamp()
    # The iterator the schedule daemon itself uses to find the next ticks.
    ticks = cron_string_iterator(sunday_noon, SCHEDULE.cron_schedule, SCHEDULE.execution_timezone)

    assert [next(ticks), next(ticks)] == [MONDAY_3AM, datetime(2025, 1, 13, 3, tzinfo=timezone.utc)]
    assert SCHEDULE.job_name == "training"


def test_the_weekly_tick_asks_a_training_on_the_current_data(project_on_disk):
    project_on_disk.commit(V1)

    [request] = weekly_tick(project_on_disk).run_requests

    assert_asks(request, "training", "weekly:2025-01-06T03:00:00+00:00", V1,
                trigger="weekly_retraining")


def test_the_weekly_tick_retrains_untracked_data_too(project_on_disk):
    [request] = weekly_tick(project_on_disk).run_requests

    assert request.tags[MD5_TAG] == "untracked"


def test_the_weekly_tick_skips_while_a_training_is_in_flight(project_on_disk):
    project_on_disk.commit(V1)
    busy = project_on_disk.run("training", dg.DagsterRunStatus.STARTED, **{MD5_TAG: V1})

    tick = weekly_tick(project_on_disk)

    assert tick.run_requests == []
    assert busy.run_id[:8] in tick.skip_message


# --------------------------------------------------------------------------------------------
# One view with the CLI: runs that hold the root's step locks, controls already on disk


def test_controls_a_cli_run_is_computing_are_not_asked_again(project):
    project.commit(V1)
    project.curate(["a", "b"])
    project.controls_done("a")
    tick = project.tick_while_held("controls_b")
    assert tick.run_requests == []
    assert "computed outside Dagster: controls_b (pid" in tick.skip_message
    assert [r.partition_key for r in project.tick().run_requests] == ["b"]  # once it is gone


def test_a_cli_curation_in_progress_is_waited_for(project):
    project.commit(V1)
    tick = project.tick_while_held("curate")
    assert tick.run_requests == []
    assert "waiting for a run started outside Dagster: curate (pid" in tick.skip_message


def test_current_controls_on_disk_unblock_training_without_re_executing_the_failed_run(
        curated, tmp_path):
    """The partition's Dagster run failed (its lock was held by a CLI run that then computed
    the controls): the tick records the controls found on disk, and the next asks training."""
    from longvie.config import compose
    from longvie.controls.extract import clips_digest
    from longvie.controls.run import source_plans
    from tests.helpers.project import copy_project

    root = copy_project(curated, tmp_path / "root")
    project = Project(root)
    try:
        config = compose(["profile=smoke", f"paths.root={root}"])
        digests = {plan.source_id: clips_digest(plan, Path(config.paths.curated))
                   for plan in source_plans(config)}
        project.commit(V1)
        project.curate(digests)
        failed, *done = sorted(digests)
        for key in done:
            project.controls_done(key, digest=digests[key])
        project.run("controls", dg.DagsterRunStatus.FAILURE, **{PARTITION_TAG: failed,
                                                                 MD5_TAG: V1})
        recorded = project.tick()
        assert recorded.run_requests == []
        assert [event.partition for event in recorded.asset_events] == [failed]
        assert recorded.asset_events[0].metadata[CLIPS_DIGEST].value == digests[failed]
        for event in recorded.asset_events:  # what the daemon does with a tick's events
            project.instance.report_runless_asset_event(event)
        assert_asks(project.tick().run_requests[0], "training", f"training:{V1}", V1)
    finally:
        project.instance.dispose()

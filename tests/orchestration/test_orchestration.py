"""Dagster: definitions load, string selections parse (antlr 4.13), assets run on `smoke`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from orchestration.assets.data import clip_table_is_valid, curated_clips, raw_videos
from orchestration.definitions import defs
from orchestration.resources import LongvieConfigResource
from tests.helpers.project import REPO, resources_with
from tests.helpers.videos import moving_texture, write


def test_string_asset_selection_parses():
    selection = dg.AssetSelection.from_string("key:raw_videos+")
    keys = selection.resolve([raw_videos, curated_clips])
    assert keys == {dg.AssetKey("raw_videos"), dg.AssetKey("curated_clips")}
    job = defs.resolve_job_def("curation")
    assert job.asset_layer.executable_asset_keys == keys | {dg.AssetKey("depth_estimator")}


def test_dagster_cli_validates_the_code_location(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    done = subprocess.run(
        [Path(sys.executable).parent / "dagster", "definitions", "validate", "-m", "orchestration.definitions"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Validation successful" in done.stderr + done.stdout


def _materialize(root: Path):
    resource = LongvieConfigResource(overrides=["profile=smoke", f"paths.root={root}"])
    return dg.materialize(
        [raw_videos, curated_clips, clip_table_is_valid],
        resources=resources_with(resource),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_assets_materialise_with_metadata_and_the_blocking_check_passes(tmp_path):
    raw = tmp_path / "data" / "raw"
    write(raw / "a.mp4", moving_texture(36, 64, 96, seed=1))
    write(raw / "b.mkv", moving_texture(36, 64, 96, seed=2))
    (raw / "junk.mp4").write_text("no video")

    result = _materialize(tmp_path)

    assert result.success
    [raw_event] = result.asset_materializations_for_node("raw_videos")
    assert raw_event.metadata["files"].value == 3
    [curated_event] = result.asset_materializations_for_node("curated_clips")
    metadata = curated_event.metadata
    assert metadata["videos_curated"].value == 2 and metadata["rejected"].value == 1
    assert "junk.mp4" in metadata["rejection_reasons"].value
    assert metadata["preview"].value.startswith("![clips](data:image/png;base64,")
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["expectations"].value > 10


def test_the_check_fails_when_a_clip_file_disappears(tmp_path):
    write(tmp_path / "data" / "raw" / "a.mp4", moving_texture(36, 64, 96, seed=3))
    assert _materialize(tmp_path).success
    clips = sorted((tmp_path / "data" / "curated" / "clips").rglob("*.mp4"))
    clips[0].unlink()

    result = dg.materialize(
        [curated_clips.to_source_asset(), clip_table_is_valid],
        resources=resources_with(
            LongvieConfigResource(overrides=["profile=smoke", f"paths.root={tmp_path}"])),
        selection=dg.AssetSelection.checks(clip_table_is_valid),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    [check] = result.get_asset_check_evaluations()
    assert not check.passed
    assert "path_exists" in check.metadata["failed"].value


def _restarts(result) -> int:
    return sum(1 for event in result.all_events
               if event.event_type == dg.DagsterEventType.STEP_RESTARTED)


def test_every_job_retries_a_step_that_died_of_something_unexpected(tmp_path, monkeypatch):
    import orchestration.assets.training as training

    for name in ("curation", "controls", "training"):
        assert defs.resolve_job_def(name).op_retry_policy.max_retries >= 1
    calls = []

    def dies_once(context, longvie, mlflow, stage):
        calls.append(stage)
        if len(calls) == 1:
            raise RuntimeError("killed by the OOM killer")
        return dg.MaterializeResult(metadata={"attempt": len(calls)})

    monkeypatch.setattr(training, "_train", dies_once)
    result = defs.resolve_job_def("training").execute_in_process(
        asset_selection=[dg.AssetKey("stage1_controller")], instance=dg.DagsterInstance.ephemeral(),
        run_config={"resources": {"longvie": {"config": {
            "overrides": ["profile=smoke", f"paths.root={tmp_path}"]}}}},
        raise_on_error=False)
    succeeded = {e.step_key for e in result.all_events
                 if e.event_type == dg.DagsterEventType.STEP_SUCCESS}
    assert "stage1_controller" in succeeded and calls == ["1", "1"] and _restarts(result) == 1
    # (Its loss check then fails: this fake training wrote no report. That is the check's job.)


def test_a_step_failing_on_bad_input_is_not_retried_and_says_why(tmp_path):
    result = defs.resolve_job_def("training").execute_in_process(
        asset_selection=[dg.AssetKey("stage1_controller")], instance=dg.DagsterInstance.ephemeral(),
        run_config={"resources": {"longvie": {"config": {
            "overrides": ["profile=smoke", f"paths.root={tmp_path}"]}}}},
        raise_on_error=False)
    assert not result.success and _restarts(result) == 0
    error = result.failure_data_for_node("stage1_controller").error.message
    assert "base" in error, error

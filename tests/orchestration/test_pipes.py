"""Scale-out: training through Dagster Pipes, the blocking loss check, the executor from config."""

from __future__ import annotations

import json
import math
from pathlib import Path

import dagster as dg
import pytest

from orchestration.assets.controls import controls_report
from orchestration.assets.data import curated_clips
from orchestration.assets.training import (
    LOSS_CHECK,
    base_model,
    judge_losses,
    stage1_controller,
    stage2_controller,
    training_loss_checks,
)
from orchestration.launch import EXECUTOR_ENV, code_location_executor, executor_for
from orchestration.resources import LongvieConfigResource
from tests.helpers.project import copy_project, resources_with

pytestmark = pytest.mark.slow  # trainings in Dagster Pipes children

BASE_CHECK, STAGE1_CHECK, STAGE2_CHECK, _ = training_loss_checks


def _resource(root: Path, *overrides: str) -> LongvieConfigResource:
    return LongvieConfigResource(overrides=["profile=smoke", f"paths.root={root}", *overrides])


def _log_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id)]


def _materialise_base(root: Path, instance: dg.DagsterInstance, *overrides: str):
    return dg.materialize(
        [curated_clips.to_source_asset(), controls_report.to_source_asset(), base_model,
         BASE_CHECK],
        resources=resources_with(_resource(root, *overrides)), instance=instance,
    )


def test_base_model_trains_in_a_pipes_child_with_the_in_process_metadata(curated, tmp_path):
    from mlflow import MlflowClient

    root = copy_project(curated, tmp_path / "project")
    instance = dg.DagsterInstance.ephemeral()
    # One phase of single frames, long enough for the check to judge the trend (smoke's three
    # phases are 8 steps of growing clips: too few, and the loss rises with the clip length).
    phases = "training.base.phases=[{frames:1,steps:10,batch_size:4}]"
    through_pipes = _materialise_base(root, instance, phases,
                                      "orchestration.training_launch=pipes")
    assert through_pipes.success
    [event] = through_pipes.asset_materializations_for_node("base_model")
    piped = event.metadata
    assert piped["dit_steps"].value == 10 and piped["vae_steps"].value == 7
    logs = "\n".join(_log_messages(instance, through_pipes.run_id))
    assert "training through Dagster Pipes" in logs
    assert "longvie train stage=base: started by Dagster Pipes in process" in logs  # the child
    # The child's MLflow run carries the Dagster run's tags (passed as Pipes extras).
    report = json.loads((root / "reports" / "train_base.json").read_text())
    tags = MlflowClient(f"sqlite:///{root}/mlflow.db").get_run(report["mlflow"]["run_id"]).data.tags
    assert tags["dagster.run_id"] == through_pipes.run_id
    assert tags["dagster.asset_key"] == "base_model"
    # The blocking check passed on the real run's losses, and says its figures.
    [check] = through_pipes.get_asset_check_evaluations()
    assert check.check_name == LOSS_CHECK and check.passed, check.description
    assert check.metadata["losses"].value == 10 and check.metadata["non_finite"].value == 0
    assert check.metadata["last_mean"].value < check.metadata["first_mean"].value
    assert "decreasing" in check.description

    # In process on the same root (the checkpoints are complete: nothing trains again).
    in_process = _materialise_base(root, instance, phases)
    [event] = in_process.asset_materializations_for_node("base_model")
    assert set(event.metadata) == set(piped)
    assert {k: type(v) for k, v in event.metadata.items()} == {
        k: type(v) for k, v in piped.items()}
    assert event.metadata["registered_version"] == piped["registered_version"]
    assert "started by Dagster Pipes" not in "\n".join(
        _log_messages(instance, in_process.run_id))


def test_a_failing_child_fails_the_asset_with_the_childs_message(tmp_path):
    # Stage 1 needs models/base/model: the child finds it missing (the parent does not look).
    result = dg.materialize(
        [base_model.to_source_asset(), stage1_controller],
        resources=resources_with(_resource(tmp_path, "orchestration.training_launch=pipes")),
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
    )
    assert not result.success
    error = result.failure_data_for_node("stage1_controller").error
    assert "models/base/model does not exist: stage 1 starts from it" in error.message
    assert "longvie train stage=base" in error.message  # the child's advice, word for word


def test_a_missing_launch_command_fails_the_asset_with_the_setting_to_fix(tmp_path):
    result = dg.materialize(
        [base_model.to_source_asset(), stage1_controller],
        resources=resources_with(_resource(tmp_path, "orchestration.training_launch=pipes",
                                           "orchestration.launch_command=[no-such-launcher]")),
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
    )
    error = result.failure_data_for_node("stage1_controller").error
    assert "'no-such-launcher'" in error.message
    assert "orchestration.launch_command" in error.message


def _check_only(check: dg.AssetChecksDefinition, asset: dg.AssetsDefinition, root: Path):
    result = dg.materialize(
        [asset.to_source_asset(), check], resources=resources_with(_resource(root)),
        selection=dg.AssetSelection.checks(check), instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def _hand_written_stage(root: Path, stage: str, losses: list[float]) -> None:
    import torch

    reports = root / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    (reports / f"train_{stage}.json").write_text(json.dumps(
        {"stage": f"stage{stage}", "steps": len(losses), "seconds": 1.0}))
    checkpoints = root / "models" / f"stage{stage}" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save({"global_step": len(losses), "longvie_losses": losses}, checkpoints / "last.ckpt")


def test_the_loss_check_fails_on_a_nan_loss_in_a_stage_checkpoint(tmp_path):
    losses = [1.0 - 0.01 * step for step in range(40)]
    losses[25] = math.nan
    _hand_written_stage(tmp_path, "1", losses)
    evaluation = _check_only(STAGE1_CHECK, stage1_controller, tmp_path)
    assert not evaluation.passed
    assert evaluation.metadata["non_finite"].value == 1
    assert "1 of 40 logged losses are not finite (the first at index 25: nan)" in (
        evaluation.description)


def test_the_loss_check_fails_on_a_rising_base_loss_in_mlflow(tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run = client.create_run(client.create_experiment("longvie"))
    for step in range(20):
        client.log_metric(run.info.run_id, "base/loss", 0.2 + 0.01 * step, step=step)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "train_base.json").write_text(json.dumps(
        {"steps": 20, "mlflow": {"run_id": run.info.run_id, "version": 1}}))
    evaluation = _check_only(BASE_CHECK, base_model, tmp_path)
    assert not evaluation.passed
    assert evaluation.metadata["losses"].value == 20 and evaluation.metadata["window"].value == 2
    assert evaluation.metadata["first_mean"].value == pytest.approx(0.205)
    assert evaluation.metadata["last_mean"].value == pytest.approx(0.385)
    assert "rose beyond 2 standard errors" in evaluation.description
    assert run.info.run_id in evaluation.metadata["source"].value


def test_the_loss_check_fails_without_a_report(tmp_path):
    evaluation = _check_only(STAGE2_CHECK, stage2_controller, tmp_path)
    assert not evaluation.passed and "no report" in evaluation.description


def test_the_trend_is_judged_on_the_first_and_last_tenth():
    assert judge_losses([3.0, 2.0, 2.5, 2.0, 1.0], 5)[0]  # 1.0 < 3.0 (windows of one)
    assert not judge_losses([1.0] * 5 + [1.1] * 5, 5)[0]  # windows of one: no scatter to allow


def test_a_flat_loss_that_scatters_passes_and_a_rise_beyond_the_scatter_fails():
    scatter = [0.30, 0.40] * 10  # the first and last tenth: mean 0.35, each value +-0.05
    flat = scatter + [0.35] * 60 + [value + 0.03 for value in scatter]
    passed, description, figures = judge_losses(flat, 10)
    assert passed and "flat within 2 standard errors" in description
    assert figures["last_mean"] > figures["first_mean"]
    rising = scatter + [0.35] * 60 + [value + 0.10 for value in scatter]
    passed, description, _ = judge_losses(rising, 10)
    assert not passed and "rose beyond 2 standard errors" in description
    assert judge_losses(rising, 10, rise_standard_errors=10.0)[0]
    passed, description, figures = judge_losses([1.0, 1.2], 10)  # too short: finite is enough
    assert passed and "too few to judge the trend" in description
    assert not judge_losses([1.0, math.inf], 10)[0]
    assert not judge_losses([], 10)[0]


def test_every_training_asset_has_the_blocking_loss_check():
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    for asset in ("base_model", "stage1_controller", "stage2_controller", "stage3_controller"):
        key = dg.AssetCheckKey(dg.AssetKey(asset), LOSS_CHECK)
        assert graph.get_check_spec(key).blocking
        assert key in defs.resolve_job_def("training").asset_layer.asset_graph.asset_check_keys


def test_the_executor_comes_from_the_config_or_the_environment(monkeypatch):
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    default = code_location_executor()
    assert default.name == "multiprocess"
    assert default.config_schema.resolve_config({}).value["config"]["max_concurrent"] == 0
    configured = code_location_executor(("orchestration.max_concurrent=3",))
    assert configured.config_schema.resolve_config({}).value["config"]["max_concurrent"] == 3
    assert code_location_executor(("orchestration.executor=in_process",)) is (
        dg.in_process_executor)
    monkeypatch.setenv(EXECUTOR_ENV, "in_process")
    assert code_location_executor() is dg.in_process_executor
    monkeypatch.setenv(EXECUTOR_ENV, "celery")
    with pytest.raises(ValueError, match="LONGVIE_EXECUTOR='celery'"):
        code_location_executor()
    with pytest.raises(ValueError, match="max_concurrent=-1"):
        executor_for("multiprocess", -1)
    from orchestration.definitions import defs

    assert defs.resolve_job_def("training").executor_def.name == "multiprocess"

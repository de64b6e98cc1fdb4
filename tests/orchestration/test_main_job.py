"""`make run`'s main job: the whole asset graph on `smoke`, in-process, on a real instance."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest

from orchestration.definitions import defs
from orchestration.main_job import default_instance, main, materialize_graph
from orchestration.partitions import source_videos

pytestmark = pytest.mark.slow  # make run's main job on smoke


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, str]:
    """`python -m orchestration.main_job profile=smoke` from nothing: render, then the graph."""
    import os

    root = tmp_path_factory.mktemp("main_job")
    old = os.environ.get("DAGSTER_HOME")
    os.environ.pop("DAGSTER_HOME", None)
    try:
        import contextlib
        import io

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["profile=smoke", f"paths.root={root}"])
        printed = out.getvalue()
        assert code == 0, printed
        assert os.environ["DAGSTER_HOME"] == str((root / ".dagster_home").resolve())
    finally:
        if old is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = old
    return root, printed


def _instance(root: Path) -> dg.DagsterInstance:
    import os

    os.environ["DAGSTER_HOME"] = str(root / ".dagster_home")
    try:
        return dg.DagsterInstance.get()
    finally:
        os.environ.pop("DAGSTER_HOME", None)


def test_make_run_materialises_every_asset_and_ends_with_the_decision(made):
    root, printed = made
    instance = _instance(root)
    partitions = set(instance.get_dynamic_partitions(source_videos.name))
    assert len(partitions) == 4  # smoke: 3 train videos + 1 benchmark video
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        if key == dg.AssetKey("pretrained_base"):
            # The one-off pretraining is never part of make run: base_model loads its result.
            assert instance.get_latest_materialization_event(key) is None
        elif key == dg.AssetKey("control_signals"):
            assert instance.get_materialized_partitions(key) == partitions
        else:
            assert instance.get_latest_materialization_event(key) is not None, key
    # The run ends with the benchmark table and the promotion decision.
    decision = json.loads((root / "reports" / "promotion.json").read_text())
    assert decision["decision"] in {"champion", "challenger"}
    assert f"-> {decision['decision']}" in printed
    assert "ssim" in printed and "naive" in printed and "static" in printed
    # The four videos' controls are one run: a single-run backfill over the partition range.
    assert printed.count("dagster: controls[") == 1
    assert "dagster: controls for 4 source videos in one run" in printed
    # It ends with where the time went: the rendering, each job and each asset step.
    assert "make run: rendering the default data" in printed
    for step in ("curated_clips", "stage1_controller", "benchmark", "promotion"):
        assert any(line.strip().startswith(step) and line.rstrip().endswith("%")
                   for line in printed.splitlines()), (step, printed)


def test_every_check_ran_and_passed_and_runs_carry_the_trigger_tag(made):
    root, _ = made
    instance = _instance(root)
    runs = instance.get_runs()
    assert sorted(r.job_name for r in runs) == ["controls", "curation", "training"]
    assert all(r.tags.get("longvie/trigger") == "make run" for r in runs)
    checks = [event.dagster_event.event_specific_data
              for run in runs
              for event in instance.all_logs(run.run_id,
                                             of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
    names = {c.check_name for c in checks}
    assert {"clip_table_is_valid", "controls_are_valid", "promotion_gate"} <= names
    assert all(c.passed for c in checks if c.check_name != "promotion_gate")
    # The one controls run recorded the check once per video, each on its own partition.
    partitions = set(instance.get_dynamic_partitions(source_videos.name))
    assert sorted(c.partition for c in checks if c.check_name == "controls_are_valid") == \
        sorted(partitions)
    # The gate passes for a new champion and warns for a challenger; never an inconsistency.
    decision = json.loads((root / "reports" / "promotion.json").read_text())["decision"]
    [gate] = [c for c in checks if c.check_name == "promotion_gate"]
    assert gate.passed == (decision == "champion")
    assert gate.severity == (dg.AssetCheckSeverity.WARN)


def test_training_runs_in_mlflow_name_the_dagster_run_that_made_them(made):
    import mlflow

    from longvie.config import compose
    from longvie.tracking import tracking_uri

    root, _ = made
    [training] = _instance(root).get_runs(dg.RunsFilter(job_name="training"))
    client = mlflow.MlflowClient(tracking_uri(compose(["profile=smoke", f"paths.root={root}"])))
    found = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`dagster.run_id` = '{training.run_id}'")
    keys = {run.data.tags.get("dagster.asset_key") for run in found}
    assert {"stage1_controller", "stage2_controller", "stage3_controller", "benchmark"} <= keys


def _registry(root: Path) -> tuple[list[str], dict[str, str]]:
    """The registered model's versions and its aliases (alias -> version)."""
    import mlflow

    from longvie.config import compose

    config = compose(["profile=smoke", f"paths.root={root}"])
    client = mlflow.MlflowClient(tracking_uri=config.mlflow.tracking_uri)
    name = config.mlflow.registered_model
    versions = sorted(v.version for v in client.search_model_versions(f"name='{name}'"))
    return versions, dict(client.get_registered_model(name).aliases)


def test_a_second_pass_reuses_what_did_not_change(made):
    root, _ = made
    instance = _instance(root)
    registered = _registry(root)
    again = materialize_graph(["profile=smoke", f"paths.root={root}"], instance, log=lambda _: None)
    assert again.success
    # Nothing changed, so nothing is registered and no alias moves.
    assert _registry(root) == registered
    benchmark = instance.get_latest_materialization_event(dg.AssetKey("benchmark"))
    assert benchmark.asset_materialization.metadata["reused"].value is True
    controls = instance.get_latest_materialization_event(dg.AssetKey("control_signals"))
    assert controls.asset_materialization.metadata["recomputed"].value is False


def test_the_default_instance_lives_in_the_project(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", "restored after the test")
    monkeypatch.delenv("DAGSTER_HOME")
    instance = default_instance(tmp_path)
    assert Path(instance.root_directory) == (tmp_path / ".dagster_home").resolve()


def test_a_failed_pass_names_the_failed_step_and_its_reason(made):
    root, _ = made
    lines: list[str] = []
    missing = root / "no_such_raw_folder"
    failed = materialize_graph(["profile=smoke", f"paths.root={root}", f"paths.raw={missing}"],
                               _instance(root), log=lines.append)
    assert not failed.success and [run["job"] for run in failed.failed()] == ["curation"]
    assert any(line.startswith("dagster: curation FAILED") for line in lines), lines
    assert any(str(missing) in line for line in lines if line.startswith("  ")), lines

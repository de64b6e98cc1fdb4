"""MLflow runs land in the project's store, tagged so a run can be traced to data and code."""

from __future__ import annotations

from pathlib import Path

from longvie.tracking import flatten, mlflow_run


def test_a_run_is_tagged_and_its_artifacts_stay_under_the_project_root(smoke_config, tmp_path,
                                                                       monkeypatch):
    import mlflow

    import longvie.tracking as tracking

    monkeypatch.setattr(tracking, "USER_TRACKING_URI", None)
    monkeypatch.chdir(Path("/"))  # artifacts must not follow the working directory
    config = smoke_config()
    with mlflow_run(config, "probe", {"dagster.partition": "scene"}) as run:
        mlflow.log_text("hello", "note.txt")
    stored = mlflow.get_run(run.info.run_id)
    assert stored.data.tags["longvie.profile"] == "smoke"
    assert stored.data.tags["dagster.partition"] == "scene"
    assert {"longvie.data_hash", "longvie.git_commit"} <= set(stored.data.tags)
    assert (tmp_path / "mlflow.db").is_file()
    assert list((tmp_path / "mlruns").rglob("note.txt"))


def test_nested_config_flattens_to_dotted_params():
    assert flatten({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2]}) == {
        "a.b": "1", "a.c.d": "x", "e": "[1, 2]"
    }


def test_each_project_keeps_its_own_store_within_one_process(tmp_path, monkeypatch):
    import longvie.tracking as tracking
    from longvie.config import compose

    monkeypatch.setattr(tracking, "USER_TRACKING_URI", None)
    first, second = tmp_path / "first", tmp_path / "second"
    for root in (first, second):
        with mlflow_run(compose(["profile=smoke", f"paths.root={root}"]), "probe"):
            pass
    assert (first / "mlflow.db").is_file() and (second / "mlflow.db").is_file()


def test_a_resumed_step_continues_its_run_or_starts_one_when_the_store_lacks_it(smoke_config):
    """Checkpoints can outlive their MLflow store (`dvc pull`, `dvc exp run --temp`)."""
    from longvie.training.trainer import LAST, RUN_ID_FILE, checkpoint_dir, mlflow_logger

    config = smoke_config()
    checkpoints = checkpoint_dir(config, "stage1")
    checkpoints.mkdir(parents=True)
    (checkpoints / LAST).write_bytes(b"a checkpoint to resume from")
    id_file = checkpoints.parent / RUN_ID_FILE

    first = mlflow_logger(config, "probe", step_name="stage1")
    assert mlflow_logger(config, "probe", step_name="stage1").run_id == first.run_id

    foreign = "0123456789abcdef0123456789abcdef"
    id_file.write_text(foreign + "\n")
    fresh = mlflow_logger(config, "probe", step_name="stage1")
    assert fresh.run_id not in (foreign, first.run_id)
    assert id_file.read_text().strip() == fresh.run_id

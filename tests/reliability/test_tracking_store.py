"""The MLflow database is whole or absent: a kill while it is being made, by this project or by
MLflow itself, leaves a root the next command uses; a database holding runs is never touched."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.helpers.project import REPO

# A child process that builds the tracking database and SIGKILLs itself right after the n-th
# table that MLflow's migrations create: a kill in the middle of a migration, every time.
_KILLED_MID_MIGRATION = textwrap.dedent("""
    import os, signal, sys
    from alembic.operations import Operations

    real, made = Operations.create_table, []

    def create_then_die(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        made.append(args[0])
        if len(made) == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    Operations.create_table = create_then_die
    root = sys.argv[2]
    if sys.argv[1] == "mlflow":  # MLflow alone, as the code before the fix let it do
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
        SqlAlchemyStore(f"sqlite:///{root}/mlflow.db", f"{root}/mlruns")
    else:
        from longvie.config import compose
        from longvie.tracking_store import prepare_tracking_store
        prepare_tracking_store(compose(["profile=smoke", f"paths.root={root}"]))
""")


def _kill_while_building(root: Path, builder: str, after_tables: int = 3) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-c", _KILLED_MID_MIGRATION, builder, str(root),
                           str(after_tables)], env=env, capture_output=True, text=True)
    assert done.returncode == -9, f"the builder was not killed:\n{done.stderr[-2000:]}"


def _log_a_run(config) -> str:
    import mlflow

    from longvie.tracking import mlflow_run

    with mlflow_run(config, "probe", {"longvie.step": "probe"}) as run:
        mlflow.log_metric("x", 1.0)
    return run.info.run_id


@pytest.fixture
def project(smoke_config, monkeypatch):
    import longvie.tracking as tracking

    monkeypatch.setattr(tracking, "USER_TRACKING_URI", None)
    return smoke_config()


def test_a_kill_while_the_database_is_built_leaves_none_and_the_next_command_builds_it(
        project, tmp_path):
    _kill_while_building(tmp_path, "longvie")
    assert not (tmp_path / "mlflow.db").exists(), "a half-made database is in place"
    assert list(tmp_path.glob(".mlflow.db.creating-*")), "the kill left no temporary to sweep"
    assert _log_a_run(project)
    assert not list(tmp_path.glob(".mlflow.db.creating-*")), "the dead temporary was kept"


def test_a_database_mlflow_left_half_made_is_kept_aside_and_built_again(project, tmp_path):
    _kill_while_building(tmp_path, "mlflow")
    half_made = hashlib.md5((tmp_path / "mlflow.db").read_bytes()).hexdigest()
    assert _log_a_run(project)
    aside = list(tmp_path.glob("mlflow.db.incomplete-*"))
    assert [p for p in aside if not p.name.endswith("-journal")], "the half-made one was lost"
    kept = next(p for p in aside if not p.name.endswith("-journal"))
    assert hashlib.md5(kept.read_bytes()).hexdigest() == half_made


def test_a_database_with_runs_behind_the_schema_is_left_alone_with_the_upgrade_command(
        project, tmp_path):
    import sqlite3

    from longvie.tracking_store import TrackingStoreError, prepare_tracking_store

    _log_a_run(project)
    database = tmp_path / "mlflow.db"
    with sqlite3.connect(database) as connection:  # as if made by an older MLflow
        connection.execute("UPDATE alembic_version SET version_num = '0584bdc529eb'")
    connection.close()
    before = hashlib.md5(database.read_bytes()).hexdigest()
    with pytest.raises(TrackingStoreError, match=r"1 runs.*mlflow db upgrade sqlite:///"):
        prepare_tracking_store(project)
    assert hashlib.md5(database.read_bytes()).hexdigest() == before


def test_two_commands_building_the_database_at_once_both_use_one_whole_database(project,
                                                                                tmp_path):
    """Each builds its own temporary; the first link wins and the other discards its copy."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    build = ("from longvie.config import compose; "
             "from longvie.tracking_store import prepare_tracking_store; "
             f"prepare_tracking_store(compose(['profile=smoke', 'paths.root={tmp_path}']))")
    builders = [subprocess.Popen([sys.executable, "-c", build], env=env, stderr=subprocess.PIPE,
                                 text=True) for _ in range(2)]
    for builder in builders:
        assert builder.wait() == 0, builder.stderr.read()
    assert _log_a_run(project)
    assert not list(tmp_path.glob(".mlflow.db.creating-*"))


def test_a_step_facing_a_database_it_cannot_use_stops_before_its_work(curated, tmp_path,
                                                                      monkeypatch, capsys):
    """`controls` used to extract, write reports/controls.json and only then fail in MLflow:
    the check comes first, so the report on disk still describes the last real run."""
    import sqlite3

    import longvie.tracking as tracking
    from longvie.cli import main
    from tests.helpers.project import copy_project

    monkeypatch.setattr(tracking, "USER_TRACKING_URI", None)
    root = copy_project(curated, tmp_path / "root")
    (root / "mlflow.db").write_bytes(b"")
    with sqlite3.connect(root / "mlflow.db") as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
        connection.execute("INSERT INTO alembic_version VALUES ('0584bdc529eb')")
        connection.execute("CREATE TABLE runs (run_uuid VARCHAR(32))")
        connection.execute("INSERT INTO runs VALUES ('a-run-someone-logged')")
    connection.close()
    assert main(["controls", "profile=smoke", f"paths.root={root}"]) == 1
    assert "mlflow db upgrade" in capsys.readouterr().err
    assert not (root / "reports" / "controls.json").exists()

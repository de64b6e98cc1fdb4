"""One writer per step and root: a second run of a step refuses (or waits) and names the holder;
a killed holder never blocks the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from longvie.step_lock import StepBusyError, lock_paths, step_lock

REPO = Path(__file__).resolve().parents[2]


def hold_lock(root: Path, step: str, seconds: float = 60.0) -> subprocess.Popen:
    """Another process holding ``step``'s lock on ``root`` (returns once it holds it)."""
    code = textwrap.dedent(f"""
        import sys, time
        from longvie.config import compose
        from longvie.step_lock import step_lock
        config = compose(["profile=smoke", "paths.root={root}"])
        with step_lock(config, {step!r}):
            print("held", flush=True)
            time.sleep({seconds})
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_of_a_step_refuses_naming_the_holder(smoke_config, tmp_path):
    from longvie.curation import curate

    config = smoke_config()
    holder = hold_lock(tmp_path, "curate")
    try:
        with pytest.raises(StepBusyError) as caught:
            curate(config, progress=False)
        message = str(caught.value)
        assert "curate is already running" in message
        assert f"pid {holder.pid}" in message
        assert "step_lock_wait_s" in message
        assert not (tmp_path / "data" / "curated").exists()  # refused before any work
    finally:
        holder.kill()
        holder.wait()


def test_another_rank_of_a_ddp_run_runs_under_its_rank_zero_lock(smoke_config, tmp_path,
                                                                 monkeypatch):
    """Lightning's DDP launcher re-runs `longvie train` for rank 1 while rank 0 holds the step's
    lock: rank 1 must not refuse (it is part of the same run), and rank 0 still refuses a
    second run."""
    from longvie.step_lock import locked_step

    config = smoke_config()
    calls = []

    @locked_step("train_1")
    def train(config) -> str:
        calls.append(os.environ.get("LOCAL_RANK"))
        return "trained"

    holder = hold_lock(tmp_path, "train_1")
    try:
        with pytest.raises(StepBusyError):
            train(config)
        monkeypatch.setenv("LOCAL_RANK", "1")
        assert train(config) == "trained"
        assert calls == ["1"]
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holder_leaves_no_lock_behind_and_its_record_reads_as_stale(smoke_config,
                                                                              tmp_path):
    config = smoke_config()
    holder = hold_lock(tmp_path, "benchmark")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    _, record = lock_paths(config, "benchmark")
    assert record.is_file()  # the killed process could not remove it
    from longvie.step_lock import describe_holder

    assert "stale record" in describe_holder(record)
    with step_lock(config, "benchmark"):  # the kernel released the lock itself
        assert f"{os.getpid()}" in record.read_text()
    assert not record.exists()


def test_a_waiting_run_starts_when_the_holder_ends(smoke_config, tmp_path):
    config = smoke_config("orchestration.step_lock_wait_s=30")
    holder = hold_lock(tmp_path, "synth", seconds=1.5)
    started = time.monotonic()
    with step_lock(config, "synth"):
        waited = time.monotonic() - started
    holder.wait()
    assert 0.5 < waited < 30


def test_a_waiting_run_says_what_it_waits_for_every_few_seconds(smoke_config, tmp_path,
                                                               monkeypatch, capsys):
    import longvie.step_lock as step_locks

    monkeypatch.setattr(step_locks, "WAIT_REPORT_EVERY_S", 0.3)
    config = smoke_config("orchestration.step_lock_wait_s=30")
    holder = hold_lock(tmp_path, "curate", seconds=1.5)
    with step_lock(config, "curate"):
        pass
    holder.wait()
    lines = [line for line in capsys.readouterr().err.splitlines() if "waiting" in line]
    assert len(lines) >= 3, lines
    assert all(f"curate: waiting for the run that holds it (pid {holder.pid}" in line
               for line in lines)
    assert lines[0].endswith("30 s left before giving up")


def test_the_lock_is_reentrant_in_one_thread_and_per_step(smoke_config):
    config = smoke_config()
    with step_lock(config, "train_1"), step_lock(config, "train_1"), step_lock(config, "train_2"):
        pass
    with step_lock(config, "train_1"):
        pass


def test_two_curates_started_together_keep_the_curated_data(smoke_config, tmp_path):
    """The fault this lock fixes: both shared one staging folder and deleted data/curated."""
    from longvie.synth import render_dataset

    render_dataset(smoke_config())
    command = [sys.executable, "-m", "longvie", "curate", "profile=smoke",
               f"paths.root={tmp_path}"]
    runs = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    codes = sorted(code for code, _ in outcomes)
    assert codes in ([0, 0], [0, 1]), outcomes  # the second either refused or ran after
    for code, stderr in outcomes:
        if code == 1:
            assert "curate is already running" in stderr and "pid " in stderr
    assert (tmp_path / "data" / "curated" / "clips.parquet").is_file()


def test_an_mlflow_run_of_a_killed_step_ends_failed_when_the_step_runs_again(smoke_config,
                                                                             tmp_path,
                                                                             monkeypatch):
    from mlflow import MlflowClient

    import longvie.tracking as tracking
    from longvie.tracking import mlflow_run, tracking_uri

    # Both processes on this root's store (mlflow sets MLFLOW_TRACKING_URI in-process).
    monkeypatch.setattr(tracking, "USER_TRACKING_URI", None)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    code = textwrap.dedent(f"""
        import time
        from longvie.config import compose
        from longvie.tracking import mlflow_run
        config = compose(["profile=smoke", "paths.root={tmp_path}"])
        with mlflow_run(config, "benchmark", {{"longvie.step": "benchmark"}}) as run:
            print(run.info.run_id, flush=True)
            time.sleep(60)
    """)
    killed = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    run_id = killed.stdout.readline().strip()
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    config = smoke_config()
    client = MlflowClient(tracking_uri(config))
    assert client.get_run(run_id).info.status == "RUNNING"  # what a SIGKILL leaves
    with mlflow_run(config, "controls", {"longvie.step": "controls"}):
        pass
    assert client.get_run(run_id).info.status == "RUNNING"  # another step's run is not touched
    with mlflow_run(config, "benchmark", {"longvie.step": "benchmark"}):
        pass
    assert client.get_run(run_id).info.status == "FAILED"

"""`make ui` end to end: the launcher's Dagster UI lists every definition, MLflow answers, and
Ctrl-C stops both.

The launcher (``python -m longvie.ui``) runs as a real subprocess on free loopback ports with
a temp DAGSTER_HOME and a temp MLflow store, so nothing here touches the project's own state.
The expected asset, check, job, schedule and sensor names come from ``defs`` itself, so the test
keeps up as the graph grows; a few names the README relies on are asserted on top.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers.project import REPO

pytestmark = pytest.mark.slow

READY_TIMEOUT_S = 120
KNOWN_ASSETS = {
    "raw_videos",
    "curated_clips",
    "control_signals",
    "base_model",
    "stage3_controller",
    "benchmark",
    "promotion",
}
KNOWN_CHECKS = {"clip_table_is_valid", "controls_are_valid"}

WORKSPACE_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
    ... on PythonError { message }
  }
}
"""

REPOSITORY_QUERY = """
query {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection {
      nodes {
        name
        jobs { name }
        schedules { name }
        sensors { name }
        assetNodes {
          assetKey { path }
          assetChecksOrError {
            __typename
            ... on AssetChecks { checks { name } }
          }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode("utf-8", "replace")


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.load(response)
    assert "errors" not in body, body["errors"]
    return body["data"]


class Launcher:
    """The launcher subprocess, its ports and its log (stdout + stderr in one file)."""

    def __init__(self, root: Path) -> None:
        self.dagster_port, self.mlflow_port = free_port(), free_port()
        while self.mlflow_port == self.dagster_port:
            self.mlflow_port = free_port()
        self.root = root
        self.log_path = root / "ui.log"
        env = {
            **os.environ,
            # Ports through the environment, as `make ui DAGSTER_PORT=... MLFLOW_PORT=...` does.
            "DAGSTER_PORT": str(self.dagster_port),
            "MLFLOW_PORT": str(self.mlflow_port),
            "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
        }
        env.pop("DAGSTER_HOME", None)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "longvie.ui",
                    "--dagster-home", str(root / "dagster_home"),
                    # A Hydra override reaches the config the launcher composes.
                    f"mlflow.artifact_root={root}/mlruns",
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def fail(self, why: str) -> None:
        pytest.fail(f"{why}\n--- launcher log ---\n{self.log()[-8000:]}")

    def child_groups(self) -> list[int]:
        return [int(g) for g in re.findall(r"process group (\d+)\)", self.log())]

    def wait_until_ready(self) -> None:
        """Both servers answer and the code location has loaded (or fail with the log)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                self.fail(f"the launcher exited early with code {self.process.returncode}")
            if self._ready():
                return
            if time.monotonic() > deadline:
                self.fail(f"the UIs did not come up in {READY_TIMEOUT_S} s")
            time.sleep(1)

    def _ready(self) -> bool:
        try:
            get(f"http://127.0.0.1:{self.mlflow_port}/health")
            get(f"http://127.0.0.1:{self.dagster_port}/server_info")
            workspace = graphql(self.dagster_port, WORKSPACE_QUERY)["workspaceOrError"]
        except (urllib.error.URLError, OSError):
            return False
        if workspace["__typename"] != "Workspace":
            self.fail(f"workspace error: {workspace}")
        entries = workspace["locationEntries"]
        for entry in entries:
            error = entry["locationOrLoadError"]
            if error and error["__typename"] == "PythonError":
                self.fail(f"code location {entry['name']} failed to load:\n{error['message']}")
        return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)

    def stop(self) -> None:
        """Teardown for a test that failed before stopping it: never leave servers behind."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        for group in self.child_groups():
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    started = Launcher(tmp_path_factory.mktemp("ui"))
    try:
        started.wait_until_ready()
        yield started
    finally:
        started.stop()


def expected_definitions() -> dict[str, set]:
    """What ``defs`` declares, in the shape the GraphQL answer is reduced to."""
    from orchestration.definitions import defs

    repository = defs.get_repository_def()
    graph = repository.asset_graph
    return {
        "assets": {key.to_user_string() for key in graph.get_all_asset_keys()},
        "checks": {(key.asset_key.to_user_string(), key.name) for key in graph.asset_check_keys},
        "jobs": {job.name for job in repository.get_all_jobs()},
        "schedules": {schedule.name for schedule in repository.schedule_defs},
        "sensors": {sensor.name for sensor in repository.sensor_defs},
    }


def test_dagster_ui_lists_every_asset_check_job_schedule_and_sensor(launcher):
    answer = graphql(launcher.dagster_port, REPOSITORY_QUERY)["repositoriesOrError"]
    assert answer["__typename"] == "RepositoryConnection", answer
    [repository] = answer["nodes"]

    checks = set()
    for node in repository["assetNodes"]:
        found = node["assetChecksOrError"]
        assert found["__typename"] == "AssetChecks", found
        asset = "/".join(node["assetKey"]["path"])
        checks |= {(asset, check["name"]) for check in found["checks"]}
    listed = {
        "assets": {"/".join(node["assetKey"]["path"]) for node in repository["assetNodes"]},
        "checks": checks,
        "jobs": {job["name"] for job in repository["jobs"]},
        "schedules": {schedule["name"] for schedule in repository["schedules"]},
        "sensors": {sensor["name"] for sensor in repository["sensors"]},
    }

    assert listed == expected_definitions()
    assert KNOWN_ASSETS <= listed["assets"]
    assert KNOWN_CHECKS <= {name for _, name in listed["checks"]}
    assert {"curation", "controls", "training"} <= listed["jobs"]


def test_mlflow_ui_serves_the_configured_store(launcher):
    status, body = get(f"http://127.0.0.1:{launcher.mlflow_port}/health")
    assert status == 200 and body.strip() == "OK"
    status, page = get(f"http://127.0.0.1:{launcher.mlflow_port}/")
    assert status == 200 and "<html" in page.lower()
    status, body = get(
        f"http://127.0.0.1:{launcher.mlflow_port}/api/2.0/mlflow/experiments/search?max_results=5"
    )
    assert status == 200 and "experiments" in json.loads(body)
    # The store is the one MLFLOW_TRACKING_URI named (the server created it), not ./mlflow.db.
    assert (launcher.root / "mlflow.db").is_file()
    # Dagster keeps its state in the DAGSTER_HOME it was given.
    assert any((launcher.root / "dagster_home").iterdir())


def test_sigint_stops_both_servers_and_exits_zero(launcher):
    groups = launcher.child_groups()
    assert len(groups) == 2, launcher.log()

    launcher.process.send_signal(signal.SIGINT)
    try:
        code = launcher.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        launcher.fail("the launcher did not stop within 60 s of SIGINT")

    assert code == 0, launcher.log()[-4000:]
    for group in groups:
        with pytest.raises(ProcessLookupError):
            os.killpg(group, 0)  # every process of both servers is gone
    assert not listening(launcher.dagster_port)
    assert not listening(launcher.mlflow_port)


def test_a_taken_port_fails_early_and_names_it(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
        done = subprocess.run(
            [
                sys.executable, "-m", "longvie.ui",
                "--dagster-port", str(port),
                "--mlflow-port", str(free_port()),
                "--dagster-home", str(tmp_path / "dagster_home"),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {port}" in done.stderr and "--dagster-port" in done.stderr
    assert "started" not in done.stdout  # nothing was started

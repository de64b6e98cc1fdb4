"""`make ui`: the Dagster UI and the MLflow UI side by side on loopback, stopped together.

Run as ``python -m longvie.ui [--dagster-port N] [--mlflow-port N] [hydra overrides]``.

Why a launcher rather than two shell lines (``dagster dev & mlflow ui``):

- ``dagster dev`` started with a plain ``&`` inherits an ignored SIGINT and cannot be stopped
  with Ctrl-C; a second server left running keeps its port, and the next ``make ui`` fails in a
  way that names neither. Here each server runs in its own process group with default signal
  handling, and one Ctrl-C (or SIGTERM, SIGHUP) stops both groups: SIGINT first, SIGKILL after
  ``STOP_TIMEOUT_S``. Exit code 0 after a requested stop; 1 when a server died on its own.
- Both servers must read the project's state, not a fresh default: the MLflow UI gets the
  tracking URI and artifact root of the Hydra config (``longvie.tracking.tracking_uri``, so
  ``MLFLOW_TRACKING_URI`` still wins), and Dagster gets a project-local ``DAGSTER_HOME``
  (``<paths.root>/.dagster_home``, git-ignored) so runs launched from the UI are still there next
  session (``dagster dev`` without ``DAGSTER_HOME`` keeps them in a temp folder it deletes).
- A taken port is reported before anything starts, naming the port and the flag that moves it.

Only loopback (127.0.0.1): neither server has authentication. Put a proxy with auth in front to
share them. Nothing heavy is imported here (no torch): start-up is the servers' own.
"""

from __future__ import annotations

import argparse
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from longvie.config import compose
from longvie.errors import LongvieError
from longvie.tracking import tracking_uri
from longvie.tracking_store import prepare_tracking_store
from longvie.dagster_home import dagster_home

HOST = "127.0.0.1"
DEFAULT_DAGSTER_PORT = 3000
DEFAULT_MLFLOW_PORT = 5000
# Polite stop (SIGTERM to the process group) first; SIGKILL when a group outlives this.
STOP_TIMEOUT_S = 15.0
# The code location: the checkout's root, two levels above this file (``orchestration`` is
# imported from there: it is not an installed package).
CODE_ROOT = Path(__file__).resolve().parents[2]
# Defaults for the servers' environment; the user's own values win. Telemetry off as everywhere
# in the project; MLflow's server job runner (GenAI evaluation and prompt jobs, unused here)
# starts seven worker processes, so it is off unless asked for.
DEFAULT_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DAGSTER_DISABLE_TELEMETRY": "1",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


class UiError(RuntimeError):
    """A problem the user can fix (port taken, bad port number, missing executable)."""


@dataclass
class Server:
    """One child server: its command, where it answers once up, and its process."""

    name: str
    command: list[str]
    url: str
    ready_path: str
    env: dict[str, str]
    process: subprocess.Popen | None = None
    ready: bool = False


def port_from_env(variable: str, default: int) -> int:
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    return parse_port(value, f"${variable}")


def parse_port(value: str, what: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise UiError(f"{what}={value!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise UiError(f"{what}={port} is not a port number (1-65535)")
    return port


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m longvie.ui",
        description="Start the Dagster UI and the MLflow UI on 127.0.0.1; Ctrl-C stops both.",
    )
    parser.add_argument(
        "--dagster-port",
        help=f"Dagster webserver port (default: $DAGSTER_PORT or {DEFAULT_DAGSTER_PORT})",
    )
    parser.add_argument(
        "--mlflow-port",
        help=f"MLflow UI port (default: $MLFLOW_PORT or {DEFAULT_MLFLOW_PORT})",
    )
    parser.add_argument(
        "--dagster-home",
        type=Path,
        help="where Dagster keeps runs and schedules (default: $DAGSTER_HOME or "
        "<paths.root>/.dagster_home)",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=180.0,
        help="seconds to wait for both UIs to answer before warning (default: 180)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        help="Hydra overrides, as for the CLI (e.g. mlflow.tracking_uri=sqlite:////abs/x.db)",
    )
    return parser.parse_args(argv)


def check_port_free(port: int, what: str, flag: str) -> None:
    """Fail before starting anything when ``port`` is taken on loopback.

    SO_REUSEADDR as the servers themselves bind, so a port in TIME_WAIT is not reported.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as error:
            reason = "is already in use" if error.errno == errno.EADDRINUSE else f"({error})"
            raise UiError(
                f"port {port} on {HOST} {reason}: the {what} cannot start there. Stop what "
                f"holds it (e.g. `ss -ltnp 'sport = :{port}'`) or choose another port with "
                f"{flag}."
            ) from None


def executable(name: str) -> str:
    """The tool from this interpreter's environment first (the project venv), then PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise UiError(f"`{name}` not found next to {sys.executable} nor on PATH: run `make setup`")
    return found


def file_uri(location: str) -> str:
    return location if "://" in location else Path(location).resolve().as_uri()


def plan(args: argparse.Namespace) -> tuple[list[Server], list[str]]:
    """The servers to start (and notes to print), from flags, environment and config."""

    dagster_port = (
        parse_port(args.dagster_port, "--dagster-port")
        if args.dagster_port
        else port_from_env("DAGSTER_PORT", DEFAULT_DAGSTER_PORT)
    )
    mlflow_port = (
        parse_port(args.mlflow_port, "--mlflow-port")
        if args.mlflow_port
        else port_from_env("MLFLOW_PORT", DEFAULT_MLFLOW_PORT)
    )
    config = compose(args.overrides)
    uri = tracking_uri(config)
    # A remote tracking server already has its UI: starting a local one would show other data.
    local_mlflow = not uri.startswith(("http://", "https://"))
    if local_mlflow and dagster_port == mlflow_port:
        raise UiError(f"the Dagster and MLflow UIs cannot share port {dagster_port}")

    home = dagster_home(Path(config.paths.root), args.dagster_home)

    check_port_free(dagster_port, "Dagster UI", "--dagster-port or DAGSTER_PORT=...")
    if local_mlflow:
        check_port_free(mlflow_port, "MLflow UI", "--mlflow-port or MLFLOW_PORT=...")
        # The server would create a missing database in place; a kill then leaves it half-made.
        prepare_tracking_store(config)

    base_env = {**DEFAULT_ENV, **os.environ}
    servers = [
        Server(
            name="Dagster UI",
            command=[
                executable("dagster"), "dev",
                "-m", "orchestration.definitions",
                "-d", str(CODE_ROOT),
                "-h", HOST,
                "-p", str(dagster_port),
            ],
            url=f"http://{HOST}:{dagster_port}",
            ready_path="/server_info",
            env={**base_env, "DAGSTER_HOME": str(home)},
        )
    ]  # fmt: skip
    notes = [f"Dagster home: {home}"]
    if local_mlflow:
        servers.append(
            Server(
                name="MLflow UI",
                command=[
                    executable("mlflow"), "server",
                    "--backend-store-uri", uri,
                    "--default-artifact-root", file_uri(config.mlflow.artifact_root),
                    # Runs here log straight to the store, not through this server's proxy.
                    "--no-serve-artifacts",
                    "--host", HOST,
                    "--port", str(mlflow_port),
                    # One worker is plenty for one user and spares a small machine.
                    "--workers", "1",
                ],
                url=f"http://{HOST}:{mlflow_port}",
                ready_path="/health",
                env=base_env,
            )
        )  # fmt: skip
        notes.append(f"MLflow store: {uri}")
    else:
        notes.append(f"MLflow UI: {uri} (the configured tracking server; none started here)")
    return servers, notes


class Stop:
    """Set by SIGINT/SIGTERM/SIGHUP; the main loop polls it (a handler that raised could
    interrupt ``Popen`` half-way and leave a child untracked)."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        self.signal = signum

    def install(self) -> None:
        # Installed before any child starts: handled signals reset to the default in the child
        # at exec, so the servers can be stopped even when we were started with SIGINT ignored.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_all(servers: Sequence[Server], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGINT every server's process group (what Ctrl-C in a terminal does to a server run on
    its own, and the shutdown both document), wait, then SIGKILL groups still alive.

    Whole groups, because each server has helpers (Dagster's webserver, daemon and code
    servers; MLflow's uvicorn) that would otherwise outlive it and keep the port.
    """
    running = [s for s in servers if s.process is not None]
    for server in running:
        try:
            os.killpg(server.process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    started = time.monotonic()
    alive = list(running)
    while alive and time.monotonic() - started < timeout:
        for server in list(alive):
            server.process.poll()  # reap the leader so that its group can empty
            if not group_alive(server.process.pid):
                alive.remove(server)
                elapsed = time.monotonic() - started
                print(f"[ui] {server.name} stopped ({elapsed:.1f} s)", flush=True)
        time.sleep(0.1)
    for server in alive:
        print(f"[ui] {server.name} did not stop in {timeout:.0f} s: killing it", flush=True)
        try:
            os.killpg(server.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            server.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def run(servers: Sequence[Server], notes: Sequence[str], ready_timeout: float, stop: Stop) -> int:
    """Start the servers, report when they answer, and wait for a signal or a dead server."""
    try:
        for server in servers:
            server.process = subprocess.Popen(
                server.command, cwd=CODE_ROOT, env=server.env, process_group=0
            )
            print(
                f"[ui] started {server.name} (pid {server.process.pid}, process group "
                f"{server.process.pid}) on {server.url}",
                flush=True,
            )
        for note in notes:
            print(f"[ui] {note}", flush=True)
        started = time.monotonic()
        warned = False
        while stop.signal is None:
            for server in servers:
                code = server.process.poll()
                if code is not None:
                    print(
                        f"[ui] {server.name} exited with code {code} (its log is above); "
                        "stopping the other server",
                        flush=True,
                    )
                    return 1
            pending = [s for s in servers if not s.ready]
            for server in pending:
                if answers(server.url + server.ready_path):
                    server.ready = True
                    print(f"[ui] {server.name} is up: {server.url}", flush=True)
                    if all(s.ready for s in servers):
                        print(
                            "[ui] ready:\n"
                            + "".join(f"  {s.name:<11} {s.url}\n" for s in servers)
                            + "  Ctrl-C stops both.",
                            flush=True,
                        )
            if pending and not warned and time.monotonic() - started > ready_timeout:
                warned = True
                names = ", ".join(s.name for s in servers if not s.ready)
                print(f"[ui] still waiting for {names} after {ready_timeout:.0f} s", flush=True)
            time.sleep(0.5 if pending else 0.2)
        print(f"[ui] {signal.Signals(stop.signal).name} received: stopping both servers", flush=True)
        return 0
    finally:
        stop_all(servers)
        print("[ui] stopped", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop = Stop()
    stop.install()
    try:
        servers, notes = plan(args)
    except (UiError, ValueError, LongvieError) as error:  # ConfigError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 2
    if stop.signal is not None:  # asked to stop before anything started
        return 0
    return run(servers, notes, args.ready_timeout, stop)


if __name__ == "__main__":
    sys.exit(main())

"""``longvie serve``: MLflow's own scoring server for a registered version, on loopback.

Checks first (the alias or version exists, the port is free) so that a wrong name fails with the
registry's contents instead of a server that dies while loading; then replaces this process with
``mlflow models serve -m models:/<name>@<alias> --env-manager local``, so stopping it stops the
server.
"""

from __future__ import annotations

import os
import socket
import sys

from longvie.config import LongvieConfig
from longvie.errors import LongvieError
from longvie.registry import registered_version
from longvie.tracking import tracking_uri


def model_uri(config: LongvieConfig) -> str:
    """``models:/<registered model>@<alias>`` or ``models:/<registered model>/<version>``."""
    name, model = config.mlflow.registered_model, str(config.serving.model)
    return f"models:/{name}/{model}" if model.isdigit() else f"models:/{name}@{model}"


def check_servable(config: LongvieConfig) -> int:
    """The version ``serving.model`` names, or a LongvieError saying what the registry holds."""

    return int(registered_version(config, str(config.serving.model)).version)


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise LongvieError(f"serving.port={port}: cannot listen on {host}:{port} ({error}); "
                               "give another port") from error


def serve_command(config: LongvieConfig) -> list[str]:
    serving = config.serving
    return [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri(config),
            "--env-manager", "local", "-h", serving.host, "-p", str(serving.port),
            "-t", str(serving.timeout_s)]


def serve(config: LongvieConfig) -> None:
    """Check, print what is served where, then become the MLflow scoring server."""

    version = check_servable(config)
    check_port_free(config.serving.host, config.serving.port)
    command = serve_command(config)
    print(f"serve: {model_uri(config)} (version {version}) on "
          f"http://{config.serving.host}:{config.serving.port}/invocations", flush=True)
    # MLflow starts `uvicorn` by name: this interpreter's scripts come first, whatever PATH
    # the caller has.
    scripts = os.path.dirname(sys.executable)
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri(config),
           "PATH": os.pathsep.join([scripts, os.environ.get("PATH", "")])}
    os.execve(command[0], command, env)

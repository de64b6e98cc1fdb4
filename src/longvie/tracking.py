"""MLflow runs for pipeline steps: one place that knows the tracking URI, experiment and tags.

Every run is tagged with the profile, the DVC data hash (``data.dvc``) and the git commit, plus
whatever the caller adds (Dagster run id, asset key, partition).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from longvie.config import LongvieConfig
from longvie.data_version import raw_data_hash
from longvie.step_lock import process_alive
from longvie.tracking_store import prepare_tracking_store


# The user's override, read once: ``mlflow.set_tracking_uri`` writes this very variable, so a
# live lookup would make the first run's store stick for every later run in the process.
USER_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI")


def tracking_uri(config: LongvieConfig) -> str:
    return USER_TRACKING_URI or config.mlflow.tracking_uri


def git_commit(root: Path) -> str:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def standard_tags(config: LongvieConfig) -> dict[str, str]:
    root = Path(config.paths.root)
    return {
        "longvie.profile": config.profile_name,
        "longvie.data_hash": raw_data_hash(root) or "untracked",
        "longvie.git_commit": git_commit(root),
    }


def owner_tags() -> dict[str, str]:
    """Which process runs an MLflow run: a later run of the same step ends it as FAILED once
    that process is gone (:func:`fail_orphaned_runs`)."""
    return {"longvie.host": socket.gethostname(), "longvie.pid": str(os.getpid())}


def fail_orphaned_runs(config: LongvieConfig, step: str) -> list[str]:
    """End as FAILED the RUNNING runs of ``step`` (tag ``longvie.step``) that a process on this
    host started and that is gone: a SIGKILL leaves no chance to end a run, and MLflow would
    show it RUNNING for good. Returns the run ids ended."""

    client = tracking_client(config)
    experiment = client.get_experiment_by_name(config.mlflow.experiment)
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id],
                              filter_string=f"attributes.status = 'RUNNING' and "
                                            f"tags.`longvie.step` = '{step}'")
    ended = []
    for run in runs:
        tags = run.data.tags
        pid = int(tags.get("longvie.pid", "0") or 0)
        if tags.get("longvie.host") == socket.gethostname() and not process_alive(pid):
            client.set_terminated(run.info.run_id, "FAILED")
            ended.append(run.info.run_id)
    return ended


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"a.b.c": "value"} (MLflow params are flat strings)."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:6000]
    return flat


def tracking_client(config: LongvieConfig) -> Any:
    """An ``MlflowClient`` on the configured store, which is created whole first if missing."""
    from mlflow import MlflowClient

    prepare_tracking_store(config)
    return MlflowClient(tracking_uri(config))


def ensure_experiment(config: LongvieConfig) -> None:
    """Create the experiment with its artifacts under ``mlflow.artifact_root`` if it is new
    (and the tracking database itself, whole, if it is missing)."""
    import mlflow

    prepare_tracking_store(config)
    mlflow.set_tracking_uri(tracking_uri(config))
    if mlflow.get_experiment_by_name(config.mlflow.experiment) is None:
        artifacts = config.mlflow.artifact_root
        location = artifacts if "://" in artifacts else Path(artifacts).resolve().as_uri()
        mlflow.create_experiment(config.mlflow.experiment, artifact_location=location)


@contextmanager
def mlflow_run(
    config: LongvieConfig, run_name: str, tags: Mapping[str, str] | None = None
) -> Iterator[Any]:
    """Start (and end) a run in the configured experiment; yields the ``mlflow`` module's run."""
    import mlflow

    ensure_experiment(config)
    mlflow.set_experiment(config.mlflow.experiment)
    tags = {**standard_tags(config), **owner_tags(), **(tags or {})}
    if "longvie.step" in tags:
        fail_orphaned_runs(config, tags["longvie.step"])
    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        yield run


def log_config_section(section: object, prefix: str) -> None:
    """Log a dataclass config section as flat params."""
    import dataclasses

    import mlflow

    mlflow.log_params(flatten(dataclasses.asdict(section), f"{prefix}."))

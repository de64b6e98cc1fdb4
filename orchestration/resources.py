"""Dagster resources: the Hydra config, MLflow and DVC, as assets reach them.

Each is a ``ConfigurableResource``, so the launchpad (or a run config) can point a run at another
profile, MLflow UI or DVC remote without code changes. The steps themselves (the `longvie` CLI,
`dvc repro`) read the same config tree, so a Dagster run and a CLI run do the same work.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from longvie.config import LongvieConfig, compose
from longvie.data_version import DVC_FILE, DataVersionError, dvc, raw_data_hash
from longvie.tracking import tracking_uri


class LongvieConfigResource(dg.ConfigurableResource):
    """The config tree every asset reads, chosen by the same overrides as the CLI takes.

    Set ``overrides`` in the launchpad (e.g. ``["profile=smoke"]``) to run another profile.
    """

    overrides: list[str] = []
    # Progress bars of the long steps on the terminal (make run turns them on; in the UI the
    # step logs would fill with them).
    progress: bool = False

    def compose(self) -> LongvieConfig:
        return compose(self.overrides)


class MlflowResource(dg.ConfigurableResource):
    """One MLflow run per materialisation, tagged with the Dagster run that made it, and linked.

    The steps open their MLflow runs themselves (the CLI logs the same runs without Dagster);
    the tracking URI is the config's ``mlflow.tracking_uri`` (``MLFLOW_TRACKING_URI`` wins).
    This resource adds the Dagster run id, asset key and partition as tags, and turns a run id
    into a link to the MLflow UI for the materialisation's metadata.
    """

    # The MLflow UI the links open: `make ui` serves it here (MLFLOW_PORT moves it).
    ui_url: str = "http://127.0.0.1:5000"

    def tags(self, context: dg.AssetExecutionContext) -> dict[str, str]:
        tags = {
            "dagster.run_id": context.run.run_id,
            "dagster.asset_key": context.asset_key.to_user_string(),
        }
        if context.has_partition_key:
            tags["dagster.partition"] = context.partition_key
        return tags

    def run_link(self, config: LongvieConfig, run_id: str) -> dg.MetadataValue:
        """The run's page in the MLflow UI (its experiment looked up in the tracking store); the
        store and run id as text when the store does not hold the run."""
        import mlflow
        from mlflow.exceptions import MlflowException

        store = tracking_uri(config)
        try:
            experiment = mlflow.MlflowClient(store).get_run(run_id).info.experiment_id
        except MlflowException:
            return dg.MetadataValue.text(f"{store} holds no run {run_id}")
        return dg.MetadataValue.url(
            f"{self.ui_url.rstrip('/')}/#/experiments/{experiment}/runs/{run_id}")


class DvcResource(dg.ConfigurableResource):
    """The DVC side of ``data/raw``: the version ``data.dvc`` records, and whether the workspace
    still matches it (a raw folder edited without `dvc commit` is data no version describes)."""

    def data_version(self, root: Path) -> str | None:
        return raw_data_hash(root)

    def workspace_status(self, root: Path) -> str:
        """``clean``, ``changed: <what dvc status says>``, or why it could not be asked."""
        import json

        if not (root / ".dvc").is_dir() or not (root / DVC_FILE).is_file():
            return f"not a DVC project ({root} has no .dvc/ or {DVC_FILE})"
        try:
            changes = json.loads(dvc(root, "status", "--json", DVC_FILE) or "{}")
        except (DataVersionError, json.JSONDecodeError) as error:
            return f"dvc status failed: {error}"
        return "clean" if not changes else f"changed: {json.dumps(changes)}"

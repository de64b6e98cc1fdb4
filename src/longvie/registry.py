"""The MLflow model registry side of training: every finished stage becomes a model version.

A version's source is the run artifact ``model``: an MLflow pyfunc model logged from code
(:mod:`longvie.pyfunc.model_folder`) whose ``weights`` artifact is the stage's model folder
(safetensors / diffusers parts and ``longvie.json``: nothing to unpickle). Versions are only
ever added, never overwritten; aliases (``champion``, ``challenger``) are the promotion gate's.
"""

from __future__ import annotations

from pathlib import Path

from longvie.config import LongvieConfig
from longvie.config.promotion_rules import CHAMPION
from longvie.errors import LongvieError
from longvie.pyfunc.model_folder import save_pyfunc_model, weights_of
from longvie.tracking import standard_tags, tracking_client, tracking_uri

MODEL_ARTIFACT = "model"


def ensure_registered_model(client, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(
                name, description="LongVie-style controllable long-video generator "
                "(Wan I2V DiT + dense/sparse dual controller)")
        except MlflowException:
            client.get_registered_model(name)  # created by a concurrent run meanwhile


def log_and_register(config: LongvieConfig, run_id: str, model_dir: Path, stage: str,
                     steps: int, pictures: list[Path] = (), report: Path | None = None,
                     extra_tags: dict[str, str] | None = None) -> dict:
    """Log the model folder (+ pictures, report) to ``run_id`` and register it as a version,
    unless this run already registered the weights of ``steps`` steps (a re-run that found its
    training finished must not add a duplicate version)."""
    import tempfile

    client = tracking_client(config)
    name = config.mlflow.registered_model
    # A step re-run with nothing to train continues its MLflow run: its version exists already.
    for version in client.search_model_versions(f"name='{name}' and run_id='{run_id}'"):
        if version.tags.get("longvie.steps") == str(steps):
            return {"run_id": run_id, "registered_model": name, "version": int(version.version)}
    with tempfile.TemporaryDirectory(prefix="longvie-pyfunc-") as folder:
        pyfunc_dir = save_pyfunc_model(config, model_dir, Path(folder) / MODEL_ARTIFACT)
        client.log_artifacts(run_id, str(pyfunc_dir), MODEL_ARTIFACT)
    for picture in pictures:
        client.log_artifact(run_id, str(picture), "pictures")
    if report is not None:
        client.log_artifact(run_id, str(report), "reports")
    ensure_registered_model(client, name)
    artifact_uri = client.get_run(run_id).info.artifact_uri
    tags = {**standard_tags(config), "longvie.stage": stage, "longvie.steps": str(steps),
            **(extra_tags or {})}
    version = client.create_model_version(name, f"{artifact_uri}/{MODEL_ARTIFACT}", run_id=run_id,
                                          tags=tags, description=f"{stage} of profile "
                                          f"{config.profile_name}")
    return {"run_id": run_id, "registered_model": name, "version": int(version.version)}


def resolve_model(config: LongvieConfig, model: str) -> Path:
    """A local model folder for ``model`` (see :func:`model_version`)."""
    return model_version(config, model)[1]


def registered_version(config: LongvieConfig, model: str):
    """The registered version ``model`` names (a version number or an alias), or a LongvieError
    that says which versions and aliases the registry does hold."""
    from mlflow.exceptions import MlflowException

    name = config.mlflow.registered_model
    client = tracking_client(config)
    try:
        return (client.get_model_version(name, model) if model.isdigit()
                else client.get_model_version_by_alias(name, model))
    except MlflowException as error:
        held = held_versions(client, name)
        try:
            aliases = sorted(client.get_registered_model(name).aliases)
        except MlflowException:
            aliases = []
        raise LongvieError(
            f"model {model!r}: registered model {name!r} has no such "
            f"{'version' if model.isdigit() else 'alias'} (versions {held or 'none'}, aliases "
            f"{aliases or 'none'}) in {tracking_uri(config)}") from error


def model_version(config: LongvieConfig, model: str) -> tuple[int | None, Path]:
    """The registered version (None for a plain folder) and a local folder for ``model``: a
    folder path, a version number of the registered model, or an alias (``champion``,
    ``challenger``). Fails with the reason before anything is loaded: an unknown alias or
    version names what the registry does hold."""
    import mlflow.artifacts

    folder = Path(model)
    if folder.is_dir():
        return None, folder
    if "/" in model or model.startswith("."):
        raise LongvieError(f"model {model!r}: no such folder")
    try:
        version = registered_version(config, model)
    except LongvieError as error:
        raise LongvieError(f"{error} (and {model!r} is not a folder)") from error
    local = mlflow.artifacts.download_artifacts(version.source, tracking_uri=tracking_uri(config))
    return int(version.version), weights_of(Path(local))


def held_versions(client, name: str) -> list[int]:
    """The version numbers of registered model ``name`` (none when it does not exist), for
    errors that say what the registry does hold."""
    from mlflow.exceptions import MlflowException

    try:
        return sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    except MlflowException:
        return []


def latest_version(config: LongvieConfig, stage: str) -> int | None:
    """The newest registered version whose ``longvie.stage`` tag is ``stage`` (e.g. stage3)."""
    from mlflow.exceptions import MlflowException

    client = tracking_client(config)
    try:
        versions = client.search_model_versions(f"name='{config.mlflow.registered_model}'")
    except MlflowException:
        return None
    numbers = [int(v.version) for v in versions if v.tags.get("longvie.stage") == stage]
    return max(numbers, default=None)


def current_champion(config: LongvieConfig) -> int | None:
    """The version the ``champion`` alias points to; None when unset or nothing is registered."""

    return alias_version(tracking_client(config), config.mlflow.registered_model, CHAMPION)


def alias_version(client, name: str, alias: str) -> int | None:
    """The version ``alias`` points to; None when unset or when the model does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = aliases.get(alias)
    return None if version is None else int(version)

"""MLflow runs of control extraction: the report's figures as metrics, previews as artifacts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from longvie.config import LongvieConfig
from longvie.controls.extract import META_NAME, PREVIEW_NAME
from longvie.controls.run import REPORT_NAME
from longvie.tracking import log_config_section, mlflow_run


def report_metrics(report: dict) -> dict[str, float]:
    """The numeric figures of ``controls.json`` as flat MLflow metric names."""
    metrics: dict[str, float] = {}
    for section in ("tracking", "depth"):
        for key, value in report[section].items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics[f"{section}.{key}"] = float(value)
    for key, value in report["frames_per_second"].items():
        if value is not None:
            metrics[f"fps.{key}"] = float(value)
    for key in ("videos", "extracted", "computed", "seconds"):
        metrics[key] = float(report[key])
    metrics["failed"] = float(len(report["failed"]))
    return metrics


def log_controls_run(
    config: LongvieConfig, report: dict, tags: Mapping[str, str] | None = None
) -> str:
    """One run for a whole ``longvie controls``: metrics, the report and every preview."""
    import mlflow

    controls_dir = Path(config.paths.controls)
    with mlflow_run(config, "controls", {"longvie.step": "controls", **(tags or {})}) as run:
        log_config_section(config.controls, "controls")
        mlflow.log_metrics(report_metrics(report))
        mlflow.log_artifact(str(Path(config.paths.reports) / REPORT_NAME))
        for preview in sorted(controls_dir.glob(f"*/{PREVIEW_NAME}")):
            mlflow.log_artifact(str(preview), artifact_path=f"previews/{preview.parent.name}")
        return run.info.run_id


def log_source_run(
    config: LongvieConfig, source_id: str, summary: Mapping[str, float], tags: Mapping[str, str]
) -> str:
    """One run per Dagster partition: that video's figures, preview and metadata."""
    import mlflow

    out_dir = Path(config.paths.controls) / source_id
    name = f"controls/{source_id}"
    with mlflow_run(config, name, {"longvie.step": "controls", **tags}) as run:
        mlflow.log_metrics({k: float(v) for k, v in summary.items() if v is not None})
        for artifact in (out_dir / PREVIEW_NAME, out_dir / META_NAME):
            if artifact.is_file():
                mlflow.log_artifact(str(artifact))
        return run.info.run_id

"""The training group: the base model (more stages follow with issue 4)."""

import json
from pathlib import Path

import dagster as dg

from orchestration.assets.controls import controls_report, mlflow_tags
from orchestration.assets.data import curated_clips
from orchestration.resources import LongvieConfigResource


@dg.asset(
    group_name="training",
    deps=[curated_clips, controls_report],
    description="The I2V base: pretrained Wan weights in production; on the CPU profiles a VAE, "
    "the latent cache and a small DiT + caption encoder trained on the curated clips "
    "(models/base/model, a diffusers-style folder).",
)
def base_model(
    context: dg.AssetExecutionContext, longvie: LongvieConfigResource
) -> dg.MaterializeResult:
    from longvie.errors import LongvieError
    from longvie.training.base import train_base

    config = longvie.compose()
    if config.model.pretrained:
        return dg.MaterializeResult(metadata={"pretrained": config.model.pretrained})
    try:
        report = train_base(config, progress=False, tags=mlflow_tags(context))
    except LongvieError as error:
        raise dg.Failure(description=str(error)) from error
    reports = Path(config.paths.reports)
    reports.mkdir(parents=True, exist_ok=True)
    (reports / "train_base.json").write_text(json.dumps(report, indent=2) + "\n")
    held_out = report["heldout"]
    return dg.MaterializeResult(
        metadata={
            "model": dg.MetadataValue.path(report["model"]),
            "dit_steps": report["steps"],
            "vae_steps": report["vae"]["steps"],
            "vae_heldout_psnr_db": report["vae"]["heldout_psnr_db"],
            "heldout_flow_matching_loss": held_out["flow_matching_loss"],
            "heldout_flow_matching_loss_at_init": held_out["flow_matching_loss_at_init"],
            "seconds": report["seconds"],
        }
    )

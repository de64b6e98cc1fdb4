"""The training group: the base model, then the dual controller's stages 1, 2 and 3."""

import dagster as dg

from orchestration.assets.controls import controls_report, mlflow_run_link, mlflow_tags
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


def _train_stage(context: dg.AssetExecutionContext, longvie: LongvieConfigResource,
                 key: str) -> dg.MaterializeResult:
    """Train one controller stage; held-out comparison and registry version as metadata."""
    from longvie.errors import LongvieError
    from longvie.training.stage_run import train_stage

    config = longvie.compose()
    try:
        report = train_stage(config, key, progress=False, tags=mlflow_tags(context))
    except LongvieError as error:
        raise dg.Failure(description=str(error)) from error
    held_out = report["heldout"]
    table = "\n".join(["| held-out loss | value |", "| --- | --- |"] + [
        f"| {name.removeprefix('loss_')} | {value:.5f} |"
        for name, value in held_out.items() if name.startswith("loss_")
    ])
    metadata = {
        "model": dg.MetadataValue.path(report["model"]),
        "steps": report["steps"],
        "train_seconds": report["train_seconds"],
        "final_training_loss": report["final_loss"],
        "heldout": dg.MetadataValue.md(table),
        "seconds": report["seconds"],
    }
    if "mlflow" in report:
        metadata["mlflow_run"] = mlflow_run_link(config, report["mlflow"]["run_id"])
        metadata["registered_version"] = report["mlflow"]["version"]
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name="training",
    deps=[base_model],
    description="Stage 1, multi-modal guidance: the dual controller trained on depth + point-map "
    "controls over the frozen base; dense degradations in the last third (models/stage1/model).",
)
def stage1_controller(
    context: dg.AssetExecutionContext, longvie: LongvieConfigResource
) -> dg.MaterializeResult:
    return _train_stage(context, longvie, "1")


@dg.asset(
    group_name="training",
    deps=[stage1_controller],
    description="Stage 2, degradation-aware first frame: the conditioning frame is replaced by "
    "VAE round trips or a partial regeneration by the model (models/stage2/model).",
)
def stage2_controller(
    context: dg.AssetExecutionContext, longvie: LongvieConfigResource
) -> dg.MaterializeResult:
    return _train_stage(context, longvie, "2")


@dg.asset(
    group_name="training",
    deps=[stage2_controller],
    description="Stage 3, history context: preceding frames as tokens, the stage-3 loss; the "
    "controller and the base self-attention train (models/stage3/model).",
)
def stage3_controller(
    context: dg.AssetExecutionContext, longvie: LongvieConfigResource
) -> dg.MaterializeResult:
    return _train_stage(context, longvie, "3")

"""The training group: the base model, then the dual controller's stages 1, 2 and 3.

Each asset trains in the step's process or, with ``orchestration.training_launch: pipes``, runs
``longvie train`` as a Dagster Pipes subprocess (orchestration.launch); both report the same
metadata (``longvie.steps.training_metadata``). Each has the blocking check
``training_loss_is_finite_and_not_rising``, so a diverged stage stops the next.
"""

import json
import math
import statistics
from pathlib import Path

import dagster as dg

from longvie.errors import LongvieError
from longvie.steps import train_report, training_metadata
from longvie.tracking import tracking_client, tracking_uri
from orchestration.assets.controls import controls_report
from orchestration.assets.data import curated_clips
from orchestration.launch import dagster_metadata, train_through_pipes
from orchestration.resources import LongvieConfigResource, MlflowResource


def _train(context: dg.AssetExecutionContext, longvie: LongvieConfigResource,
           mlflow: MlflowResource, stage: str) -> dg.MaterializeResult:
    """Train ``stage`` (base, 1, 2, 3) here or through Pipes, as ``orchestration`` says."""

    config = longvie.compose()
    settings = config.orchestration
    if settings.training_launch == "pipes":

        result = train_through_pipes(context, stage, list(longvie.overrides),
                                     list(settings.launch_command), mlflow.tags(context),
                                     tracking_uri(config))
        metadata = dict(result.metadata or {})
    else:
        try:
            report = train_report(config, stage, progress=longvie.progress, tags=mlflow.tags(context))
        except LongvieError as error:
            raise dg.Failure(allow_retries=False, description=str(error)) from error
        metadata = dagster_metadata(training_metadata(config, stage, report))
    if "mlflow_run_id" in metadata:
        metadata["mlflow_run"] = mlflow.run_link(config, metadata["mlflow_run_id"].value)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name="training",
    deps=[curated_clips, controls_report],
    description="The I2V base, loaded from model.pretrained (wan14b: Wan2.1-I2V-14B; tiny: the "
    "shipped weights/tiny-base made by `longvie pretrain`), checked against the config, the "
    "latents of every clip cached with its VAE and registered as a model version with its "
    "provenance; with model.pretrained='' a VAE + DiT trained from scratch on the curated clips.",
)
def base_model(
    context: dg.AssetExecutionContext, longvie: LongvieConfigResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    return _train(context, longvie, mlflow, "base")


@dg.asset(
    group_name="training",
    deps=[base_model],
    description="Stage 1, multi-modal guidance: the dual controller trained on depth + point-map "
    "controls over the frozen base; dense degradations in the last third (models/stage1/model).",
)
def stage1_controller(
    context: dg.AssetExecutionContext, longvie: LongvieConfigResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    return _train(context, longvie, mlflow, "1")


@dg.asset(
    group_name="training",
    deps=[stage1_controller],
    description="Stage 2, degradation-aware first frame: the conditioning frame is replaced by "
    "VAE round trips or a partial regeneration by the model (models/stage2/model).",
)
def stage2_controller(
    context: dg.AssetExecutionContext, longvie: LongvieConfigResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    return _train(context, longvie, mlflow, "2")


@dg.asset(
    group_name="training",
    deps=[stage2_controller],
    description="Stage 3, history context: preceding frames as tokens, the stage-3 loss; the "
    "controller and the base self-attention train (models/stage3/model).",
)
def stage3_controller(
    context: dg.AssetExecutionContext, longvie: LongvieConfigResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    return _train(context, longvie, mlflow, "3")


# --- the blocking loss check ------------------------------------------------------------------

LOSS_CHECK = "training_loss_is_finite_and_not_rising"


def logged_losses(config, stage: str, report: dict) -> tuple[list[float], str]:
    """The per-step training losses of the run behind ``report``, and where they came from.

    A controller stage's checkpoint (``models/stage<N>/checkpoints/last.ckpt``) keeps every
    step's loss (``longvie_losses``); the base's checkpoints keep none, so its losses are the
    MLflow history of ``base/loss`` (the DiT, every ``training.trainer.log_every`` steps) of the
    report's run, as is a stage's when its checkpoint holds none (e.g. a sharded one).
    """

    step_name = "base" if stage == "base" else f"stage{stage}"
    if stage != "base":
        last = Path(config.paths.models) / step_name / "checkpoints" / "last.ckpt"
        if last.is_file():
            import torch

            # Our own checkpoints hold tensors and plain containers only: never unpickle code.
            state = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
            if state.get("longvie_losses"):
                return [float(v) for v in state["longvie_losses"]], f"{last} (every step)"
    run_id = report.get("mlflow", {}).get("run_id")
    if not run_id:
        return [], "no checkpoint with losses, and no MLflow run in the report"
    key = f"{step_name}/loss"
    history = tracking_client(config).get_metric_history(run_id, key)
    by_step: dict[int, float] = {}
    for metric in sorted(history, key=lambda m: (m.step, m.timestamp)):
        by_step[metric.step] = float(metric.value)  # a step logged twice (resumed): the last
    return [by_step[s] for s in sorted(by_step)], f"MLflow run {run_id}, metric {key}"


def judge_losses(losses: list[float], min_steps: int,
                 rise_standard_errors: float = 2.0) -> tuple[bool, str, dict]:
    """Pass when every loss is finite and the mean of the last 10 % of them does not exceed the
    mean of the first 10 % by more than ``rise_standard_errors`` standard errors of their
    difference (judged from ``min_steps`` losses on); the figures go in the metadata.

    A stage that starts from a trained controller (stage 2 from stage 1) has a flat loss whose
    per-step values scatter with the noise level drawn: "last below first" is then a coin flip,
    while a diverging run rises far beyond the scatter.
    """
    count = len(losses)
    window = max(1, math.ceil(count / 10))
    bad = [index for index, value in enumerate(losses) if not math.isfinite(value)]
    metadata: dict = {"losses": count, "non_finite": len(bad), "window": window}
    if not count:
        return False, "no per-step training losses found", metadata
    if bad:
        return False, (f"{len(bad)} of {count} logged losses are not finite (the first at "
                       f"index {bad[0]}: {losses[bad[0]]})"), metadata
    head, tail = losses[:window], losses[-window:]
    first, last = sum(head) / window, sum(tail) / window
    spread = [statistics.variance(part) if window > 1 else 0.0 for part in (head, tail)]
    error = math.sqrt(sum(spread) / window)
    allowed = first + rise_standard_errors * error
    metadata |= {"first_mean": first, "last_mean": last, "standard_error": error}
    figures = (f"mean of the last {window} losses {last:.5f} vs the first {window} "
               f"{first:.5f} (standard error of the difference {error:.5f})")
    if count < min_steps:
        return True, (f"all {count} losses finite; too few to judge the trend "
                      f"(orchestration.loss_trend_min_steps={min_steps}): {figures}"), metadata
    if last < first:
        return True, f"all {count} losses finite, decreasing: {figures}", metadata
    if last <= allowed:
        return True, (f"all {count} losses finite, flat within {rise_standard_errors:g} "
                      f"standard errors: {figures}"), metadata
    return False, (f"the training loss rose beyond {rise_standard_errors:g} standard errors: "
                   f"{figures}"), metadata


def _check_training_loss(config, stage: str) -> dg.AssetCheckResult:
    if stage == "base" and config.model.pretrained:
        return dg.AssetCheckResult(passed=True, description="pretrained weights "
                                   f"({config.model.pretrained}): nothing was trained")
    path = Path(config.paths.reports) / f"train_{stage}.json"
    if not path.is_file():
        return dg.AssetCheckResult(passed=False, description=f"no report {path}")
    losses, source = logged_losses(config, stage, json.loads(path.read_text()))
    settings = config.orchestration
    passed, description, figures = judge_losses(losses, settings.loss_trend_min_steps,
                                                settings.loss_rise_standard_errors)
    return dg.AssetCheckResult(
        passed=passed, description=description,
        metadata={**figures, "report": dg.MetadataValue.path(str(path)), "source": source})


def training_loss_check(asset: dg.AssetsDefinition, stage: str) -> dg.AssetChecksDefinition:
    """The blocking ``training_loss_is_finite_and_not_rising`` check of one training asset."""

    @dg.asset_check(
        asset=asset,
        name=LOSS_CHECK,
        blocking=True,
        description="Every logged training loss is finite and the mean of the last 10 % is not "
        "above the mean of the first 10 % by more than orchestration.loss_rise_standard_errors "
        "standard errors (reports/train_<stage>.json's run); blocking, so a diverged stage "
        "stops the next.",
    )
    def check(longvie: LongvieConfigResource) -> dg.AssetCheckResult:
        return _check_training_loss(longvie.compose(), stage)

    return check


training_loss_checks = [
    training_loss_check(asset, stage)
    for asset, stage in ((base_model, "base"), (stage1_controller, "1"),
                         (stage2_controller, "2"), (stage3_controller, "3"))
]


# --- the one-off pretraining of the tiny base -------------------------------------------------


@dg.asset(
    group_name="pretraining",
    description="`longvie pretrain`, the one-off that makes the tiny base (as downloading Wan "
    "weights is in production): renders the pretraining corpus (data/pretrain, pretrain.dvc), "
    "trains the tiny VAE, then the I2V DiT + caption encoder, and writes pretrain.output "
    "(tiny: weights/tiny-base), then the DiT and the dual controller together over it "
    "(pretrain.control.output, tiny: weights/tiny-longvie). Resumable across kills and sessions. "
    "Not part of the training job: base_model loads its result through model.pretrained, "
    "stage 1 through model.controlled.",
)
def pretrained_base(context: dg.AssetExecutionContext, longvie: LongvieConfigResource,
                    mlflow: MlflowResource) -> dg.MaterializeResult:
    import base64

    from longvie.training.pretrain.run import pretrain

    config = longvie.compose()
    try:
        report = pretrain(config, progress=longvie.progress, tags=mlflow.tags(context),
                          command="dagster: pretrained_base " + " ".join(longvie.overrides))
    except LongvieError as error:
        raise dg.Failure(allow_retries=False, description=str(error)) from error
    metadata = {"corpus_version": report["corpus"]["version"], "parts": report["parts"]}
    if "vae" in report:
        metadata |= _base_metadata(report)
    if "control" in report:
        metadata |= _control_metadata(report["control"])
    part = report.get("control") or report
    strip = Path(part["pictures"]["strip"])
    encoded = base64.b64encode(strip.read_bytes()).decode()
    metadata["samples"] = dg.MetadataValue.md(f"![held-out samples](data:image/png;base64,"
                                              f"{encoded})")
    run_id = part.get("mlflow_run_id") or report.get("dit", {}).get("mlflow_run_id")
    metadata["mlflow_run"] = mlflow.run_link(config, run_id) if run_id else "not logged"
    return dg.MaterializeResult(metadata=metadata)


def _base_metadata(report: dict) -> dict:
    vae, dit = report["vae"]["heldout"], report["dit"]["heldout"]
    return {
        "output": dg.MetadataValue.path(report["output"]),
        "vae_steps": report["vae"]["steps"],
        "dit_steps": report["dit"]["steps"],
        "train_seconds": report["seconds_training"],
        "vae_heldout_psnr_db": vae["psnr_db"],
        "vae_heldout_ssim": vae["ssim"],
        "generated_sharpness_ratio": dit["generated"]["sharpness_ratio"],
        "heldout_flow_matching_loss": dit["flow_matching_loss"],
    }


def _control_metadata(control: dict) -> dict:
    heldout = control["heldout"]
    unguided = heldout["generated"]["guidance_1"]
    return {
        "control_output": dg.MetadataValue.path(control["model"]),
        "control_steps": control["steps"],
        "control_train_seconds": control["train_seconds"] or 0.0,
        "control_loss_ratio_controls_vs_zeroed": heldout["loss_ratio_controls_vs_zeroed"],
        "control_generated_ssim": unguided["ssim"],
        "control_generated_psnr_db": unguided["psnr_db"],
        "control_generated_track_epe_px": unguided["track_epe_px"],
    }

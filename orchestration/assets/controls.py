"""The controls group: the depth estimator, per-video control signals, and their report.

``control_signals`` has one dynamic partition per curated source video; ``curated_clips``
registers them, so a new raw video becomes a new partition and only it needs computing.
"""

import base64
from pathlib import Path

import dagster as dg

from orchestration.assets.data import curated_clips
from orchestration.partitions import CLIPS_DIGEST, source_videos
from orchestration.resources import LongvieConfigResource, MlflowResource


def _image_md(path: Path, alt: str, mime: str) -> dg.MetadataValue:
    encoded = base64.b64encode(path.read_bytes()).decode()
    return dg.MetadataValue.md(f"![{alt}](data:{mime};base64,{encoded})")


@dg.asset(
    group_name="controls",
    deps=[curated_clips],
    description="Small depth network trained on the rendered ground truth (train split); the "
    "depth model of the `estimated` controls unless Depth Anything weights are configured.",
)
def depth_estimator(longvie: LongvieConfigResource) -> dg.MaterializeResult:
    from longvie.controls.depth_estimator import PLOT_NAME, train_depth_estimator
    from longvie.errors import LongvieError

    config = longvie.compose()
    if config.controls.depth.kind != "longvie":
        return dg.MaterializeResult(
            metadata={"model": config.controls.depth.model, "trained": False,
                      "note": "controls.depth.kind is not 'longvie': pretrained weights are used"}
        )
    try:
        report = train_depth_estimator(config, progress=longvie.progress)
    except LongvieError as error:
        raise dg.Failure(allow_retries=False, description=str(error)) from error
    metadata = {
        "model": dg.MetadataValue.path(str(config.controls.depth.model)),
        "trained": not report["skipped"],
        "steps": report["steps"],
        "train_frames": report["train_frames"],
        "first_loss": report["first_loss"],
        "final_loss": report["final_loss"],
    }
    plot = Path(config.paths.reports) / PLOT_NAME
    if plot.is_file():
        metadata["loss_curve"] = _image_md(plot, "loss", "image/png")
    return dg.MaterializeResult(metadata=metadata)


def source_summary(meta: dict) -> dict[str, float]:
    """One video's figures for MLflow and the materialisation: its size and, where ground truth
    exists, the estimators' accuracy against it."""
    from longvie.controls.accuracy import DepthStats, TrackingStats

    summary: dict[str, float] = {"frames": meta["frames"], "clips": len(meta["clips"])}
    if "accuracy" in meta:
        tracking = TrackingStats.from_json(meta["accuracy"]["tracking"]).summary()
        depth = DepthStats.from_json(meta["accuracy"]["depth"]).summary()
        summary.update({
            "tracking.median_epe_px": tracking["median_epe_px"],
            "tracking.visibility_accuracy": tracking["visibility_accuracy"],
            "depth.abs_rel": depth["abs_rel"],
            "depth.delta1": depth["delta1"],
        })
    return summary


def _plan(config, source_id: str):
    from longvie.controls.run import source_plans

    for plan in source_plans(config):
        if plan.source_id == source_id:
            return plan
    raise dg.Failure(
        allow_retries=False,
        description=f"source video {source_id} is no longer in the clip table; "
        "re-materialise curated_clips (it removes stale partitions)"
    )


@dg.asset(
    group_name="controls",
    partitions_def=source_videos,
    deps=[curated_clips, depth_estimator],
    description="Per source video: globally normalised 16-bit depth and point-map videos with "
    "raw tracks (data/controls/<source>/), from ground truth or from the estimators.",
)
def control_signals(
    context: dg.AssetExecutionContext, longvie: LongvieConfigResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    from longvie.controls.extract import PREVIEW_NAME, clips_digest
    from longvie.controls.report import log_source_run
    from longvie.controls.run import extract_checked
    from longvie.errors import LongvieError

    config = longvie.compose()
    plan = _plan(config, context.partition_key)
    try:
        meta = extract_checked(plan, config)
    except LongvieError as error:
        raise dg.Failure(allow_retries=False, description=f"{plan.source_path}: {error}") from error
    summary = source_summary(meta)
    run_id = log_source_run(config, plan.source_id, summary, mlflow.tags(context))
    out_dir = Path(config.paths.controls) / plan.source_id
    metadata = {
        "source": plan.source_path,
        "kind": plan.kind,
        "split": plan.split,
        "recomputed": not meta["up_to_date"],
        # What the raw_data_sensor compares with curated_clips' source_digests.
        CLIPS_DIGEST: clips_digest(plan, Path(config.paths.curated)),
        "bounds": dg.MetadataValue.json(meta["bounds"]),
        "convention": meta["convention"],
        "path": dg.MetadataValue.path(str(out_dir)),
        "mlflow_run": mlflow.run_link(config, run_id),
        **{key: float(value) for key, value in summary.items() if value is not None},
    }
    preview = out_dir / PREVIEW_NAME
    if preview.is_file():
        metadata["preview"] = _image_md(preview, "RGB | depth | point map", "image/gif")
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(
    asset=control_signals,
    blocking=True,
    partitions_def=source_videos,
    description="Frame counts equal the curated clips', depth uint16 and point maps uint8 of "
    "the clip's size, no NaN/inf tracks, visible tracks inside the frame, bounds finite and "
    "ordered. Blocks training on a video that fails.",
)
def controls_are_valid(
    context: dg.AssetCheckExecutionContext, longvie: LongvieConfigResource
) -> dg.AssetCheckResult:
    from longvie.controls.checks import check_source_controls
    from longvie.controls.run import expected_frames

    config = longvie.compose()
    plan = _plan(config, context.partition_key)
    problems = check_source_controls(
        Path(config.paths.controls) / plan.source_id, expected_frames(plan)
    )
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems)
                                                  or "none")},
    )


@dg.asset(
    group_name="controls",
    deps=[control_signals],
    description="reports/controls.json: held-out accuracy of the estimators against ground "
    "truth (KLT end-point error and visibility, depth AbsRel and delta1), counts and speed.",
)
def controls_report(
    context: dg.AssetExecutionContext, longvie: LongvieConfigResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    from longvie.controls.report import log_controls_run
    from longvie.controls.run import report_from_outputs

    config = longvie.compose()
    report = report_from_outputs(config)
    run_id = log_controls_run(config, report, mlflow.tags(context))
    tracking, depth = report["tracking"], report["depth"]
    table = [
        "| figure | estimated | floor |",
        "| --- | --- | --- |",
        f"| KLT median EPE (px) | {tracking['median_epe_px']} | "
        f"{tracking['zero_motion_median_epe_px']} (zero motion) |",
        f"| visibility accuracy | {tracking['visibility_accuracy']} | "
        f"{tracking['always_visible_accuracy']} (always visible) |",
        f"| depth AbsRel | {depth['abs_rel']} | {depth['constant_abs_rel']} (constant) |",
        f"| depth delta1 | {depth['delta1']} | {depth['constant_delta1']} (constant) |",
    ]
    return dg.MaterializeResult(
        metadata={
            "videos": report["videos"],
            "extracted": report["extracted"],
            "failed": dg.MetadataValue.json(report["failed"]),
            "accuracy": dg.MetadataValue.md("\n".join(table)),
            "tracking.median_epe_px": tracking["median_epe_px"],
            "tracking.visibility_accuracy": tracking["visibility_accuracy"],
            "depth.abs_rel": depth["abs_rel"],
            "depth.delta1": depth["delta1"],
            "mlflow_run": mlflow.run_link(config, run_id),
        }
    )

"""The controls group: the depth estimator, per-video control signals, and their report.

``control_signals`` has one dynamic partition per curated source video; ``curated_clips``
registers them, so a new raw video becomes a new partition and only it needs computing. A run
over many partitions (a backfill, `make run`) is one run whose videos share the controls process
pool; each video's materialisation and check result still carry its own partition.
"""

import base64
from pathlib import Path

import dagster as dg

from longvie.controls.accuracy import DepthStats, TrackingStats
from longvie.controls.depth_estimator import PLOT_NAME, train_depth_estimator
from longvie.errors import LongvieError
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


def _plans(config, source_ids: list[str]) -> list:
    """The curated plans of the run's partitions, in the run's order; a partition whose video
    left the clip table fails the run before any work, naming it."""
    from longvie.controls.run import source_plans

    by_id = {plan.source_id: plan for plan in source_plans(config)}
    gone = [key for key in source_ids if key not in by_id]
    if gone:
        raise dg.Failure(
            allow_retries=False,
            description=f"source video(s) {', '.join(gone)} no longer in the clip table; "
            "re-materialise curated_clips (it removes stale partitions)",
        )
    return [by_id[key] for key in source_ids]


CONTROLS_CHECK = "controls_are_valid"


def _check_evaluation(config, plan) -> dg.AssetCheckEvaluation:
    """``controls_are_valid`` of one partition, re-read from disk: what training will read."""
    from longvie.controls.checks import check_source_controls
    from longvie.controls.run import expected_frames

    problems = check_source_controls(
        Path(config.paths.controls) / plan.source_id, expected_frames(plan)
    )
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("control_signals"),
        check_name=CONTROLS_CHECK,
        passed=not problems,
        partition=plan.source_id,
        blocking=True,
        metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems)
                                                  or "none")},
    )


def _materialization(config, plan, meta: dict, run_id: str,
                     mlflow: MlflowResource) -> dg.AssetMaterialization:
    from longvie.controls.extract import PREVIEW_NAME, clips_digest

    summary = source_summary(meta)
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
    return dg.AssetMaterialization(asset_key="control_signals", partition=plan.source_id,
                                   metadata=metadata)


@dg.multi_asset(
    specs=[dg.AssetSpec(
        "control_signals",
        group_name="controls",
        partitions_def=source_videos,
        deps=[curated_clips, depth_estimator],
        skippable=True,  # materialised per partition below, only for videos that succeeded
        description="Per source video: globally normalised 16-bit depth and point-map videos "
        "with raw tracks (data/controls/<source>/), from ground truth or from the estimators.",
    )],
    check_specs=[dg.AssetCheckSpec(
        CONTROLS_CHECK,
        asset="control_signals",
        blocking=True,
        partitions_def=source_videos,
        description="Frame counts equal the curated clips', depth uint16 and point maps uint8 "
        "of the clip's size, no NaN/inf tracks, visible tracks inside the frame, bounds finite "
        "and ordered. Blocks training on a video that fails.",
    )],
    can_subset=True,
    # A backfill of every video is one run: the videos share one process pool
    # (controls.workers) instead of paying Dagster's start-up once per video.
    backfill_policy=dg.BackfillPolicy.single_run(),
)
def control_signals(
    context: dg.AssetExecutionContext, longvie: LongvieConfigResource, mlflow: MlflowResource
):
    """One partition or a range of them in one run. Each video succeeds or fails on its own:
    its materialisation and its check evaluation carry its partition, so one bad video is
    named, blocks the run's downstream steps, and never stops the others' extraction."""
    from longvie.controls.report import log_source_run
    from longvie.controls.run import extract_sources

    config = longvie.compose()
    plans = _plans(config, list(context.partition_keys))
    if dg.AssetKey("control_signals") not in context.selected_asset_keys:
        # Only the check was selected (the UI's "Execute check"): re-check what is on disk.
        for plan in plans:
            yield _check_evaluation(config, plan)
        return
    context.log.info(f"controls for {len(plans)} source video(s) over "
                     f"{min(config.controls.workers, len(plans))} process(es)")
    results = extract_sources(plans, config, progress=longvie.progress)
    check_selected = bool(context.selected_asset_check_keys)
    failed = {}
    for plan in plans:
        status, value = results[plan.source_id]
        if status != "ok":
            failed[plan.source_id] = f"{plan.source_path}: {value}"
            context.log.error(f"controls[{plan.source_id}] failed: {failed[plan.source_id]}")
            continue
        tags = {**mlflow.tags(context), "dagster.partition": plan.source_id}
        run_id = log_source_run(config, plan.source_id, source_summary(value), tags)
        yield _materialization(config, plan, value, run_id, mlflow)
        if check_selected:
            yield _check_evaluation(config, plan)
    if failed:
        raise dg.Failure(
            allow_retries=False,
            description="; ".join(failed.values())
            + (f" ({len(failed)} of {len(plans)} videos failed; the others are materialised)"
               if len(plans) > 1 else ""),
            metadata={"failed": dg.MetadataValue.json(failed)},
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
        (f"| KLT median EPE (px) | {tracking['median_epe_px']} | "
         f"{tracking['zero_motion_median_epe_px']} (zero motion) |"),
        (f"| visibility accuracy | {tracking['visibility_accuracy']} | "
         f"{tracking['always_visible_accuracy']} (always visible) |"),
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

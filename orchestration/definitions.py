"""Assemble the code location; nothing else happens here (and nothing heavy is imported)."""

import os

import dagster as dg

from orchestration.assets.controls import (
    control_signals,
    controls_report,
    depth_estimator,
)
from orchestration.assets.data import clip_table_is_valid, curated_clips, raw_videos
from orchestration.assets.evaluation import benchmark, promotion, promotion_gate
from orchestration.assets.training import (
    base_model,
    pretrained_base,
    stage1_controller,
    stage2_controller,
    stage3_controller,
    training_loss_checks,
)
from orchestration.launch import code_location_executor
from orchestration.resources import DvcResource, LongvieConfigResource, MlflowResource
from orchestration.triggers import build_raw_data_sensor, build_weekly_retraining

# A step that dies of something unexpected (killed, out of memory, a flaky disk) is retried;
# trainings resume from their last checkpoint, so a retry repeats no finished step. Bad input or
# config (LongvieError -> dg.Failure(allow_retries=False)) fails at once with its reason.
RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL)

# A string selection: parsed by Dagster's antlr 4.13 grammar (see README, "Why Hydra 1.4.0rc3").
# The unpartitioned steps before the per-video controls: the depth estimator trains on the
# curated train split, and every control_signals partition needs it.
curation_job = dg.define_asset_job(
    "curation", selection="key:raw_videos or key:curated_clips or key:depth_estimator",
    op_retry_policy=RETRY,
)
# Partitioned by source video (inferred from the asset). A backfill of many videos is one run
# (the asset's single-run policy); the sensor asks for one run per new or changed video.
controls_job = dg.define_asset_job("controls", selection="key:control_signals",
                                   op_retry_policy=RETRY)
# The controls report, the base and the three controller stages in order (each starts from the
# one before), then the benchmark and the promotion gate: a retraining ends with its decision.
training_job = dg.define_asset_job(
    "training",
    selection="key:controls_report or key:base_model or key:stage1_controller "
    "or key:stage2_controller or key:stage3_controller or key:benchmark or key:promotion",
    op_retry_policy=RETRY,
)

# The one-off pretraining of the tiny base: never part of a retraining (base_model loads its
# result), started by hand from the UI or `dagster job execute -j pretraining`.
pretraining_job = dg.define_asset_job("pretraining", selection="key:pretrained_base")

defs = dg.Definitions(
    assets=[
        raw_videos,
        curated_clips,
        depth_estimator,
        control_signals,
        controls_report,
        pretrained_base,
        base_model,
        stage1_controller,
        stage2_controller,
        stage3_controller,
        benchmark,
        promotion,
    ],
    asset_checks=[clip_table_is_valid, *training_loss_checks,
                  promotion_gate],
    jobs=[curation_job, controls_job, training_job, pretraining_job],
    schedules=[build_weekly_retraining(training_job)],
    sensors=[build_raw_data_sensor(curation_job, controls_job, training_job)],
    resources={
        "longvie": LongvieConfigResource(),
        "dvc": DvcResource(),
        "mlflow": MlflowResource(ui_url=f"http://127.0.0.1:{os.environ.get('MLFLOW_PORT', 5000)}"),
    },
    # orchestration.executor / max_concurrent of the config composed without overrides, or
    # LONGVIE_EXECUTOR (orchestration/launch.py; docs/scale_out.md).
    executor=code_location_executor(),
)

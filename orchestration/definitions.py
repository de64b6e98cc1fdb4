"""Assemble the code location; nothing else happens here (and nothing heavy is imported)."""

import dagster as dg

from orchestration.assets.controls import (
    control_signals,
    controls_are_valid,
    controls_report,
    depth_estimator,
)
from orchestration.assets.data import clip_table_is_valid, curated_clips, raw_videos
from orchestration.assets.evaluation import benchmark, promotion
from orchestration.assets.training import (
    base_model,
    stage1_controller,
    stage2_controller,
    stage3_controller,
)
from orchestration.resources import LongvieConfigResource

# A string selection: parsed by Dagster's antlr 4.13 grammar (see README, "Why Hydra 1.4.0rc3").
curation_job = dg.define_asset_job("curation", selection="key:raw_videos or key:curated_clips")
# Partitioned by source video (inferred from the asset): a backfill runs one video per run.
controls_job = dg.define_asset_job("controls", selection="key:control_signals")
# The base and the three controller stages, in order (each starts from the one before), then
# the benchmark and the promotion gate: a retraining ends with its decision.
training_job = dg.define_asset_job(
    "training",
    selection="key:base_model or key:stage1_controller or key:stage2_controller "
    "or key:stage3_controller or key:benchmark or key:promotion",
)

defs = dg.Definitions(
    assets=[
        raw_videos,
        curated_clips,
        depth_estimator,
        control_signals,
        controls_report,
        base_model,
        stage1_controller,
        stage2_controller,
        stage3_controller,
        benchmark,
        promotion,
    ],
    asset_checks=[clip_table_is_valid, controls_are_valid],
    jobs=[curation_job, controls_job, training_job],
    resources={"longvie": LongvieConfigResource()},
)

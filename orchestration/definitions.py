"""Assemble the code location; nothing else happens here (and nothing heavy is imported)."""

import dagster as dg

from orchestration.assets.data import clip_table_is_valid, curated_clips, raw_videos
from orchestration.resources import LongvieConfigResource

# A string selection: parsed by Dagster's antlr 4.13 grammar (see README, "Why Hydra 1.4.0rc3").
curation_job = dg.define_asset_job("curation", selection="key:raw_videos+")

defs = dg.Definitions(
    assets=[raw_videos, curated_clips],
    asset_checks=[clip_table_is_valid],
    jobs=[curation_job],
    resources={"longvie": LongvieConfigResource()},
)

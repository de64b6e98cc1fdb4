"""Partitions shared by several asset groups."""

import dagster as dg

# One partition per curated source video (its source_id); curated_clips keeps the set current.
source_videos = dg.DynamicPartitionsDefinition(name="source_videos")

"""Partitions shared by several asset groups."""

import dagster as dg

# One partition per curated source video (its source_id); curated_clips keeps the set current.
source_videos = dg.DynamicPartitionsDefinition(name="source_videos")

# Metadata keys that tell whether a partition's control signals are current: curated_clips
# records each source video's clips digest, control_signals the digest it was computed from.
SOURCE_DIGESTS = "source_digests"
CLIPS_DIGEST = "clips_digest"

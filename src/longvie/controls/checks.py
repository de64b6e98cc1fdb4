"""What every source's controls must satisfy before anything trains on them.

The same function serves the Dagster blocking check and the CLI, so both refuse the same things:
frame counts that differ from the curated clips, values out of range, NaN/inf, visible tracks
outside the frame, and normalisation bounds that are not finite or not ordered.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from longvie.controls.extract import META_NAME, read_meta
from longvie.controls.normalise import DepthBounds


def check_source_controls(out_dir: Path, expected_frames: dict[str, int]) -> list[str]:
    """Problems of ``out_dir`` (empty when fine); ``expected_frames`` maps clip_id -> frames."""
    meta = read_meta(out_dir)
    if meta is None:
        return [f"{out_dir / META_NAME}: missing or unreadable"]
    problems = [f"bounds: {p}" for p in DepthBounds(**meta["bounds"]).check()]
    listed = {clip["clip_id"]: clip for clip in meta["clips"]}
    for clip_id in sorted(set(expected_frames) - set(listed)):
        problems.append(f"clip {clip_id}: no controls")
    for clip_id in sorted(set(listed) - set(expected_frames)):
        problems.append(f"clip {clip_id}: controls for a clip the clip table does not have")
    for clip_id, clip in listed.items():
        if clip_id in expected_frames:
            problems += _check_clip(out_dir / clip["file"], expected_frames[clip_id])
    total = sum(expected_frames.values())
    if meta["frames"] != total:
        problems.append(f"{meta['frames']} frames of controls for {total} curated frames")
    return problems


def _check_clip(path: Path, frames: int) -> list[str]:
    try:
        with np.load(path) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError) as error:
        return [f"{path.name}: unreadable: {error}"]
    needed = {"depth", "point_map", "tracks_xy", "tracks_visible", "query_xy"}
    if missing := sorted(needed - set(arrays)):
        return [f"{path.name}: lacks {missing}"]
    depth, point_map = arrays["depth"], arrays["point_map"]
    xy, visible = arrays["tracks_xy"], arrays["tracks_visible"]
    problems = []
    if depth.dtype != np.uint16 or depth.ndim != 3:
        problems.append(f"{path.name}: depth is {depth.dtype} {depth.shape}, not uint16 (T, H, W)")
    if point_map.dtype != np.uint8 or point_map.shape != (*depth.shape, 3):
        problems.append(f"{path.name}: point_map is {point_map.dtype} {point_map.shape}")
    for name, array in (("depth", depth), ("point_map", point_map), ("tracks_xy", xy)):
        if len(array) != frames:
            problems.append(f"{path.name}: {name} has {len(array)} frames, the clip {frames}")
    if not np.all(np.isfinite(xy)):
        problems.append(f"{path.name}: tracks_xy holds NaN or inf")
    elif depth.ndim == 3 and visible.shape == xy.shape[:2]:
        height, width = depth.shape[1:]
        shown = xy[visible]
        outside = (
            (shown[:, 0] < -0.5) | (shown[:, 0] >= width - 0.5)
            | (shown[:, 1] < -0.5) | (shown[:, 1] >= height - 0.5)
        )
        if outside.any():
            problems.append(f"{path.name}: {int(outside.sum())} visible track points outside")
    else:
        problems.append(f"{path.name}: tracks_visible {visible.shape} != tracks {xy.shape[:2]}")
    return problems

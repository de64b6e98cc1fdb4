"""The controls-only baseline: the first frame's colours carried along the point tracks.

Each track takes the first frame's colour under its query point and is drawn, in every later
frame, where the track says the point went: a rectangle of the point map's size, far to near
(the depth control says which is nearer), over a copy of the first frame, so the holes keep the
first frame's pixels. Frame 0 is the first frame itself. It is what the controls say about the
clip with no model at all, so a model's value over its own inputs is measured, not assumed.
"""

from __future__ import annotations

import numpy as np

from longvie.controls.pointmap import rectangle_half_sizes, render_point_map


def _sample(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Nearest-pixel values of ``image`` (H, W, ...) at points ``xy`` (N, 2), clipped inside."""
    height, width = image.shape[:2]
    x = np.clip(np.round(xy[:, 0]).astype(np.int64), 0, width - 1)
    y = np.clip(np.round(xy[:, 1]).astype(np.int64), 0, height - 1)
    return image[y, x]


def splat_first_frame(
    first_frame: np.ndarray,
    query_xy: np.ndarray,
    tracks_xy: np.ndarray,
    visible: np.ndarray,
    depth: np.ndarray,
) -> np.ndarray:
    """(T, H, W, 3) uint8: ``first_frame`` (H, W, 3) uint8 carried along ``tracks_xy`` (T, N, 2)
    where ``visible`` (T, N); ``depth`` (T, H, W), 0 = near, orders overlapping points."""
    height, width = first_frame.shape[:2]
    colours = _sample(first_frame, np.asarray(query_xy, dtype=np.float64))
    nearness = np.stack([-_sample(depth[t], np.nan_to_num(tracks_xy[t].astype(np.float64)))
                         for t in range(len(tracks_xy))]).astype(np.float64)
    frames = render_point_map(tracks_xy, visible, colours, rectangle_half_sizes(query_xy),
                              nearness, height, width, background=first_frame)
    frames[0] = first_frame
    return frames

"""The LongVie sparse control: point tracks drawn as a "point map" video.

Black canvas; every track keeps one colour for the whole clip, fixed at the query frame:
R = x0 / W, G = y0 / H, B = normalised inverse depth (the source video's p2/p98 disparity bounds,
1 = near). Each visible point is a filled rectangle whose half-width is half the distance to its
nearest neighbour among the queries (half-height = half-width / 1.5); points are drawn far to near
in every frame, so nearer surfaces cover farther ones as they would in the image.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import cKDTree

# cv2 draws with sub-pixel precision when coordinates are given in 1/2**SHIFT pixel units.
SHIFT = 4
ASPECT = 1.5


def track_colours(
    query_xy: np.ndarray, blue: np.ndarray, width: int, height: int
) -> np.ndarray:
    """(N, 3) uint8 colours: R = x0/W, G = y0/H, B = ``blue`` (already in [0, 1])."""
    query = np.asarray(query_xy, dtype=np.float64)
    rgb = np.stack([query[:, 0] / width, query[:, 1] / height, np.asarray(blue)], axis=1)
    return np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)


def rectangle_half_sizes(query_xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-width = half the nearest-neighbour distance at the query frame; height = width / 1.5."""
    query = np.asarray(query_xy, dtype=np.float64)
    if len(query) < 2:
        half_width = np.full(len(query), 1.0)
    else:
        distances, _ = cKDTree(query).query(query, k=2)
        half_width = np.maximum(distances[:, 1] / 2.0, 0.5)
    return half_width, half_width / ASPECT


def render_point_map(
    xy: np.ndarray,
    visible: np.ndarray,
    colours: np.ndarray,
    half_sizes: tuple[np.ndarray, np.ndarray],
    order_disparity: np.ndarray,
    height: int,
    width: int,
    background: np.ndarray | None = None,
) -> np.ndarray:
    """(T, H, W, 3) uint8 point-map video.

    ``order_disparity`` (T, N) is each track's disparity in each frame: larger = nearer, drawn
    later. Invisible points are not drawn. The canvas is black, or a copy of ``background``
    ((H, W, 3) uint8, the same for every frame) where no point lands.
    """
    frames = np.zeros((len(xy), height, width, 3), dtype=np.uint8)
    if background is not None:
        frames[:] = background
    half_width, half_height = half_sizes
    unit = 1 << SHIFT
    for t in range(len(xy)):
        shown = np.flatnonzero(visible[t] & np.all(np.isfinite(xy[t]), axis=1))
        far_to_near = shown[np.argsort(order_disparity[t, shown], kind="stable")]
        x, y = xy[t, far_to_near, 0], xy[t, far_to_near, 1]
        top_left = np.stack([x - half_width[far_to_near], y - half_height[far_to_near]], axis=1)
        bottom_right = np.stack(
            [x + half_width[far_to_near], y + half_height[far_to_near]], axis=1
        )
        top_left = np.round(top_left * unit).astype(np.int64)
        bottom_right = np.round(bottom_right * unit).astype(np.int64)
        canvas = frames[t]
        for index, start, end in zip(far_to_near, top_left, bottom_right, strict=True):
            colour = tuple(int(c) for c in colours[index])
            cv2.rectangle(canvas, tuple(start.tolist()), tuple(end.tolist()), colour, -1,
                          cv2.LINE_8, SHIFT)
    return frames


def tracks_from_point_map(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tracks a point-map video (T, H, W, 3) uint8 draws: every colour on frame 0 is one
    track (a colour is fixed per track for the whole clip); its position in a frame is the
    centroid of its pixels there, and it is visible where any are drawn. Returns query points
    (N, 2), xy (T, N, 2) float32 (an unseen point keeps its last position) and visible (T, N).

    For point maps given without their tracks (``longvie generate`` files, serving requests):
    rectangles partly covered by nearer ones move their centroid by up to half a rectangle.
    """
    frames = np.asarray(points)
    packed = ((frames[..., 0].astype(np.int64) << 16) | (frames[..., 1].astype(np.int64) << 8)
              | frames[..., 2].astype(np.int64))
    colours = np.unique(packed[0])
    colours = colours[colours != 0]  # black is the canvas
    count = len(colours)
    height, width = packed.shape[1:]
    ys, xs = np.mgrid[0:height, 0:width]
    xy = np.zeros((len(frames), count, 2), dtype=np.float32)
    visible = np.zeros((len(frames), count), dtype=bool)
    for t, frame in enumerate(packed):
        index = np.searchsorted(colours, frame.ravel())
        known = (index < count) & (colours[np.minimum(index, count - 1)] == frame.ravel())
        pixels = np.bincount(index[known], minlength=count).astype(np.float64)
        seen = pixels > 0
        sums_x = np.bincount(index[known], weights=xs.ravel()[known], minlength=count)
        sums_y = np.bincount(index[known], weights=ys.ravel()[known], minlength=count)
        centre = np.stack([sums_x, sums_y], axis=1) / np.maximum(pixels, 1)[:, None]
        xy[t] = np.where(seen[:, None], centre, xy[t - 1] if t else centre)
        visible[t] = seen
    return xy[0].copy(), xy, visible

"""Control signals: global depth normalisation, point maps, ground-truth mapping, the per-video
pipeline (incremental, failure-isolated, checked) and its accuracy report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from longvie.controls.checks import check_source_controls
from longvie.controls.engine import ClipGeometry
from longvie.controls.normalise import (
    global_bounds,
    histogram_percentiles,
    normalise_disparity,
    value_range,
)
from longvie.controls.pointmap import rectangle_half_sizes, render_point_map, track_colours
from longvie.curation.frames import resize_center_crop
from longvie.synth.groundtruth import grid_queries


def receding_disparity(frames: int = 48, size: int = 16, seed: int = 0) -> np.ndarray:
    """A depth video whose range changes over time (the camera moves away)."""
    rng = np.random.default_rng(seed)
    base = 1.0 + rng.random((size, size))
    return np.stack([base / (1.0 + 0.15 * t) for t in range(frames)]).astype(np.float32)


def clips_of(video: np.ndarray, length: int = 9, overlap: int = 1) -> list[np.ndarray]:
    stride = length - overlap
    return [video[s : s + length] for s in range(0, len(video) - length + 1, stride)]


# --- normalisation ---------------------------------------------------------------------------


def test_streaming_percentiles_match_numpy_within_one_bin():
    # Dense enough that neighbouring values are closer than a bin (numpy interpolates between
    # neighbours, the histogram inside a bin).
    video = receding_disparity(size=64)
    chunks = clips_of(video)
    low, high, count = value_range(chunks)
    bins = 4096
    got = histogram_percentiles(chunks, low, high, [2, 5, 50, 95, 98], bins)
    values = np.concatenate([c.ravel() for c in chunks])
    want = np.percentile(values, [2, 5, 50, 95, 98])
    assert count == values.size
    assert np.allclose(got, want, atol=(high - low) / bins)


def test_a_globally_rescaled_depth_video_gives_the_same_normalised_output():
    video = receding_disparity()
    chunks = clips_of(video)
    bounds = global_bounds(lambda: chunks)
    for scale, shift in ((3.7, 0.0), (0.01, 0.0), (2.0, 0.5)):
        moved = [c * scale + shift for c in chunks]
        moved_bounds = global_bounds(lambda moved=moved: moved)
        for original, changed in zip(chunks, moved, strict=True):
            difference = normalise_disparity(original, bounds) - normalise_disparity(
                changed, moved_bounds
            )
            assert np.abs(difference).max() < 1e-3


def test_clipwise_normalisation_differs_where_clips_meet_and_global_does_not():
    video = receding_disparity()
    chunks = clips_of(video)
    bounds = global_bounds(lambda: chunks)
    for first, second in zip(chunks, chunks[1:], strict=False):
        # The last frame of one clip is the first of the next (1-frame overlap).
        shared_global = normalise_disparity(first[-1], bounds), normalise_disparity(second[0], bounds)
        assert np.array_equal(*shared_global)
        own_first = global_bounds(lambda first=first: [first])
        own_second = global_bounds(lambda second=second: [second])
        clipwise = normalise_disparity(first[-1], own_first), normalise_disparity(second[0], own_second)
        assert np.abs(clipwise[0] - clipwise[1]).mean() > 0.1


def test_bad_disparity_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="NaN or inf"):
        value_range([np.array([1.0, np.nan])])
    with pytest.raises(ValueError, match="positive"):
        value_range([np.array([0.0, 1.0])])


def test_near_is_dark_and_far_is_bright():
    bounds = global_bounds(lambda: [np.linspace(0.1, 1.0, 1000)])
    near, far = normalise_disparity(np.array([1.0, 0.1]), bounds)
    assert near == 0.0 and far == 1.0


# --- point maps ------------------------------------------------------------------------------


def test_point_map_colours_are_fixed_per_track_from_the_query_frame():
    width = height = 64
    queries = grid_queries(width, height, 4).astype(np.float64)
    blue = np.linspace(0.0, 1.0, len(queries))
    colours = track_colours(queries, blue, width, height)
    assert np.allclose(colours[:, 0] / 255, queries[:, 0] / width, atol=1 / 255)
    assert np.allclose(colours[:, 1] / 255, queries[:, 1] / height, atol=1 / 255)
    assert np.allclose(colours[:, 2] / 255, blue, atol=1 / 255)
    # The tracks drift 1.5 px per frame: each keeps its frame-0 colour wherever it goes.
    drift = np.array([1.5, 0.5])
    xy = np.stack([queries + t * drift for t in range(5)]).astype(np.float32)
    visible = np.ones(xy.shape[:2], dtype=bool)
    order = np.tile(blue, (5, 1))
    frames = render_point_map(xy, visible, colours, rectangle_half_sizes(queries), order,
                              height, width)
    for t in range(5):
        centres = np.round(xy[t]).astype(int)
        assert np.array_equal(frames[t, centres[:, 1], centres[:, 0]], colours)


def test_rectangles_are_half_the_neighbour_distance_wide_and_drawn_far_to_near():
    queries = np.array([[20.0, 20.0], [30.0, 20.0]])  # 10 px apart
    half_width, half_height = rectangle_half_sizes(queries)
    assert np.allclose(half_width, 5.0) and np.allclose(half_height, 5.0 / 1.5)
    colours = np.array([[255, 0, 0], [0, 0, 255]], dtype=np.uint8)
    same_place = np.array([[[25.0, 30.0], [25.0, 30.0]]], dtype=np.float32)
    visible = np.ones((1, 2), dtype=bool)
    for nearer in (0, 1):
        disparity = np.array([[2.0, 1.0]]) if nearer == 0 else np.array([[1.0, 2.0]])
        frame = render_point_map(same_place, visible, colours, (half_width, half_height),
                                 disparity, 64, 64)[0]
        assert np.array_equal(frame[30, 25], colours[nearer])
        lit = np.argwhere(frame.any(axis=2))
        assert lit[:, 1].max() - lit[:, 1].min() + 1 == pytest.approx(11, abs=1)
        assert lit[:, 0].max() - lit[:, 0].min() + 1 == pytest.approx(2 * 5 / 1.5 + 1, abs=1)


def test_invisible_points_are_not_drawn():
    queries = np.array([[10.0, 10.0], [40.0, 40.0]])
    xy = queries[None].astype(np.float32)
    frame = render_point_map(xy, np.array([[True, False]]), np.full((2, 3), 200, np.uint8),
                             rectangle_half_sizes(queries), np.ones((1, 2)), 64, 64)[0]
    assert frame[10, 10].any() and not frame[40, 40].any()


# --- ground truth onto curated clips ---------------------------------------------------------


@pytest.mark.parametrize("source_size", [(96, 64), (64, 128), (128, 128), (64, 64)])
def test_clip_pixels_map_to_source_pixels_like_the_curation_resize(source_size):
    source_w, source_h = source_size
    ramp_x = np.tile(np.arange(source_w, dtype=np.float32), (source_h, 1))
    ramp_y = np.tile(np.arange(source_h, dtype=np.float32)[:, None], (1, source_w))
    geometry = ClipGeometry.from_row(
        {"source_width": source_w, "source_height": source_h, "width": 64, "height": 64}
    )
    clip_x, clip_y = (resize_center_crop(r, 64, 64) for r in (ramp_x, ramp_y))
    grid = grid_queries(64, 64, 8)
    mapped = geometry.to_source(grid)
    at = np.round(grid).astype(int)
    assert np.allclose(mapped[:, 0], clip_x[at[:, 1], at[:, 0]], atol=0.05)
    assert np.allclose(mapped[:, 1], clip_y[at[:, 1], at[:, 0]], atol=0.05)
    assert np.allclose(geometry.to_clip(mapped), grid, atol=1e-9)

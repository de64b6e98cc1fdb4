"""The controls-only baseline carries the first frame's colours where the tracks go."""

from __future__ import annotations

import numpy as np

from longvie.controls.splat import splat_first_frame


def _scene(frames: int = 5, shift: float = 3.0):
    """A grey 32x32 frame with a red 8x8 square whose 4 tracked points move right."""
    first = np.full((32, 32, 3), 100, dtype=np.uint8)
    first[12:20, 8:16] = (220, 30, 30)
    query = np.array([[9.5, 13.5], [13.5, 13.5], [9.5, 17.5], [13.5, 17.5]], dtype=np.float32)
    tracks = np.stack([query + [shift * t, 0.0] for t in range(frames)]).astype(np.float32)
    visible = np.ones((frames, len(query)), dtype=bool)
    depth = np.full((frames, 32, 32), 0.5, dtype=np.float32)
    return first, query, tracks, visible, depth


def test_frame_zero_is_the_first_frame_and_the_colours_move_with_the_tracks():
    first, query, tracks, visible, depth = _scene()
    video = splat_first_frame(first, query, tracks, visible, depth)
    assert video.shape == (5, 32, 32, 3)
    assert np.array_equal(video[0], first)
    for t in range(1, 5):
        for x, y in tracks[t]:
            assert tuple(video[t, int(round(y)), int(round(x))]) == (220, 30, 30)
    # far from every track the first frame shows through: the holes keep its pixels
    assert np.array_equal(video[4, :6], first[:6])


def test_an_invisible_track_is_not_drawn():
    first, query, tracks, visible, depth = _scene()
    visible[3] = False
    video = splat_first_frame(first, query, tracks, visible, depth)
    x, y = tracks[3, 0]
    assert tuple(video[3, int(round(y)), int(round(x))]) == (100, 100, 100)


def test_where_two_points_overlap_the_nearer_one_is_drawn_on_top():
    first = np.zeros((16, 16, 3), dtype=np.uint8)
    first[4, 4], first[4, 12] = (255, 0, 0), (0, 0, 255)
    query = np.array([[4.0, 4.0], [12.0, 4.0]], dtype=np.float32)  # rectangles 8 px wide
    tracks = np.array([query, [[8.0, 8.0], [9.0, 8.0]]], dtype=np.float32)
    visible = np.ones((2, 2), dtype=bool)
    for red_depth, blue_depth, on_top in ((0.2, 0.8, [255, 0, 0]), (0.8, 0.2, [0, 0, 255])):
        depth = np.zeros((2, 16, 16), dtype=np.float32)
        depth[1, 8, 8], depth[1, 8, 9] = red_depth, blue_depth  # 0 = near
        video = splat_first_frame(first, query, tracks, visible, depth)
        assert video[1, 8, 8].tolist() == on_top and video[1, 8, 9].tolist() == on_top


def test_a_point_map_without_its_tracks_gives_them_back():
    """The generation path for point maps given as videos: colours are track ids."""
    from longvie.controls.pointmap import (
        rectangle_half_sizes,
        render_point_map,
        track_colours,
        tracks_from_point_map,
    )
    from longvie.synth.groundtruth import grid_queries

    query = grid_queries(64, 64, 16)
    tracks = np.stack([query + [0.5 * t, 0.25 * t] for t in range(6)]).astype(np.float32)
    visible = np.ones((6, len(query)), dtype=bool)
    visible[3, 40] = False
    colours = track_colours(query, np.linspace(0, 1, len(query)), 64, 64)
    points = render_point_map(tracks, visible, colours, rectangle_half_sizes(query),
                              np.zeros((6, len(query))), 64, 64)
    found_query, found_xy, found_visible = tracks_from_point_map(points)
    assert len(found_query) == len(query)
    # match decoded tracks to the drawn ones by their frame-0 position
    order = [int(np.argmin(np.abs(query - q).sum(axis=1))) for q in found_query]
    assert sorted(order) == list(range(len(query)))
    inside = (tracks[:, order, 0] < 61) & (tracks[:, order, 1] < 61)  # not cut by the border
    error = np.abs(found_xy - tracks[:, order])[inside & visible[:, order]]
    assert error.max() <= 0.75
    assert not found_visible[3, order.index(40)] and found_visible[4, order.index(40)]

"""The weight-free benchmark metrics on videos whose answer is known: identical and blurred
copies, a square moved by known pixels, an injected jump at a clip boundary, a frozen video, a
texture translated under known tracks and depth maps made from a known disparity."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from longvie.quality.metrics import (
    depth_fidelity,
    drift_slope,
    dynamic_degree,
    frame_changes,
    frame_quality,
    per_clip_means,
    seam_discontinuities,
    seam_discontinuity,
    sharpness,
    temporal_flickering,
    track_fidelity,
    video_drift_error,
)
from longvie.controls.normalise import DepthBounds, normalise_disparity

SIZE = 64


def texture(height: int, width: int, seed: int = 0, block: int = 4) -> np.ndarray:
    """Smoothed random colour blocks: textured everywhere, so trackers and flow have a grip."""
    rng = np.random.default_rng(seed)
    shape = (height // block + 1, width // block + 1, 3)
    blocks = rng.integers(0, 256, size=shape).astype(np.uint8)
    big = cv2.resize(blocks, None, fx=block, fy=block, interpolation=cv2.INTER_NEAREST)
    return cv2.GaussianBlur(big[:height, :width], (0, 0), block / 4)


def crops(source: np.ndarray, origins: list[tuple[int, int]], size: int = SIZE) -> np.ndarray:
    """One (size, size) frame per (x, y) origin in ``source``: a camera moving over it."""
    return np.stack([source[y : y + size, x : x + size] for x, y in origins])


def panning(frames: int, speed: int = 1, jumps: dict[int, int] | None = None) -> np.ndarray:
    """Coarse texture panning ``speed`` px a frame; from frame b on ``jumps[b]`` px further.

    Coarse (8 px blocks), so an ordinary step changes the frame far less than a jump.
    """
    source = texture(SIZE, SIZE + 200, block=8)
    x, origins = 0, []
    for t in range(frames):
        x += (speed if t else 0) + (jumps or {}).get(t, 0)
        origins.append((x, 0))
    return crops(source, origins)


def square(positions: list[int], size: int = SIZE) -> np.ndarray:
    """A textured 16x16 square on grey, its left edge at x = positions[t] in frame t."""
    patch = texture(16, 16, seed=1)
    frames = np.full((len(positions), size, size, 3), 100, np.uint8)
    for frame, x in zip(frames, positions, strict=True):
        frame[24:40, x : x + 16] = patch
    return frames


# Frame quality


def test_identical_videos_have_infinite_psnr_and_ssim_one():
    video = panning(5)
    psnr, ssim = frame_quality(video, video)
    assert psnr.shape == ssim.shape == (5,)
    assert np.isinf(psnr).all()
    assert np.allclose(ssim, 1.0)


def test_psnr_follows_the_mean_squared_error_and_ssim_drops_only_on_the_blurred_frame():
    reference = panning(10)  # more than one internal batch of frames
    generated = reference.copy()
    generated[3] = np.clip(reference[3].astype(np.int16) + 10, 0, 255).astype(np.uint8)
    generated[7] = cv2.GaussianBlur(reference[7], (0, 0), 4.0)
    psnr, ssim = frame_quality(generated, reference)
    mse = ((generated[3] / 255.0 - reference[3] / 255.0) ** 2).mean()
    assert psnr[3] == pytest.approx(10 * np.log10(1 / mse), abs=1e-4)  # float32 inside
    assert np.isfinite(psnr[7]) and psnr[7] < 30
    assert ssim[7] < 0.8 < 0.95 < ssim[3]  # a uniform brightening keeps the structure
    untouched = [t for t in range(10) if t not in (3, 7)]
    assert np.allclose(ssim[untouched], 1.0) and np.isinf(psnr[untouched]).all()


def test_frame_quality_refuses_mismatched_shapes_naming_both():
    with pytest.raises(ValueError, match=r"\(4, 64, 64, 3\) and \(5, 64, 64, 3\)"):
        frame_quality(panning(4), panning(5))


def test_importing_the_metrics_does_not_import_torch():
    code = "import sys, longvie.quality.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# Frame changes and flicker


def test_frame_changes_are_mean_absolute_differences_of_consecutive_frames():
    levels = [0, 10, 10, 40]
    video = np.stack([np.full((8, 8, 3), level, np.uint8) for level in levels])
    assert frame_changes(video).tolist() == [10.0, 0.0, 30.0]
    assert frame_changes(video[:1]).shape == (0,)


def test_a_frozen_video_never_flickers_and_alternating_black_and_white_always_does():
    frozen = np.repeat(panning(1), 6, axis=0)
    assert temporal_flickering(frozen) == 1.0
    strobe = np.stack([np.full((8, 8, 3), 255 * (t % 2), np.uint8) for t in range(6)])
    assert temporal_flickering(strobe) == 0.0
    steps = np.stack([np.full((8, 8, 3), 20 * t, np.uint8) for t in range(4)])
    assert temporal_flickering(steps) == pytest.approx((255 - 20) / 255)


def test_flicker_needs_two_frames():
    with pytest.raises(ValueError, match="at least 2 frames"):
        temporal_flickering(panning(1))


# Dynamic degree


@pytest.mark.parametrize("shift", [2, 4])
def test_dis_flow_measures_a_square_moved_by_a_few_pixels(shift):
    result = dynamic_degree(square([10, 10 + shift, 10 + 2 * shift]))
    assert result["mean_top_flow_px"] == pytest.approx(shift, abs=0.3)


def test_a_still_video_is_not_dynamic_and_a_moving_one_is():
    still = dynamic_degree(square([10] * 17))
    assert still["mean_top_flow_px"] == pytest.approx(0.0, abs=1e-3)
    assert still == {"dynamic": False, "pairs_above": 0, "pairs_needed": 4,
                     "threshold_px": 1.5, "mean_top_flow_px": still["mean_top_flow_px"]}
    moving = dynamic_degree(square([10 + 2 * t for t in range(17)]))
    assert moving["dynamic"] and moving["pairs_above"] == 16


def test_motion_below_six_pixels_per_256_does_not_count():
    slow = dynamic_degree(square([10 + t for t in range(17)]))  # 1 px < 6 * 64 / 256 = 1.5 px
    assert slow["pairs_above"] == 0 and not slow["dynamic"]


@pytest.mark.parametrize("moving_pairs, dynamic", [(3, False), (4, True)])
def test_a_video_is_dynamic_from_round_four_n_over_sixteen_moving_pairs(moving_pairs, dynamic):
    steps = [3] * moving_pairs + [0] * (16 - moving_pairs)  # 17 frames: round(4 * 17 / 16) = 4
    result = dynamic_degree(square(list(np.cumsum([10, *steps]))))
    assert result["pairs_above"] == moving_pairs and result["pairs_needed"] == 4
    assert result["dynamic"] is dynamic


@pytest.mark.parametrize("frames, needed", [(2, 1), (8, 2), (19, 5), (33, 8)])
def test_pairs_needed_are_round_four_n_over_sixteen_and_at_least_one(frames, needed):
    assert dynamic_degree(square([10] * frames))["pairs_needed"] == needed


# Seams


def test_a_generated_video_equal_to_the_reference_has_no_seam():
    reference = panning(17)
    result = seam_discontinuity(reference, reference, [5, 9, 13])
    assert result["seam_discontinuity"] == 0.0
    assert result["seam_ratio"] == pytest.approx(1.0, abs=0.1)  # steady pan: seams look ordinary


def test_a_jump_at_a_boundary_is_a_seam_and_the_same_jump_elsewhere_is_not():
    reference = panning(17)
    jumped = panning(17, jumps={9: 24})
    at_seam = seam_discontinuity(jumped, reference, [5, 9, 13])
    assert at_seam["seam_discontinuity"] > 1.5 and at_seam["seam_ratio"] > 2.5
    off_seam = seam_discontinuity(jumped, reference, [5, 13])
    assert off_seam["seam_discontinuity"] < 0.2


def test_each_seam_is_scored_alone_and_their_mean_is_the_figure():
    reference = panning(17)
    jumped = panning(17, jumps={9: 24})
    per_seam = seam_discontinuities(jumped, reference, [5, 9, 13])
    assert len(per_seam) == 3 and per_seam[1] > 3 * max(per_seam[0], per_seam[2])
    assert np.mean(per_seam) == pytest.approx(
        seam_discontinuity(jumped, reference, [5, 9, 13])["seam_discontinuity"])


def test_a_frozen_video_is_not_seamless_against_a_moving_reference():
    reference = panning(17)
    frozen = np.repeat(reference[:1], 17, axis=0)
    result = seam_discontinuity(frozen, reference, [9])
    assert result["seam_discontinuity"] == pytest.approx(1.0, abs=0.2)
    assert result["seam_ratio"] is None  # no change within clips: the ratio is undefined


@pytest.mark.parametrize("boundaries, message", [
    ([0], "must lie in 1..4"), ([5], "must lie in 1..4"), ([], "non-empty"),
    ([2, 2], "distinct"), ([1, 2, 3, 4], "no within-clip"),
])
def test_seam_boundaries_are_checked(boundaries, message):
    video = panning(5)
    with pytest.raises(ValueError, match=message):
        seam_discontinuity(video, video, boundaries)


def test_seams_need_videos_of_equal_length():
    with pytest.raises(ValueError, match="as many frames, got 5 and 6"):
        seam_discontinuity(panning(5), panning(6), [2])


# Sharpness, per-clip series and drift


def test_blur_lowers_sharpness_and_a_flat_frame_has_none():
    sharp = panning(1)[0]
    video = np.stack([sharp, cv2.GaussianBlur(sharp, (7, 7), 2.0), np.full_like(sharp, 90)])
    values = sharpness(video)
    assert values.shape == (3,)
    assert values[0] > 2 * values[1] > 0 and values[2] == 0.0


def test_per_clip_means_average_each_span():
    per_frame = np.arange(10, dtype=np.float64)
    assert per_clip_means(per_frame, [(0, 5), (4, 9), (9, 10)]) == [2.0, 6.0, 9.0]
    with pytest.raises(ValueError, match="spans"):
        per_clip_means(per_frame, [(5, 5)])
    with pytest.raises(ValueError, match="spans"):
        per_clip_means(per_frame, [(8, 11)])


@pytest.mark.parametrize("values, slope", [([1, 2, 3], 1.0), ([5, 3, 1], -2.0), ([4, 4, 4], 0.0),
                                           ([7], 0.0), ([], 0.0), ([0.9, 0.8, 0.9, 0.8], -0.02)])
def test_drift_is_the_least_squares_slope_per_clip(values, slope):
    assert drift_slope(values) == pytest.approx(slope, abs=1e-12)


@pytest.mark.parametrize("values, vde", [
    ([0.5, 0.5, 0.5, 0.5], 0.0),  # no change from the first clip: no drift
    ([0.5, 0.4, 0.5, 0.5], 3 * 0.2),  # clip 2 off by 20 %, weight N - 2 + 1 = 3
    ([0.5, 0.5, 0.5, 0.4], 1 * 0.2),  # the same change on the last clip weighs 1
    ([0.5, 0.6, 0.7, 0.8], 3 * 0.2 + 2 * 0.4 + 1 * 0.6),  # a rise is drift too
    ([0.8], 0.0), ([], 0.0),
])
def test_vde_weighs_each_clips_relative_change_against_the_first(values, vde):
    assert video_drift_error(values) == pytest.approx(vde, abs=1e-12)


def test_vde_ranks_a_collapse_above_a_wobble_and_checks_its_input():
    collapse = [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    wobble = [0.6, 0.58, 0.61, 0.59, 0.6, 0.6]
    assert video_drift_error(collapse) > 10 * video_drift_error(wobble)
    assert video_drift_error([0.5, 0.4, 0.5], "log") == pytest.approx(np.log(2) * 0.2)
    assert video_drift_error([0.0, 0.0]) == 0.0 and video_drift_error([0.0, 0.1]) == np.inf
    with pytest.raises(ValueError, match="weighting"):
        video_drift_error([0.5, 0.4], "square")
    with pytest.raises(ValueError, match="finite"):
        video_drift_error([0.5, float("nan")])


# Control fidelity


def translated(frames: int, dx: int, dy: int) -> np.ndarray:
    """Texture whose content moves (dx, dy) px a frame: a point at p is at p + t (dx, dy)."""
    source = texture(SIZE + 60, SIZE + 60, seed=2)
    return crops(source, [(30 - t * dx, 30 - t * dy) for t in range(frames)])


def grid(count: int = 6) -> np.ndarray:
    axis = np.linspace(14, 34, count)
    return np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2).astype(np.float32)


def test_tracks_of_the_true_translation_are_followed_and_wrong_tracks_are_not():
    frames, motion = 9, np.array([2.0, 1.0])
    video, query = translated(frames, 2, 1), grid()
    steps = np.arange(frames)[:, None, None] * motion
    visible = np.ones((frames, len(query)), dtype=bool)
    true = track_fidelity(video, query, query + steps, visible)
    assert true["points"] == (frames - 1) * len(query)
    assert true["median_epe_px"] < 0.5 and true["within_2px"] > 0.95
    still = track_fidelity(video, query, np.broadcast_to(query, (frames, len(query), 2)), visible)
    assert still["median_epe_px"] > 5 and still["within_2px"] < 0.2


def test_track_fidelity_compares_only_where_the_control_sees_the_point():
    video, query = translated(5, 2, 1), grid(3)
    control = np.broadcast_to(query, (5, 9, 2)) + 100.0  # far off, but never visible after 0
    visible = np.zeros((5, 9), dtype=bool)
    visible[0] = True
    assert track_fidelity(video, query, control, visible) == {
        "median_epe_px": None, "within_2px": None, "points": 0}
    with pytest.raises(ValueError, match="control_xy must be"):
        track_fidelity(video, query, control[:, :4], visible)


def control_from(disparity: np.ndarray) -> np.ndarray:
    """The dense control as the pipeline makes it: p5/p95 of the video's disparity, clipped."""
    far, near = np.percentile(disparity, [5, 95])
    bounds = DepthBounds(near=float(near), far=float(far), colour_low=float(far),
                         colour_high=float(near))
    return normalise_disparity(disparity, bounds)


@pytest.fixture(scope="module")
def disparity() -> np.ndarray:
    """A slanted floor with a nearer box that moves: positive, varied disparity per frame."""
    rows = np.linspace(0.2, 1.0, 32)[:, None] * np.ones((1, 32))
    frames = np.repeat(rows[None], 4, axis=0)
    for t in range(4):
        frames[t, 8:16, 4 + 4 * t : 12 + 4 * t] = 1.6
    return frames


def test_any_affine_copy_of_the_true_disparity_matches_the_control_exactly(disparity):
    result = depth_fidelity(3.0 * disparity + 7.0, control_from(disparity))
    assert result["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert result["pearson"] == pytest.approx(1.0, abs=1e-6)


def test_a_swapped_or_random_depth_does_not_match(disparity):
    control = control_from(disparity)
    swapped = depth_fidelity(1.0 / disparity, control)  # depth passed off as disparity
    assert swapped["pearson"] < -0.9 and swapped["abs_rel"] > 0.3
    noise = np.random.default_rng(0).uniform(0.1, 1.0, disparity.shape)
    random = depth_fidelity(noise, control)
    assert abs(random["pearson"]) < 0.2 and random["abs_rel"] > 0.3


def test_depth_fidelity_checks_its_inputs(disparity):
    control = control_from(disparity)
    with pytest.raises(ValueError, match="same shape"):
        depth_fidelity(disparity[:2], control)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        depth_fidelity(disparity, control + 1.0)
    with pytest.raises(ValueError, match="NaN or inf"):
        depth_fidelity(np.full_like(disparity, np.nan), control)


def test_depth_fidelity_is_undefined_rather_than_divided_by_zero():
    everything_far = np.ones((2, 8, 8), dtype=np.float32)
    assert depth_fidelity(np.full((2, 8, 8), 0.5), everything_far) == {
        "abs_rel": None, "pearson": None}

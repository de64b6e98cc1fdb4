"""The weight-free benchmark metrics: pure functions over uint8 RGB videos.

Every video is a numpy array (T, H, W, 3) uint8; per-frame results are numpy arrays. These
metrics need no pretrained network, so the benchmark always runs them (the model-based VBench
dimensions run only when their weights are configured). Definitions:

* **Frame quality** against the reference: per-frame PSNR (dB; ``inf`` for identical frames) and
  SSIM (Gaussian window 11, sigma 1.5) on [0, 1] images, computed by torchmetrics.
* **Frame change** d[t - 1] = mean |frame[t] - frame[t - 1]| over pixels and channels, in [0, 255]
  units: the raw material of flicker and seam measures.
* **Temporal flickering** (VBench, without its static-camera filter): (255 - mean d) / 255;
  1 = no frame ever changes. It rewards stillness, so it is read together with dynamic degree.
* **Dynamic degree** (VBench's rule with classical flow instead of RAFT): OpenCV DIS flow (medium
  preset) per consecutive pair of grey frames; a pair's score is the mean of its top 5 % flow
  magnitudes; the video is dynamic when at least round(4 N / 16) pairs (N frames) score above
  6 min(H, W) / 256 px.
* **Seam discontinuity**, reference-relative: mean over clip boundaries b of |d_gen(b) - d_ref(b)|
  divided by the mean of d_ref over within-clip pairs, where d(b) is the change from frame b - 1
  (the last frame of one clip) to frame b (the first new frame of the next). 0 = the boundaries
  change exactly as the real video does there. A ratio inside the generated video alone (the
  descriptive ``seam_ratio``: boundary change / within-clip change) would rate a frozen video as
  seamless; against the reference a frozen video scores about 1 and a jump far more.
* **Sharpness**: per-frame variance of the Laplacian of the grey frame (falls with blur), and
  **drift**: the least-squares slope of a per-clip series against clip index (a quality that
  decays clip after clip has a negative slope for SSIM or sharpness).
* **Track fidelity** (sparse control): the query points re-tracked on the generated frames by the
  pipeline's own tracker, compared with the control tracks where the control sees them.
* **Depth fidelity** (dense control): a depth estimate of the generated frames, aligned per frame
  by a non-negative scale and a shift to the control's near-ness, compared with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from longvie.config.schema import TrackerConfig
from longvie.controls.klt import to_grey, track_klt

# Frames per torchmetrics call in frame_quality: bounds memory on long high-resolution videos.
QUALITY_BATCH = 8
# VBench's dynamic degree: share of flow magnitudes averaged per pair, and the threshold rule.
TOP_FLOW_SHARE = 0.05
FLOW_THRESHOLD_PX_AT_256 = 6.0
# A re-tracked point within this distance (px) of the control track counts as followed.
TRACK_TOLERANCE_PX = 2.0


def _check_video(name: str, frames: np.ndarray, min_frames: int = 1) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{name} must be a (T, H, W, 3) video, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {frames.dtype}")
    if len(frames) < min_frames:
        raise ValueError(f"{name} needs at least {min_frames} frames, got {len(frames)}")
    return frames


def frame_quality(generated: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame PSNR (dB, float64 (T,); ``inf`` where identical) and SSIM (float64 (T,)).

    The paper's fidelity to the reference video; torchmetrics so the numbers match the usual
    implementation. Frames go in small batches, so a long 1080p video does not fill memory, and
    in float32: torch's float64 convolutions on CPU made SSIM 30-50x slower (about 30 s for
    465 frames at 64x64, half of a whole benchmark) for differences below 1e-6.
    """
    generated = _check_video("generated", generated)
    reference = _check_video("reference", reference)
    if generated.shape != reference.shape:
        raise ValueError(
            f"generated and reference must have the same shape, got {generated.shape} "
            f"and {reference.shape}"
        )
    import torch
    from torchmetrics.functional.image import (
        peak_signal_noise_ratio,
        structural_similarity_index_measure,
    )

    def tensor(frames: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0

    psnr, ssim = [], []
    for start in range(0, len(generated), QUALITY_BATCH):
        preds = tensor(generated[start : start + QUALITY_BATCH])
        target = tensor(reference[start : start + QUALITY_BATCH])
        psnr.append(peak_signal_noise_ratio(preds, target, data_range=1.0, reduction="none",
                                            dim=(1, 2, 3)))
        ssim.append(structural_similarity_index_measure(preds, target, data_range=1.0,
                                                        reduction="none"))
    return torch.cat(psnr).double().numpy(), torch.cat(ssim).double().numpy()


def frame_changes(frames: np.ndarray) -> np.ndarray:
    """d (T - 1,) float64: mean absolute difference of frames t - 1 and t at index t - 1, 0-255.

    The ordinary frame-to-frame change that flicker and seams are measured in.
    """
    frames = _check_video("frames", frames)
    return np.array(
        [float(cv2.absdiff(frames[t - 1], frames[t]).mean()) for t in range(1, len(frames))],
        dtype=np.float64,
    )


def temporal_flickering(frames: np.ndarray) -> float:
    """(255 - mean frame change) / 255 in [0, 1]: VBench's model-free flicker score, 1 = still."""
    frames = _check_video("frames", frames, min_frames=2)
    return float((255.0 - frame_changes(frames).mean()) / 255.0)


def _top_flow(flow: np.ndarray) -> float:
    """Mean of the largest 5 % flow magnitudes: the moving part, not the static background."""
    magnitude = np.hypot(flow[..., 0], flow[..., 1]).ravel()
    count = max(1, int(magnitude.size * TOP_FLOW_SHARE))
    return float(np.partition(magnitude, -count)[-count:].mean())


def dynamic_degree(frames: np.ndarray) -> dict[str, bool | int | float]:
    """Whether the video moves, by VBench's rule on classical DIS flow (module docs).

    Returns ``dynamic``, ``pairs_above`` (pairs whose top flow passes the threshold),
    ``pairs_needed``, ``threshold_px`` and ``mean_top_flow_px`` (mean over pairs). DIS's medium
    preset (8 px patches) follows shifts of a few pixels even at 64x64 (tests).
    """
    frames = _check_video("frames", frames, min_frames=2)
    grey = to_grey(frames)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    top = np.array([_top_flow(dis.calc(grey[t - 1], grey[t], None)) for t in range(1, len(grey))])
    height, width = frames.shape[1:3]
    threshold = FLOW_THRESHOLD_PX_AT_256 * min(height, width) / 256.0
    # At least one pair: round(4 * 2 / 16) is 0, which would call any 2-frame video dynamic.
    needed = max(1, round(4 * len(frames) / 16))
    above = int((top > threshold).sum())
    return {
        "dynamic": above >= needed,
        "pairs_above": above,
        "pairs_needed": needed,
        "threshold_px": threshold,
        "mean_top_flow_px": float(top.mean()),
    }


def _crossing_pairs(boundaries: Sequence[int], frames: int) -> np.ndarray:
    """Pair indices b - 1 of the boundaries b, validated: 1 <= b <= frames - 1, distinct."""
    bounds = np.asarray(boundaries)
    if bounds.ndim != 1 or bounds.size == 0:
        raise ValueError(
            f"boundaries must be a non-empty list of frame indices, got {boundaries!r}"
        )
    if not np.issubdtype(bounds.dtype, np.integer):
        raise ValueError(f"boundaries must be integer frame indices, got {boundaries!r}")
    if bounds.min() < 1 or bounds.max() > frames - 1:
        raise ValueError(
            f"boundaries must lie in 1..{frames - 1} (a pair b-1, b inside {frames} frames), "
            f"got {bounds.tolist()}"
        )
    if len(np.unique(bounds)) != len(bounds):
        raise ValueError(f"boundaries must be distinct, got {bounds.tolist()}")
    return bounds - 1


def seam_discontinuity(
    generated: np.ndarray, reference: np.ndarray, boundaries: Sequence[int]
) -> dict[str, float | None]:
    """How the change across clip boundaries departs from the real video's (module docs).

    ``boundaries``: frame indices b of each new clip's first new frame. Returns
    ``seam_discontinuity`` (None when the reference never changes within clips) and
    ``seam_ratio`` (None when the generated video never changes within clips). Only the frame
    counts must match: frame changes are means, so the resolutions may differ.
    """
    generated = _check_video("generated", generated, min_frames=2)
    reference = _check_video("reference", reference, min_frames=2)
    per_seam, d_gen, crossing, gen_within = _seams(generated, reference, boundaries)
    return {
        "seam_discontinuity": float(per_seam.mean()) if per_seam is not None else None,
        "seam_ratio": float(d_gen[crossing].mean() / gen_within) if gen_within > 0 else None,
    }


def seam_discontinuities(generated: np.ndarray, reference: np.ndarray,
                         boundaries: Sequence[int]) -> list[float] | None:
    """:func:`seam_discontinuity` of each boundary alone (their mean is the figure), in
    ``boundaries``' order; None when the reference never changes within clips."""
    generated = _check_video("generated", generated, min_frames=2)
    reference = _check_video("reference", reference, min_frames=2)
    per_seam = _seams(generated, reference, boundaries)[0]
    return None if per_seam is None else per_seam.tolist()


def _seams(generated: np.ndarray, reference: np.ndarray, boundaries: Sequence[int]):
    """Per-boundary discontinuity (None if the reference is frozen within clips), the generated
    frame changes, the crossing pair indices and the generated mean within-clip change."""
    if len(generated) != len(reference):
        raise ValueError(
            f"generated and reference must have as many frames, got {len(generated)} "
            f"and {len(reference)}"
        )
    crossing = _crossing_pairs(boundaries, len(generated))
    within = np.setdiff1d(np.arange(len(generated) - 1), crossing)
    if within.size == 0:
        raise ValueError(f"boundaries {list(boundaries)} leave no within-clip frame pair")
    d_gen, d_ref = frame_changes(generated), frame_changes(reference)
    ref_within, gen_within = d_ref[within].mean(), d_gen[within].mean()
    per_seam = (np.abs(d_gen[crossing] - d_ref[crossing]) / ref_within if ref_within > 0
                else None)
    return per_seam, d_gen, crossing, gen_within


def sharpness(frames: np.ndarray) -> np.ndarray:
    """Per-frame variance of the grey Laplacian, float64 (T,): falls as frames blur out."""
    frames = _check_video("frames", frames)
    return np.array([float(cv2.Laplacian(g, cv2.CV_64F).var()) for g in to_grey(frames)])


def drift_slope(values: Sequence[float]) -> float:
    """Least-squares slope of a per-clip series against clip index; 0.0 below two values.

    The sign says whether a quality improves or decays as the video goes on, the size how fast.
    """
    series = np.asarray(values, dtype=np.float64)
    if series.ndim != 1:
        raise ValueError(f"values must be one series, got shape {series.shape}")
    if not np.isfinite(series).all():
        raise ValueError(f"values must be finite, got {series.tolist()}")
    if len(series) < 2:
        return 0.0
    return float(np.polyfit(np.arange(len(series)), series, 1)[0])


def video_drift_error(values: Sequence[float], weighting: str = "linear") -> float:
    """VDE (BlockVid / LV-Bench): the weighted relative change of a per-clip quality figure
    against the first clip, ``sum_i w_i |m_i - m_1| / |m_1|`` over clips i = 2..N.

    Weights fall with the clip's position (``linear``: N - i + 1; ``log``: log(N - i + 1)), so
    an early departure from the first clip costs more than a late one. 0.0 means no drift; the
    sum is not normalised, so compare it only between videos with the same number of clips. A
    first value of 0 has no relative change: ``inf`` unless every value is 0.
    """
    series = np.asarray(values, dtype=np.float64)
    if series.ndim != 1 or not np.isfinite(series).all():
        raise ValueError(f"values must be one finite series, got {series.tolist()}")
    clips = len(series)
    if clips < 2:
        return 0.0
    index = np.arange(2, clips + 1, dtype=np.float64)
    if weighting == "linear":
        weights = clips - index + 1
    elif weighting == "log":
        weights = np.log(clips - index + 1)
    else:
        raise ValueError(f"weighting must be 'linear' or 'log', got {weighting!r}")
    change = np.abs(series[1:] - series[0])
    if series[0] == 0:
        return 0.0 if not change.any() else float("inf")
    return float(np.sum(weights * change / abs(series[0])))


def per_clip_means(per_frame: np.ndarray, spans: Sequence[tuple[int, int]]) -> list[float]:
    """The mean of a per-frame series over each clip's frames [start, stop): per-clip series."""
    series = np.asarray(per_frame, dtype=np.float64)
    if series.ndim != 1:
        raise ValueError(f"per_frame must be one series, got shape {series.shape}")
    means = []
    for start, stop in spans:
        if not 0 <= start < stop <= len(series):
            raise ValueError(
                f"spans must be non-empty (start, stop) within 0..{len(series)}, "
                f"got ({start}, {stop})"
            )
        means.append(float(series[start:stop].mean()))
    return means


def track_fidelity(
    generated: np.ndarray,
    query_xy: np.ndarray,
    control_xy: np.ndarray,
    control_visible: np.ndarray,
    config: TrackerConfig | None = None,
) -> dict[str, float | int | None]:
    """Do the generated frames move the way the sparse control says?

    ``query_xy`` (N, 2) are the control's points on frame 0; ``control_xy`` (T, N, 2) and
    ``control_visible`` (T, N) its tracks. The queries are re-tracked on ``generated`` with
    :func:`longvie.controls.klt.track_klt` (``config`` or the default tracker) and compared at
    every frame after the first where the control sees the point; a track the tracker lost
    counts at its last known position (losing the point is a failure too). Returns
    ``median_epe_px``, ``within_2px`` (share of compared positions) - None when nothing is
    compared - and ``points`` (compared frame-point pairs).
    """
    generated = _check_video("generated", generated)
    frames = len(generated)
    query = np.asarray(query_xy, dtype=np.float32)
    if query.ndim != 2 or query.shape[1] != 2:
        raise ValueError(f"query_xy must be (N, 2), got shape {query.shape}")
    expected = (frames, len(query))
    control = np.asarray(control_xy, dtype=np.float64)
    if control.shape != (*expected, 2):
        raise ValueError(f"control_xy must be (T, N, 2) = {(*expected, 2)}, got {control.shape}")
    visible = np.asarray(control_visible)
    if visible.shape != expected or visible.dtype != np.bool_:
        raise ValueError(
            f"control_visible must be bool (T, N) = {expected}, got {visible.dtype} {visible.shape}"
        )
    tracked, _ = track_klt(generated, query, config or TrackerConfig())
    errors = np.linalg.norm(tracked[1:] - control[1:], axis=-1)[visible[1:]]
    if errors.size == 0:
        return {"median_epe_px": None, "within_2px": None, "points": 0}
    return {
        "median_epe_px": float(np.median(errors)),
        "within_2px": float((errors <= TRACK_TOLERANCE_PX).mean()),
        "points": int(errors.size),
    }


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Correlation of two samples; None when either is constant (undefined)."""
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 0 else None


def _align(predicted: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Least-squares scale >= 0 and shift taking ``predicted`` to ``target``.

    The scale is kept non-negative: a free sign would align an inverted (near-far swapped)
    estimate perfectly. When the free fit's scale is negative the constrained optimum is scale 0,
    shift = mean target (the objective is convex).
    """
    centred = predicted - predicted.mean()
    variance = float((centred * centred).sum())
    if variance == 0:
        return 0.0, float(target.mean())
    scale = max(0.0, float((centred * (target - target.mean())).sum()) / variance)
    return scale, float(target.mean() - scale * predicted.mean())


def depth_fidelity(
    predicted_disparity: np.ndarray, control_depth: np.ndarray
) -> dict[str, float | None]:
    """How well a depth estimate of the generated frames matches the dense control.

    ``predicted_disparity`` (T, H, W): any estimator's disparity (larger = nearer, relative: known
    up to scale and shift); ``control_depth`` (T, H, W) in [0, 1], 0 = near: the control, an
    affine map of the source's disparity clipped to [0, 1] (longvie.controls.normalise). The
    target is the control's near-ness 1 - depth. Per frame, scale (>= 0) and shift are fitted on
    the pixels where the control is not clipped (0 < depth < 1, where it is affine in disparity;
    all pixels when fewer than two), and the aligned prediction is clipped to [0, 1] as the
    control was, so the source's own disparity scores exactly 0 and 1. Returns

    * ``abs_rel``: sum |aligned - target| / sum target over all pixels of all frames, i.e. the
      mean absolute error relative to the mean near-ness (a per-pixel ratio would explode at
      far pixels, whose near-ness is 0); None when every pixel is at the far end;
    * ``pearson``: the mean over frames of the correlation of the prediction with the target on
      the fitted pixels (frames where either is constant are left out; None if all are); -1 is
      a depth map with near and far swapped.

    No model is run here: the caller runs the estimator on the generated frames.
    """
    predicted = np.asarray(predicted_disparity, dtype=np.float64)
    depth = np.asarray(control_depth, dtype=np.float64)
    if predicted.ndim != 3:
        raise ValueError(f"predicted_disparity must be (T, H, W), got shape {predicted.shape}")
    if predicted.shape != depth.shape:
        raise ValueError(
            f"predicted_disparity and control_depth must have the same shape, got "
            f"{predicted.shape} and {depth.shape}"
        )
    if not np.isfinite(predicted).all():
        raise ValueError("predicted_disparity holds NaN or inf")
    if not (np.isfinite(depth).all() and ((depth >= 0) & (depth <= 1)).all()):
        raise ValueError("control_depth must be finite and in [0, 1]")
    target = 1.0 - depth
    error, correlations = 0.0, []
    for frame, near in zip(predicted.reshape(len(predicted), -1), target.reshape(len(target), -1),
                           strict=True):
        fit = (near > 0) & (near < 1)
        if fit.sum() < 2:
            fit = np.ones_like(fit)
        scale, shift = _align(frame[fit], near[fit])
        error += float(np.abs(np.clip(scale * frame + shift, 0.0, 1.0) - near).sum())
        correlation = _pearson(frame[fit], near[fit])
        if correlation is not None:
            correlations.append(correlation)
    total = float(target.sum())
    return {
        "abs_rel": error / total if total > 0 else None,
        "pearson": float(np.mean(correlations)) if correlations else None,
    }

"""Score one long video against its reference and controls: the benchmark's per-video figures.

Frame 0 is the given first frame (every model starts from it), so the frame-quality means cover
frames 1 onwards. Per-clip series (SSIM, PSNR, the sharpness ratio to the reference) are what the
drift slopes are fitted to and what the per-clip plots show.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from longvie.quality import metrics
from longvie.generation.plan import ClipSpan


# What :func:`quality_scores` measures: the frame-quality figures the promotion gate compares,
# cheap enough to measure again for every sampler seed.
QUALITY_METRICS = ("psnr_db", "ssim", "flicker", "seam_discontinuity", "seam_ratio",
                   "ssim_drift_slope", "sharpness_drift_slope", "ssim_vde", "sharpness_vde",
                   "sharpness_ratio")


@dataclass(frozen=True)
class ClipTracks:
    """The sparse control of one clip: its query points and their tracks."""

    query_xy: np.ndarray  # (N, 2)
    tracks_xy: np.ndarray  # (T, N, 2)
    visible: np.ndarray  # (T, N) bool


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(kept)) if kept else None


def quality_scores(generated: np.ndarray, reference: np.ndarray,
                   spans: Sequence[ClipSpan]) -> dict:
    """:data:`QUALITY_METRICS` from the frames alone (``metrics``), with their per-clip series
    (``per_clip``)."""
    if generated.shape != reference.shape:
        raise ValueError(f"generated {generated.shape} and reference {reference.shape} differ")
    frames = len(generated)
    psnr, ssim = metrics.frame_quality(generated, reference)
    psnr = np.minimum(psnr, 100.0)  # identical frames give inf: cap so that means stay finite
    clip_ranges = [(span.start, min(span.stop, frames)) for span in spans]
    sharp_ratio = metrics.sharpness(generated) / np.maximum(metrics.sharpness(reference), 1e-6)
    per_clip = {
        "ssim": metrics.per_clip_means(ssim, clip_ranges),
        "psnr_db": metrics.per_clip_means(psnr, clip_ranges),
        "sharpness_ratio": metrics.per_clip_means(sharp_ratio, clip_ranges),
    }
    boundaries = [span.start + 1 for span in spans[1:] if span.start + 1 < frames]
    seams = (metrics.seam_discontinuity(generated, reference, boundaries) if boundaries
             else {"seam_discontinuity": None, "seam_ratio": None})
    # Entry k: the seam into clip k + 1 (no seam leads into clip 0; empty for a frozen reference).
    per_clip["seam_discontinuity"] = ((metrics.seam_discontinuities(generated, reference,
                                                                    boundaries) or [])
                                      if boundaries else [])
    values = {
        "psnr_db": float(psnr[1:].mean()),
        "ssim": float(ssim[1:].mean()),
        "flicker": metrics.temporal_flickering(generated),
        **seams,
        "ssim_drift_slope": metrics.drift_slope(per_clip["ssim"]),
        "sharpness_drift_slope": metrics.drift_slope(per_clip["sharpness_ratio"]),
        # Weight-free drift as long-video benchmarks report it (lower is better).
        "ssim_vde": metrics.video_drift_error(per_clip["ssim"]),
        "sharpness_vde": metrics.video_drift_error(per_clip["sharpness_ratio"]),
        "sharpness_ratio": float(np.mean(per_clip["sharpness_ratio"])),
    }
    return {"metrics": values, "per_clip": per_clip}


def score_video(
    generated: np.ndarray,
    reference: np.ndarray,
    spans: Sequence[ClipSpan],
    control_depth: Callable[[int, int], np.ndarray],
    tracks: Callable[[ClipSpan], ClipTracks | None],
    disparity: Callable[[np.ndarray], np.ndarray] | None,
) -> dict:
    """Every always-on metric of ``generated`` (T, H, W, 3) uint8 against ``reference``.

    ``control_depth(start, stop)`` gives the dense control of frames [start, stop);
    ``tracks(span)`` the clip's control tracks (None: no sparse fidelity for it); ``disparity``
    the configured depth model (None: no dense fidelity). Returns ``metrics`` (flat, one value
    each) and ``per_clip`` (series): :func:`quality_scores` plus motion and control fidelity.
    """
    scores = quality_scores(generated, reference, spans)
    frames = len(generated)
    dynamic = metrics.dynamic_degree(generated)
    track_scores, depth_scores = [], []
    for span in spans:
        start, stop = span.start, min(span.stop, frames)
        clip = generated[start:stop]
        control = tracks(span)
        if control is not None and stop - start == len(control.tracks_xy):
            track_scores.append(metrics.track_fidelity(clip, control.query_xy, control.tracks_xy,
                                                       control.visible))
        if disparity is not None:
            depth_scores.append(metrics.depth_fidelity(disparity(clip),
                                                        control_depth(start, stop)))
    scores["metrics"].update({
        "dynamic": float(dynamic["dynamic"]),
        "mean_top_flow_px": dynamic["mean_top_flow_px"],
        "track_epe_px": _mean([s["median_epe_px"] for s in track_scores]),
        "track_within_2px": _mean([s["within_2px"] for s in track_scores]),
        "depth_abs_rel": _mean([s["abs_rel"] for s in depth_scores]),
        "depth_pearson": _mean([s["pearson"] for s in depth_scores]),
    })
    return scores


def average_metrics(per_video: Sequence[dict[str, float | None]]) -> dict[str, float | None]:
    """Mean of each metric over videos (None where no video has a value)."""
    names = list(per_video[0]) if per_video else []
    return {name: _mean([video.get(name) for video in per_video]) for name in names}

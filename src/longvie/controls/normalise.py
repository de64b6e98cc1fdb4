"""Global normalisation of a whole source video's depth, computed without holding it in memory.

Convention (one for every source): the dense control is **normalised depth in [0, 1], 0 = near,
1 = far**. It is computed from disparity d (inverse depth, or a model's relative inverse depth)
as ``(d_high - d) / (d_high - d_low)``, clipped, where ``d_low`` and ``d_high`` are the low and
high percentiles (p5, p95) of all disparity values of the *whole* source video. This is the
mapping of the LongVie release (near surfaces dark). It is invariant to any positive affine change
of d over the video, so relative-disparity models (Depth Anything) and metric ground truth give
the same control for the same geometry. Normalising each clip on its own would change the mapping
from clip to clip; the papers show that breaks consistency across clips, so it is not offered.

The percentiles come from two streaming passes (range, then a fine histogram), so memory holds one
clip at a time whatever the video's length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

UINT16_MAX = 65535
CONVENTION = "normalised depth: 0 = near (disparity >= p_high), 1 = far (disparity <= p_low)"


@dataclass(frozen=True)
class DepthBounds:
    """Disparity percentiles of one source video: the dense (p5/p95) and colour (p2/p98) bounds."""

    near: float  # disparity at depth_high_percentile: maps to 0
    far: float  # disparity at depth_low_percentile: maps to 1
    colour_low: float  # disparity at colour_low_percentile: point-map blue 0
    colour_high: float  # disparity at colour_high_percentile: point-map blue 1

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def check(self) -> list[str]:
        """Problems that make the bounds unusable (empty when fine)."""
        values = self.as_dict()
        problems = [f"{k}={v} is not finite" for k, v in values.items() if not np.isfinite(v)]
        if not problems and not self.far <= self.near:
            problems.append(f"far={self.far} > near={self.near}: bounds are not ordered")
        if not problems and not self.colour_low <= self.colour_high:
            problems.append(f"colour_low={self.colour_low} > colour_high={self.colour_high}")
        return problems


def value_range(chunks: Iterable[np.ndarray]) -> tuple[float, float, int]:
    """(min, max, count) over chunks; non-finite or non-positive disparity is an error."""
    low, high, count = np.inf, -np.inf, 0
    for index, chunk in enumerate(chunks):
        values = np.asarray(chunk)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"disparity chunk {index} holds NaN or inf")
        if values.size:
            low, high = min(low, float(values.min())), max(high, float(values.max()))
            count += values.size
    if count == 0:
        raise ValueError("no disparity values: the video has no frames")
    if low <= 0:
        raise ValueError(f"disparity must be positive (inverse depth); minimum is {low}")
    return low, high, count


def histogram_percentiles(
    chunks: Iterable[np.ndarray], low: float, high: float, percentiles: Sequence[float], bins: int
) -> list[float]:
    """Percentiles of all values in ``chunks`` (known to lie in [low, high]) from one histogram.

    Linear interpolation inside the bin keeps the error well under one bin (range / bins); a
    constant video (low == high) returns that constant.
    """
    if high <= low:
        return [float(low)] * len(percentiles)
    counts = np.zeros(bins, dtype=np.int64)
    scale = bins / (high - low)
    for chunk in chunks:
        index = ((np.asarray(chunk, dtype=np.float64).ravel() - low) * scale).astype(np.int64)
        counts += np.bincount(np.clip(index, 0, bins - 1), minlength=bins)
    cumulative = np.cumsum(counts)
    total = cumulative[-1]
    results = []
    for percentile in percentiles:
        rank = percentile / 100.0 * total
        bin_index = int(np.searchsorted(cumulative, rank, side="left"))
        bin_index = min(bin_index, bins - 1)
        before = cumulative[bin_index - 1] if bin_index else 0
        inside = counts[bin_index]
        fraction = (rank - before) / inside if inside else 0.0
        results.append(float(low + (bin_index + fraction) / scale))
    return results


def global_bounds(
    chunk_source: Callable[[], Iterable[np.ndarray]],
    depth_percentiles: tuple[float, float] = (5.0, 95.0),
    colour_percentiles: tuple[float, float] = (2.0, 98.0),
    bins: int = 16384,
) -> DepthBounds:
    """Bounds over every value ``chunk_source()`` yields; it is called twice (two passes)."""
    low, high, _ = value_range(chunk_source())
    wanted = [*depth_percentiles, *colour_percentiles]
    far, near, colour_low, colour_high = histogram_percentiles(
        chunk_source(), low, high, wanted, bins
    )
    return DepthBounds(near=near, far=far, colour_low=colour_low, colour_high=colour_high)


def normalise_disparity(disparity: np.ndarray, bounds: DepthBounds) -> np.ndarray:
    """Disparity -> normalised depth in [0, 1] (0 = near), float32."""
    span = bounds.near - bounds.far
    if span <= 0:
        return np.zeros(np.shape(disparity), dtype=np.float32)
    normalised = (bounds.near - np.asarray(disparity, dtype=np.float64)) / span
    return np.clip(normalised, 0.0, 1.0).astype(np.float32)


def colour_inverse_depth(disparity: np.ndarray, bounds: DepthBounds) -> np.ndarray:
    """Disparity -> the point map's blue channel in [0, 1] (1 = near), from the p2/p98 bounds."""
    span = bounds.colour_high - bounds.colour_low
    if span <= 0:
        return np.ones(np.shape(disparity), dtype=np.float32)
    scaled = (np.asarray(disparity, dtype=np.float64) - bounds.colour_low) / span
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def to_uint16(normalised: np.ndarray) -> np.ndarray:
    """[0, 1] -> uint16 (the stored dense control: 16 bits keep far-range detail 8 bits lose)."""
    return np.round(np.clip(normalised, 0.0, 1.0) * UINT16_MAX).astype(np.uint16)


def from_uint16(stored: np.ndarray) -> np.ndarray:
    return stored.astype(np.float32) / UINT16_MAX

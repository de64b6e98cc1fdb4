"""Accuracy of the estimated controls against ground truth, as mergeable sufficient statistics.

Each source video is measured on its own (one Dagster partition each) and the report merges them
exactly: end-point errors go into a fine fixed histogram (median to 0.01 px), everything else is a
sum and a count.

Depth is compared the way it is used: the prediction and the ground truth are each globally
normalised over the video (p5/p95 of disparity); the prediction's normalised value is then read in
the ground truth's units (``d = near - n * (near - far)``), and AbsRel and delta < 1.25 are taken
on depth = 1 / d over all pixels. A constant prediction (n = 0.5 everywhere) is measured alongside
so the figures have a floor to be read against.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from longvie.controls.normalise import DepthBounds

EPE_BIN_PX = 0.01
EPE_MAX_PX = 64.0
EPE_BINS = int(EPE_MAX_PX / EPE_BIN_PX)


def _epe_histogram(errors: np.ndarray) -> np.ndarray:
    index = np.minimum((errors / EPE_BIN_PX).astype(np.int64), EPE_BINS - 1)
    return np.bincount(index, minlength=EPE_BINS)


def histogram_median(counts: np.ndarray) -> float | None:
    total = int(counts.sum())
    if total == 0:
        return None
    index = int(np.searchsorted(np.cumsum(counts), total / 2.0, side="left"))
    return (index + 0.5) * EPE_BIN_PX


@dataclass
class TrackingStats:
    """Tracker vs ground truth over frames after the query frame."""

    epe_counts: np.ndarray = field(default_factory=lambda: np.zeros(EPE_BINS, dtype=np.int64))
    zero_motion_counts: np.ndarray = field(
        default_factory=lambda: np.zeros(EPE_BINS, dtype=np.int64)
    )
    visibility_agree: int = 0
    visibility_total: int = 0
    gt_visible: int = 0

    def add(
        self,
        predicted_xy: np.ndarray,
        predicted_visible: np.ndarray,
        true_xy: np.ndarray,
        true_visible: np.ndarray,
    ) -> None:
        """All arrays (T, N[, 2]) with frame 0 the query frame (left out: it is given)."""
        seen = true_visible[1:]
        errors = np.linalg.norm(predicted_xy[1:] - true_xy[1:], axis=-1)[seen]
        still = np.linalg.norm(true_xy[:1] - true_xy[1:], axis=-1)[seen]
        self.epe_counts += _epe_histogram(errors)
        self.zero_motion_counts += _epe_histogram(still)
        self.visibility_agree += int((predicted_visible[1:] == true_visible[1:]).sum())
        self.visibility_total += int(true_visible[1:].size)
        self.gt_visible += int(seen.sum())

    def merge(self, other: TrackingStats) -> None:
        self.epe_counts += other.epe_counts
        self.zero_motion_counts += other.zero_motion_counts
        self.visibility_agree += other.visibility_agree
        self.visibility_total += other.visibility_total
        self.gt_visible += other.gt_visible

    def summary(self) -> dict[str, float | int | None]:
        points = int(self.epe_counts.sum())
        within = np.cumsum(self.epe_counts)
        return {
            "median_epe_px": histogram_median(self.epe_counts),
            "within_1px": float(within[int(1 / EPE_BIN_PX) - 1] / points) if points else None,
            "within_2px": float(within[int(2 / EPE_BIN_PX) - 1] / points) if points else None,
            "visibility_accuracy": (
                self.visibility_agree / self.visibility_total if self.visibility_total else None
            ),
            "zero_motion_median_epe_px": histogram_median(self.zero_motion_counts),
            "always_visible_accuracy": (
                self.gt_visible / self.visibility_total if self.visibility_total else None
            ),
            "points": points,
        }

    def to_json(self) -> dict:
        return {
            "epe_counts": _sparse(self.epe_counts),
            "zero_motion_counts": _sparse(self.zero_motion_counts),
            "visibility_agree": self.visibility_agree,
            "visibility_total": self.visibility_total,
            "gt_visible": self.gt_visible,
        }

    @classmethod
    def from_json(cls, data: dict) -> TrackingStats:
        return cls(
            epe_counts=_dense(data["epe_counts"]),
            zero_motion_counts=_dense(data["zero_motion_counts"]),
            visibility_agree=data["visibility_agree"],
            visibility_total=data["visibility_total"],
            gt_visible=data["gt_visible"],
        )


def _sparse(counts: np.ndarray) -> dict[str, int]:
    return {str(i): int(counts[i]) for i in np.flatnonzero(counts)}


def _dense(sparse: dict[str, int]) -> np.ndarray:
    counts = np.zeros(EPE_BINS, dtype=np.int64)
    for index, count in sparse.items():
        counts[int(index)] = count
    return counts


def _depth_in_truth_units(normalised: np.ndarray, truth: DepthBounds) -> np.ndarray:
    """Read a normalised depth in the ground truth's disparity units, then invert to depth."""
    return 1.0 / (truth.near - normalised.astype(np.float64) * (truth.near - truth.far))


@dataclass
class DepthStats:
    """Sums for AbsRel and delta1 of the model and of the constant floor, over pixels."""

    abs_rel_sum: float = 0.0
    delta1_count: int = 0
    constant_abs_rel_sum: float = 0.0
    constant_delta1_count: int = 0
    pixels: int = 0

    def add(
        self, predicted_normalised: np.ndarray, true_normalised: np.ndarray, truth: DepthBounds
    ) -> None:
        true_depth = _depth_in_truth_units(true_normalised, truth)
        constant = np.full_like(true_normalised, 0.5)
        for normalised, prefix in ((predicted_normalised, ""), (constant, "constant_")):
            depth = _depth_in_truth_units(normalised, truth)
            ratio = depth / true_depth
            relative = float((np.abs(depth - true_depth) / true_depth).sum())
            delta1 = int((np.maximum(ratio, 1.0 / ratio) < 1.25).sum())
            setattr(self, f"{prefix}abs_rel_sum", getattr(self, f"{prefix}abs_rel_sum") + relative)
            setattr(self, f"{prefix}delta1_count", getattr(self, f"{prefix}delta1_count") + delta1)
        self.pixels += int(true_normalised.size)

    def merge(self, other: DepthStats) -> None:
        for name in ("abs_rel_sum", "delta1_count", "constant_abs_rel_sum",
                     "constant_delta1_count", "pixels"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> dict[str, float | int | None]:
        if not self.pixels:
            return {"abs_rel": None, "delta1": None, "constant_abs_rel": None,
                    "constant_delta1": None, "pixels": 0}
        return {
            "abs_rel": self.abs_rel_sum / self.pixels,
            "delta1": self.delta1_count / self.pixels,
            "constant_abs_rel": self.constant_abs_rel_sum / self.pixels,
            "constant_delta1": self.constant_delta1_count / self.pixels,
            "pixels": self.pixels,
        }

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict) -> DepthStats:
        return cls(**data)

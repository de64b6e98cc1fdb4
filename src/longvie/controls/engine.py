"""The ``engine`` source: controls of rendered videos from their ground-truth sidecars.

A curated clip is a resampled, rescaled and centre-cropped view of its source video, so the
ground truth is mapped the same way: each clip frame uses the source frame recorded in
``source_frames``; pixel coordinates go through the clip table's crop box (cv2.resize maps pixel
centres as ``src = (dst + 0.5) * source / resized - 0.5``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from longvie.curation.frames import crop_box, resize_center_crop, resized_size
from longvie.errors import LongvieError
from longvie.synth.groundtruth import GroundTruth, load_groundtruth, track_points

SIDECAR_SUFFIX = ".gt.npz"


@dataclass(frozen=True)
class ClipGeometry:
    """How clip pixels relate to source pixels (per axis, after rounding of the resized size)."""

    source_width: int
    source_height: int
    resized_width: int
    resized_height: int
    crop_x: int
    crop_y: int
    width: int
    height: int

    @classmethod
    def from_row(cls, row) -> ClipGeometry:
        source_w, source_h = int(row["source_width"]), int(row["source_height"])
        width, height = int(row["width"]), int(row["height"])
        box = crop_box(source_w, source_h, width, height)
        resized_w, resized_h = resized_size(source_w, source_h, width, height)
        return cls(
            source_width=source_w,
            source_height=source_h,
            resized_width=resized_w,
            resized_height=resized_h,
            crop_x=box.x,
            crop_y=box.y,
            width=width,
            height=height,
        )

    def to_source(self, xy: np.ndarray) -> np.ndarray:
        scale = np.array([self.source_width / self.resized_width,
                          self.source_height / self.resized_height])
        offset = np.array([self.crop_x, self.crop_y])
        return (np.asarray(xy, dtype=np.float64) + offset + 0.5) * scale - 0.5

    def to_clip(self, xy: np.ndarray) -> np.ndarray:
        scale = np.array([self.resized_width / self.source_width,
                          self.resized_height / self.source_height])
        offset = np.array([self.crop_x, self.crop_y])
        return (np.asarray(xy, dtype=np.float64) + 0.5) * scale - 0.5 - offset

    def inside(self, xy: np.ndarray) -> np.ndarray:
        """Inside the clip image: the half-open pixel area [-0.5, W - 0.5) x [-0.5, H - 0.5)."""
        x, y = xy[..., 0], xy[..., 1]
        return (x >= -0.5) & (x < self.width - 0.5) & (y >= -0.5) & (y < self.height - 0.5)


def sidecar_path(raw_dir: Path, source_path: str) -> Path:
    return (raw_dir / source_path).with_suffix(SIDECAR_SUFFIX)


def load_source_groundtruth(raw_dir: Path, source_path: str) -> GroundTruth:
    """The sidecar of a rendered source, with a clear error when it is missing or unreadable."""
    path = sidecar_path(raw_dir, source_path)
    if not path.is_file():
        raise LongvieError(
            f"{path}: no ground-truth sidecar for the engine source {source_path} "
            "(written by `longvie synth`; set controls.source_by_dir to 'estimated' for "
            "videos without one)"
        )
    try:
        return load_groundtruth(path, stream_frames=True)
    except (OSError, ValueError) as error:
        raise LongvieError(f"{path}: unreadable ground truth: {error}") from error


def _source_frames(row, gt: GroundTruth) -> np.ndarray:
    frames = np.asarray(row["source_frames"], dtype=np.int64)
    if len(frames) != int(row["num_frames"]):
        raise LongvieError(
            f"clip {row['clip_id']}: {len(frames)} source frames for {row['num_frames']} frames"
        )
    if frames.min() < 0 or frames.max() >= gt.num_frames:
        raise LongvieError(
            f"clip {row['clip_id']} uses source frame {frames.max()} but the ground truth has "
            f"{gt.num_frames} frames"
        )
    return frames


def clip_disparity(gt: GroundTruth, row) -> np.ndarray:
    """Ground-truth disparity 1/z (T, H, W) float32 of one clip, mapped like its pixels."""
    geometry = ClipGeometry.from_row(row)
    if (gt.width, gt.height) != (geometry.source_width, geometry.source_height):
        raise LongvieError(
            f"clip {row['clip_id']}: ground truth is {gt.width}x{gt.height}, the source video "
            f"{geometry.source_width}x{geometry.source_height}"
        )
    out = np.empty((int(row["num_frames"]), geometry.height, geometry.width), dtype=np.float32)
    for t, frame in enumerate(_source_frames(row, gt)):
        disparity = 1.0 / np.maximum(gt.depth[frame], 1e-6)
        mapped = resize_center_crop(disparity.astype(np.float32), geometry.width, geometry.height)
        out[t] = np.maximum(mapped, np.float32(1e-6))
    return out


def clip_tracks(
    gt: GroundTruth, row, query_xy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth tracks of clip-frame-0 queries through the clip: xy (T, N, 2), visible (T, N).

    Visible means visible in the source (ray cast) and inside the clip's crop; xy is finite
    everywhere (points behind the camera keep their last finite position).
    """
    geometry = ClipGeometry.from_row(row)
    frames = _source_frames(row, gt)
    source_xy, source_visible = track_points(gt, int(frames[0]), geometry.to_source(query_xy),
                                             frames=frames)
    xy = geometry.to_clip(source_xy).astype(np.float32)
    visible = source_visible & geometry.inside(xy) & np.all(np.isfinite(xy), axis=2)
    for t in range(1, len(xy)):
        missing = ~np.all(np.isfinite(xy[t]), axis=1)
        xy[t, missing] = xy[t - 1, missing]
    return xy, visible

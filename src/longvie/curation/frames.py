"""Per-frame measures and transforms used to convert and judge segments (OpenCV, vectorised)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

THUMBNAIL_SIZE = 16


@dataclass(frozen=True)
class CropBox:
    """How a source frame maps onto a clip frame: scale, then crop at (x, y) — kept in the clip
    table so later stages can map pixel-space ground truth (depth, tracks) the same way."""

    scale: float
    x: int
    y: int


def crop_box(source_width: int, source_height: int, width: int, height: int) -> CropBox:
    """Scale so the target is covered, then centre-crop (no letterboxing, no stretching)."""
    scale = max(width / source_width, height / source_height)
    resized_w = max(width, round(source_width * scale))
    resized_h = max(height, round(source_height * scale))
    return CropBox(scale=scale, x=(resized_w - width) // 2, y=(resized_h - height) // 2)


def resized_size(source_width: int, source_height: int, width: int, height: int) -> tuple[int, int]:
    """The (width, height) a source is resized to before the centre crop (rounded per axis)."""
    scale = crop_box(source_width, source_height, width, height).scale
    return max(width, round(source_width * scale)), max(height, round(source_height * scale))


def resize_center_crop(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    source_h, source_w = rgb.shape[:2]
    box = crop_box(source_w, source_h, width, height)
    resized_w, resized_h = resized_size(source_w, source_h, width, height)
    shrinking = resized_w < source_w
    resized = cv2.resize(
        rgb, (resized_w, resized_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    )
    return np.ascontiguousarray(resized[box.y : box.y + height, box.x : box.x + width])


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian: low for blurred frames."""
    return float(cv2.Laplacian(gray, cv2.CV_32F).var())


def chroma(rgb: np.ndarray) -> float:
    """Mean |R-G| + |G-B| (0-255 scale): ~0 for greyscale content stored as colour."""
    signed = rgb.astype(np.int16)
    return float(
        np.abs(signed[..., 0] - signed[..., 1]).mean() + np.abs(signed[..., 1] - signed[..., 2]).mean()
    )


def thumbnail(gray: np.ndarray) -> np.ndarray:
    """A 16x16 float thumbnail: the fingerprint unit for near-duplicate detection."""
    return cv2.resize(gray, (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA).astype(
        np.float32
    )


def to_gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class NearestTimeResampler:
    """Turn a stream of (time, frame) at any (even variable) rate into frames at ``fps``.

    Each output time k/fps takes the source frame nearest to it, the way FFmpeg's fps filter does;
    frames are pushed one at a time, so a long video is never held in memory.
    """

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self._next_index = 0
        self._previous: tuple[float, int, np.ndarray] | None = None

    def push(self, seconds: float, source_index: int, frame: np.ndarray):
        """Yield ``(output_index, source_index, frame)`` for output times now decided."""
        if self._previous is not None:
            previous_seconds, previous_index, previous_frame = self._previous
            midpoint = (previous_seconds + seconds) / 2
            while self._next_index / self.fps < midpoint:
                yield self._next_index, previous_index, previous_frame
                self._next_index += 1
        self._previous = (seconds, source_index, frame)

    def finish(self, last_frame_duration: float):
        """Flush: the last source frame covers half a source interval past its time."""
        if self._previous is None:
            return
        seconds, index, frame = self._previous
        while self._next_index / self.fps < seconds + last_frame_duration / 2:
            yield self._next_index, index, frame
            self._next_index += 1

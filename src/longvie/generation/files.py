"""Controls given as two videos: a depth video and a point-map video (``generation.depth_video``,
``generation.point_map_video``).

The depth video is read as grey in the pipeline's convention (dark = near) and normalised over
the *whole* video before it is split into clips: its p5 and p95 grey levels, found in a first
streaming pass, map to 0 and 1, as the pipeline's own controls are. Spans are
served in increasing order by forward-only readers, so a long video is decoded once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from longvie.controls.normalise import histogram_percentiles
from longvie.errors import LongvieError

DEPTH_PERCENTILES = (5.0, 95.0)


class ForwardReader:
    """Frames of a video by index, for requests that never go backwards by more than the
    frames kept (the clips' one shared frame)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._frames: Iterator = self._decode()
        self._next = 0
        self._kept: dict[int, np.ndarray] = {}

    def _decode(self) -> Iterator[np.ndarray]:
        from longvie.video.io import iter_frames

        for _, frame in iter_frames(self.path):
            yield frame

    def frames(self, start: int, stop: int) -> np.ndarray:
        if start < min(self._kept, default=self._next):
            raise LongvieError(f"{self.path}: frame {start} was requested after later ones")
        while self._next < stop:
            frame = next(self._frames, None)
            if frame is None:
                raise LongvieError(f"{self.path}: has {self._next} frames, {stop} needed")
            self._kept[self._next] = frame
            self._next += 1
        out = np.stack([self._kept[i] for i in range(start, stop)])
        self._kept = {i: f for i, f in self._kept.items() if i >= stop - 1}
        return out


def grey(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float32).mean(axis=-1) / 255.0


def normalise_depth(depth: np.ndarray, low: float, high: float) -> np.ndarray:
    """Depth mapped so that ``low`` (near) is 0 and ``high`` is 1, clipped; flat when they meet."""
    scaled = (np.clip((depth - low) / (high - low), 0.0, 1.0) if high > low
              else np.zeros_like(depth))
    return scaled.astype(np.float32)


class FileControls:
    """``ControlVideo`` over a depth video and a point-map video of the same size and length."""

    def __init__(self, depth_video: Path, point_map_video: Path,
                 keys: tuple[str, str] = ("generation.depth_video",
                                          "generation.point_map_video")) -> None:
        from longvie.video.io import VideoReadError, iter_frames, probe

        probes = []
        for key, path in zip(keys, (depth_video, point_map_video), strict=True):
            if not path.is_file():
                raise LongvieError(f"{key}: {path}: no such control video")
            try:
                probes.append(probe(path))
            except VideoReadError as error:
                raise LongvieError(f"{key}: {path} is not a readable video ({error})") from error
        depth_info, points_info = probes
        if (depth_info.width, depth_info.height) != (points_info.width, points_info.height):
            raise LongvieError(
                f"{depth_video} is {depth_info.width}x{depth_info.height} but {point_map_video} "
                f"is {points_info.width}x{points_info.height}")
        # One pass over the depth video both counts its frames and finds its percentiles.
        depth_frames = [0]

        def depth_levels():
            for _, frame in iter_frames(depth_video):
                depth_frames[0] += 1
                yield grey(frame)

        try:
            low, high = histogram_percentiles(depth_levels(), 0.0, 1.0, DEPTH_PERCENTILES, 4096)
        except VideoReadError as error:
            raise LongvieError(f"{keys[0]}: {depth_video} cannot be decoded ({error})") from error
        try:
            point_frames = sum(1 for _ in iter_frames(point_map_video))
        except VideoReadError as error:
            raise LongvieError(f"{keys[1]}: {point_map_video} cannot be decoded ({error})"
                               ) from error
        if depth_frames[0] != point_frames:
            raise LongvieError(f"{depth_video} has {depth_frames[0]} frames, {point_map_video} "
                               f"{point_frames}: the controls must be frame-aligned")
        self.num_frames = point_frames
        self.width, self.height = depth_info.width, depth_info.height
        self.depth_video, self.point_map_video = depth_video, point_map_video
        self.bounds = (low, high)
        self._depth, self._points = ForwardReader(depth_video), ForwardReader(point_map_video)

    def span(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        depth = grey(self._depth.frames(start, stop))
        return normalise_depth(depth, *self.bounds), self._points.frames(start, stop)

    def span_tracks(self, start: int, stop: int) -> None:
        """A point-map video keeps no tracks: generation reads them back from it."""
        return None

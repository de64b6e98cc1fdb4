"""One generation request to the served model: its fields, their checks, and the files they
become.

A request is one row (a JSON record) with the first frame, the two controls and the caption.
Each medium comes either inline, base64-encoded (``first_frame``: PNG/JPEG, ``depth_video`` and
``point_map_video``: mp4, ``depth``: a ``.npy`` array of raw depth), or as a path the server can
read (the same names with ``_path``). Everything is checked before a model is touched, and every
error names the field: ``RequestError`` becomes MLflow's 400 ``INVALID_PARAMETER_VALUE``.

Inline media are written to a private temp folder so that the served model reads exactly what
``longvie generate`` reads from files (same decoder, same whole-video depth normalisation).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from longvie.errors import LongvieError
from longvie.generation.files import FileControls, normalise_depth
from longvie.pyfunc.fields import INTEGER_FIELDS, MEDIA, TEXT_FIELDS

# Every column a request row may have.
FIELDS = (*MEDIA, *(f"{name}_path" for name in MEDIA), *TEXT_FIELDS, *INTEGER_FIELDS)
DEPTH_PERCENTILES = (5.0, 95.0)


class RequestError(LongvieError):
    """A request that cannot be served, with the field at fault and the reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


@dataclass(frozen=True)
class VideoRequest:
    """A checked request: local files for every medium, the caption and the frame count
    (0 = as many as the controls have)."""

    first_frame: Path
    point_map_video: Path
    depth_video: Path | None
    depth: Path | None
    caption: str
    frames: int


def _present(value: Any) -> bool:
    """Whether a cell holds a value (JSON null and pandas' NaN / None / NA do not)."""
    import pandas as pd

    if value is None or value is pd.NA:
        return False
    return not (isinstance(value, float) and math.isnan(value))


def _medium(row: Mapping[str, Any], name: str, folder: Path) -> Path | None:
    """The file for medium ``name``: decoded into ``folder`` or a readable path; None if absent."""
    inline, path = row.get(name), row.get(f"{name}_path")
    has_inline, has_path = _present(inline), _present(path)
    if has_inline and has_path:
        raise RequestError(name, f"give {name} or {name}_path, not both")
    suffix, holds = MEDIA[name]
    if has_path:
        if not isinstance(path, str) or not path:
            raise RequestError(f"{name}_path", "must be a path string")
        file = Path(path)
        if not file.is_file():
            raise RequestError(f"{name}_path", f"{path!r} is not a file the server can read")
        return file
    if not has_inline:
        return None
    if not isinstance(inline, str | bytes) or not inline:
        raise RequestError(name, f"must be {holds}, base64-encoded (got {type(inline).__name__})")
    try:
        data = base64.b64decode(inline, validate=True)
    except (binascii.Error, ValueError) as error:
        raise RequestError(name, f"is not valid base64 ({error})") from error
    if not data:
        raise RequestError(name, "is empty")
    file = folder / f"{name}{suffix}"
    file.write_bytes(data)
    return file


def _frames(row: Mapping[str, Any]) -> int:
    value = row.get("frames")
    if not _present(value):
        return 0
    if isinstance(value, bool) or not float(value).is_integer():
        raise RequestError("frames", f"must be a whole number, got {value!r}")
    frames = int(value)
    if frames < 0:
        raise RequestError("frames", f"must be >= 0 (0 = as many as the controls), got {frames}")
    return frames


def parse_request(row: Mapping[str, Any], folder: Path) -> VideoRequest:
    """Check one request row and turn its media into files under ``folder``."""
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise RequestError(unknown[0], f"is not a request field (fields: {', '.join(FIELDS)})")
    first = _medium(row, "first_frame", folder)
    if first is None:
        raise RequestError("first_frame", "is required (base64 PNG/JPEG, or first_frame_path)")
    points = _medium(row, "point_map_video", folder)
    if points is None:
        raise RequestError("point_map_video",
                           "is required (base64 mp4, or point_map_video_path)")
    depth_video, depth = _medium(row, "depth_video", folder), _medium(row, "depth", folder)
    if (depth_video is None) == (depth is None):
        raise RequestError("depth_video", "give exactly one of depth_video (a normalised depth "
                           "video) and depth (a raw depth array), inline or as a path")
    caption = row.get("caption")
    caption = "" if not _present(caption) else caption
    if not isinstance(caption, str):
        raise RequestError("caption", f"must be text, got {type(caption).__name__}")
    return VideoRequest(first, points, depth_video, depth, caption, _frames(row))


def read_first_frame(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise RequestError("first_frame", f"is not an image ({error})") from error


class ArrayDepthControls:
    """``ControlVideo`` of a raw depth array and a point-map video: the depth is normalised over
    the whole video (its p5 and p95 map to 0 and 1, near = 0), as the pipeline's controls are."""

    def __init__(self, depth: np.ndarray, points: np.ndarray) -> None:
        low, high = np.percentile(depth, DEPTH_PERCENTILES)
        self.depth, self.points = normalise_depth(depth, low, high), points
        self.num_frames = len(points)

    def span(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        return self.depth[start:stop], self.points[start:stop]

    def span_tracks(self, start: int, stop: int) -> None:
        """A point-map video keeps no tracks: generation reads them back from it."""
        return None


def read_depth_array(path: Path) -> np.ndarray:
    try:
        depth = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise RequestError("depth", f"is not a NumPy .npy array ({error})") from error
    if depth.ndim != 3 or not np.issubdtype(depth.dtype, np.number):
        raise RequestError("depth", f"must be a numeric (T, H, W) array, got {depth.dtype} "
                           f"{depth.shape}")
    if not np.isfinite(depth).all():
        raise RequestError("depth", "holds NaN or infinite values")
    return depth.astype(np.float32)


def request_controls(request: VideoRequest):
    """The request's ``ControlVideo``: the two videos as ``longvie generate`` reads them, or the
    raw depth array with the point-map video."""
    from longvie.video.io import VideoReadError, read_video

    if request.depth_video is not None:
        for name, path in (("depth_video", request.depth_video),
                           ("point_map_video", request.point_map_video)):
            _require_video(name, path)
        try:
            return FileControls(request.depth_video, request.point_map_video,
                                keys=("depth_video", "point_map_video"))
        except LongvieError as error:
            raise RequestError("depth_video", str(error)) from error
    _require_video("point_map_video", request.point_map_video)
    depth = read_depth_array(request.depth)
    try:
        points = read_video(request.point_map_video)[0]
    except VideoReadError as error:
        raise RequestError("point_map_video", f"is not a readable video ({error})") from error
    if depth.shape != points.shape[:3]:
        raise RequestError("depth", f"is {depth.shape} (T, H, W) but the point-map video is "
                           f"{points.shape[:3]}: the controls must be frame-aligned and the "
                           "same size")
    return ArrayDepthControls(depth, points)


def _require_video(name: str, path: Path) -> None:
    from longvie.video.io import VideoReadError, probe

    try:
        probe(path)
    except VideoReadError as error:
        raise RequestError(name, f"is not a readable video ({error})") from error

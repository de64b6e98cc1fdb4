"""Build small test videos of known content with PyAV (moving colour texture by default)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

CODECS = {".mp4": "libx264", ".mkv": "libx264", ".mov": "libx264", ".avi": "mpeg4", ".webm": "libvpx-vp9"}


def moving_texture(
    frames: int, height: int, width: int, seed: int = 0, speed: int = 2, block: int = 12
) -> np.ndarray:
    """Random colour blocks panning right: sharp, colourful, clearly moving, and changing little
    enough per frame that a shot detector sees one shot."""
    rng = np.random.default_rng(seed)
    shape = (height // block + 1, (width + speed * frames) // block + 1, 3)
    base = rng.integers(0, 256, size=shape).astype(np.uint8)
    texture = cv2.resize(base, None, fx=block, fy=block, interpolation=cv2.INTER_NEAREST)
    return np.stack([texture[:height, t * speed : t * speed + width] for t in range(frames)])


def write(path: Path, frames: np.ndarray, fps: float = 12, times: list[float] | None = None) -> Path:
    """Encode ``frames`` (T,H,W,3 uint8) with the container's usual codec; ``times`` makes VFR."""
    codec = CODECS[path.suffix]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        if times is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = round(times[index] * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_in_decode_order(path: Path, frames: np.ndarray, fps: float, order: list[int]) -> Path:
    """An MP4 whose decoder hands frames out in ``order`` with their true presentation times.

    Every frame is coded alone (intra MPEG-4 Part 2, no reorder delay declared), and packet i
    carries frame ``order[i]``, the way a stream with B-frames but no declared delay decodes
    (opencv-doc's ``box.mp4``). Decode times are ``i - 1`` so no frame is shown before decoded.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(fps).limit_denominator(1000))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.gop_size = 1
        stream.codec_context.max_b_frames = 0
        stream.codec_context.qscale = 2
        packets = {}
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                packets[packet.pts] = packet
        for packet in stream.encode():
            packets[packet.pts] = packet
        for decode_index, index in enumerate(order):
            packet = packets[index]
            packet.pts, packet.dts, packet.stream = index, decode_index - 1, stream
            container.mux(packet)
    return path

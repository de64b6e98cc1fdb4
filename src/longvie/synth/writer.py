"""Write one rendered video as its three files: mp4, ground-truth npz and metadata json.

Everything written is byte-deterministic for a given rendering. For the mp4 that takes care:
x264's hand-written SIMD paths were seen to give different bytes for the same frames from run to
run in one long-lived process (on an AVX-512 machine), so x264 runs its portable C code
(``asm=0``, ~2 ms a 64x64 frame) in one thread; the RGB -> YUV conversion is done in numpy
instead of swscale's CPU-specific paths; and the container is written bit-exact (no muxer
version string, no creation time). The npz and json have fixed ordering and no timestamps.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from longvie.synth.groundtruth import GroundTruth
from longvie.synth.render import RenderedVideo

# A keyframe every this many seconds: clips cut later seek cheaply without bloating the file.
KEYFRAME_SECONDS = 2


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV 4:2:0 of an (H, W, 3) uint8 image, as PyAV's (3H/2, W) layout.

    Done in numpy so the bytes do not depend on which SIMD path swscale picks on this CPU.
    BT.601 limited range is what decoders assume for an untagged SD stream; chroma is the mean
    of each 2x2 block.
    """
    height, width = rgb.shape[:2]
    r, g, b = (rgb[..., k].astype(np.float64) / 255.0 for k in range(3))
    y = 16.0 + 65.481 * r + 128.553 * g + 24.966 * b
    u = 128.0 - 37.797 * r - 74.203 * g + 112.0 * b
    v = 128.0 + 112.0 * r - 93.786 * g - 18.214 * b

    def half(plane: np.ndarray) -> np.ndarray:
        return plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))

    out = np.empty((height * 3 // 2, width), dtype=np.uint8)
    out[:height] = np.clip(np.round(y), 0, 255)
    chroma = np.concatenate([half(u).ravel(), half(v).ravel()])
    out[height:] = np.clip(np.round(chroma), 0, 255).reshape(height // 2, width)
    return out


def write_mp4(path: Path, rgb: np.ndarray, fps: int, crf: int) -> None:
    """H.264 (libx264, yuv420p, constant rate factor ``crf``), a frame per ``rgb`` (T, H, W, 3)."""
    height, width = rgb.shape[1:3]
    bitexact = {"fflags": "+bitexact"}
    with av.open(str(path), mode="w", format="mp4", container_options=bitexact) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.codec_context.thread_count = 1
        stream.options = {
            "crf": str(crf),
            "preset": "medium",
            "x264-params": f"threads=1:asm=0:keyint={KEYFRAME_SECONDS * fps}:min-keyint=1",
        }
        for index, image in enumerate(rgb):
            frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(image), format="yuv420p")
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def write_groundtruth(path: Path, groundtruth: GroundTruth) -> None:
    """All ground-truth arrays in one compressed npz (fixed zip timestamps: deterministic)."""
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **groundtruth.arrays())


def write_metadata(path: Path, metadata: dict) -> None:
    path.write_text(json.dumps(metadata, indent=2, sort_keys=False) + "\n")


def write_video(video: RenderedVideo, folder: Path, stem: str, crf: int) -> list[Path]:
    """``folder/stem.mp4``, ``stem.gt.npz`` and ``stem.json``; returns the three paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.mp4", folder / f"{stem}.gt.npz", folder / f"{stem}.json"]
    write_mp4(paths[0], video.rgb, video.fps, crf)
    write_groundtruth(paths[1], video.groundtruth)
    write_metadata(paths[2], video.metadata())
    return paths

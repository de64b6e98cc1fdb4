"""Video files in and out through PyAV (FFmpeg), the one video I/O library of the project.

Reading yields RGB frames with their presentation time, so resampling to another frame rate can
follow time rather than frame counts (which lie for variable-frame-rate files). Writing streams
frames to H.264 so memory does not grow with the length of a video.
"""

from __future__ import annotations

import heapq
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

# Demuxers FFmpeg uses for still images: a renamed photo opens "successfully" through them.
IMAGE_FORMATS = frozenset(
    {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "gif", "webp_pipe", "tiff_pipe", "apng"}
)


# Most frames a decoder may hand out ahead of an earlier-presented one: H.264's largest picture
# reorder delay (FFmpeg's MAX_DELAYED_PIC_COUNT), the depth a stream without a declared delay
# can still be out of order by.
REORDER_WINDOW = 16


class VideoReadError(RuntimeError):
    """A file that cannot be used as a video; the message is the human-readable reason."""


@dataclass(frozen=True)
class VideoProbe:
    """What the container says about its first video stream (not yet verified by decoding)."""

    container: str
    codec: str
    pixel_format: str
    width: int
    height: int
    fps: float
    declared_frames: int
    duration_seconds: float


def check_readable(path: Path) -> None:
    """Open the file as the current user would, so permission problems get a plain reason."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            handle.read(1)
    except PermissionError as error:
        raise VideoReadError(f"unreadable: permission denied ({error.strerror})") from error
    except OSError as error:
        raise VideoReadError(f"unreadable: {error.strerror or error}") from error
    if size == 0:
        raise VideoReadError("empty file: 0 bytes")


def probe(path: Path) -> VideoProbe:
    """Read container metadata; raises :class:`VideoReadError` with the reason it is unusable."""
    check_readable(path)
    try:
        with av.open(str(path)) as container:
            if container.format.name in IMAGE_FORMATS:
                raise VideoReadError(f"still image: {container.format.name}, not a video")
            if not container.streams.video:
                raise VideoReadError("no video stream: audio or data only")
            stream = container.streams.video[0]
            context = stream.codec_context
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            duration = (
                float(stream.duration * stream.time_base)
                if stream.duration and stream.time_base
                else float(container.duration or 0) / av.time_base
            )
            return VideoProbe(
                container=container.format.name,
                codec=context.name,
                pixel_format=context.format.name if context.format else "unknown",
                width=int(context.width),
                height=int(context.height),
                fps=float(rate) if rate else 0.0,
                declared_frames=int(stream.frames or 0),
                duration_seconds=duration,
            )
    except VideoReadError:
        raise
    except (av.FFmpegError, OSError, ValueError, ZeroDivisionError) as error:
        raise VideoReadError(f"not a readable video: {_ffmpeg_reason(error)}") from error


def iter_frames(path: Path) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(seconds, rgb uint8 HxWx3)`` for every decodable frame, in presentation order.

    Seconds are the stream's own presentation times (the first frame need not be at 0), the
    time base PySceneDetect reports its cuts in. A decoder that returns frames in decode order
    (B-frames in a stream that declares no reorder delay, as opencv-doc's ``box.mp4``) is put
    back in presentation order, as FFmpeg's players do; see :func:`presentation_order`.

    A decode failure part-way raises :class:`VideoReadError` naming the frame it stopped at, so a
    truncated or corrupt file is reported instead of silently yielding a shorter video.
    """
    index = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = float(stream.average_rate or stream.guessed_rate or 0) or None
            # AVI is constant-rate by design and its pts are unreliable (packed B-frames repeat
            # them), so frames are timed by index there.
            by_index = container.format.name == "avi" and rate is not None

            def timed() -> Iterator[tuple[float, av.VideoFrame]]:
                nonlocal index
                for frame in container.decode(stream):
                    if by_index:
                        seconds = index / rate
                    elif frame.pts is not None and frame.time_base is not None:
                        seconds = float(frame.pts * frame.time_base)
                    elif rate:
                        seconds = index / rate
                    else:
                        raise VideoReadError(
                            "frames carry no timestamps and the stream no frame rate")
                    index += 1
                    yield seconds, frame

            for seconds, frame in presentation_order(timed()):
                yield seconds, frame.to_ndarray(format="rgb24")
    except VideoReadError:
        raise
    except (av.FFmpegError, OSError, ValueError) as error:
        raise VideoReadError(
            f"corrupt or truncated: decoding failed after {index} frames ({_ffmpeg_reason(error)})"
        ) from error


def presentation_order(frames: Iterable[tuple[float, object]],
                       window: int = REORDER_WINDOW) -> Iterator[tuple[float, object]]:
    """``(seconds, frame)`` pairs sorted by time, through a buffer of ``window`` frames.

    Raises :class:`VideoReadError` when the times are not a consistent set: a time that repeats,
    or a frame that arrives after more than ``window`` later-presented ones (no reorder delay a
    decoder can have explains it, so the times are wrong, not the order).
    """
    buffer: list[tuple[float, int, object]] = []
    shown: float | None = None

    def show() -> tuple[float, object]:
        nonlocal shown
        seconds, _, frame = heapq.heappop(buffer)
        if seconds == shown:
            raise VideoReadError(
                f"bad timestamps: two frames share the presentation time {seconds:.3f} s")
        shown = seconds
        return seconds, frame

    for arrival, (seconds, frame) in enumerate(frames):
        if shown is not None and seconds < shown:
            raise VideoReadError(
                f"bad timestamps: a frame at {seconds:.3f} s arrives after the one at "
                f"{shown:.3f} s and more than {window} others, out of order beyond any "
                "decoder's reorder delay")
        heapq.heappush(buffer, (seconds, arrival, frame))
        if len(buffer) > window:
            yield show()
    while buffer:
        yield show()


def read_video(path: Path) -> tuple[np.ndarray, float]:
    """All frames as a (T, H, W, 3) uint8 array and the stream's frame rate (small files only)."""
    fps = probe(path).fps
    frames = [rgb for _, rgb in iter_frames(path)]
    if not frames:
        raise VideoReadError(f"{path}: no frames decoded")
    return np.stack(frames), fps


def first_frame(path: Path) -> np.ndarray:
    """The first decodable frame (rgb uint8 HxWx3), without decoding the rest."""
    for _, frame in iter_frames(path):
        return frame
    raise VideoReadError(f"{path}: no decodable frame")


def _ffmpeg_reason(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return str(text).split(": '")[0].strip()


# A keyframe every this many seconds: a clip cut later seeks cheaply without bloating the file.
KEYFRAME_SECONDS = 2


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV 4:2:0 of an (H, W, 3) uint8 image, in PyAV's (3H/2, W) layout.

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


class _FailSafeFile(io.RawIOBase):
    """The file FFmpeg's muxer writes through: a write the disk refuses (a full disk, a quota) is
    recorded, and the muxer is told it succeeded and carries on into nothing.

    FFmpeg's mp4 muxer segfaulted in its trailer after an ``ENOSPC`` on a file it had opened
    itself; here native code never sees the error, and :meth:`raise_failure` raises it in Python
    once the muxer is done with the file. Positions stay consistent for the muxer's seeks.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = open(path, "wb")  # noqa: SIM115 (closed by close())
        self._position = 0  # where the muxer is
        self._at = 0  # where the file is
        self.failure: OSError | None = None

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data) -> int:
        size = len(memoryview(data))
        if self.failure is None:
            try:
                if self._at != self._position:
                    self._file.seek(self._position)
                self._file.write(data)
                self._at = self._position + size
            except OSError as error:
                self.failure = error
        self._position += size
        return size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._position = offset
        elif whence == io.SEEK_CUR:
            self._position += offset
        else:
            raise OSError(f"{self._file.name}: seeking from the end is not supported")
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        if not self._file.closed:
            try:
                self._file.close()  # flushes what is buffered: the disk may refuse it now
            except OSError as error:
                self.failure = self.failure or error
        super().close()

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure


class VideoWriter:
    """Stream RGB frames into an H.264 mp4 (yuv420p, constant rate factor ``crf``).

    Output bytes depend only on the frames and settings, so rendering or curating the same
    content twice gives files DVC sees as identical: x264's SIMD paths gave different bytes for
    the same frames from run to run here, so it runs its portable C code (``asm=0``, ~2 ms a
    64x64 frame) in one thread; RGB -> YUV is done in numpy rather than by swscale's
    CPU-specific paths; the container is bit-exact (no muxer version, no creation time).
    """

    def __init__(self, path: Path, fps: int, width: int, height: int, crf: int = 12) -> None:
        if width % 2 or height % 2:
            raise ValueError(f"{path}: H.264 yuv420p needs even sizes, got {width}x{height}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.fps = path, fps
        self._file = _FailSafeFile(path)
        self._container = av.open(
            self._file, mode="w", format="mp4", container_options={"fflags": "+bitexact"}
        )
        self._stream = self._container.add_stream("libx264", rate=fps)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        self._stream.time_base = Fraction(1, fps)
        self._stream.codec_context.thread_count = 1
        keyint = KEYFRAME_SECONDS * fps
        self._stream.options = {
            "crf": str(crf),
            "preset": "medium",
            "x264-params": f"threads=1:asm=0:keyint={keyint}:min-keyint=1",
        }
        self.frames_written = 0

    def write(self, rgb: np.ndarray) -> None:
        self._file.raise_failure()  # the disk is full: stop encoding now, not at the end
        frame = av.VideoFrame.from_ndarray(rgb_to_yuv420p(rgb), format="yuv420p")
        frame.pts, frame.time_base = self.frames_written, Fraction(1, self.fps)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        """Flush and close; a write the disk refused is raised here, as a plain ``OSError``."""
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        finally:
            self._file.close()
        self._file.raise_failure()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except BaseException:
            self.path.unlink(missing_ok=True)
            if kind is None:
                raise
        if kind is not None:
            self.path.unlink(missing_ok=True)


def write_video(path: Path, frames: np.ndarray, fps: int, crf: int = 12) -> None:
    """Write a whole (T, H, W, 3) uint8 array as an mp4."""
    _, height, width, _ = frames.shape
    with VideoWriter(path, fps=fps, width=width, height=height, crf=crf) as writer:
        for rgb in frames:
            writer.write(rgb)

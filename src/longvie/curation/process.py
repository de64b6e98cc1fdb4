"""Curate one source video: probe, cut into shots, resample, judge segments, write clips.

Runs in a worker process. Every failure becomes a reason in the result instead of an exception,
so one bad file never stops the others; clips of a rejected file or segment are deleted.
"""

from __future__ import annotations

import bisect
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from longvie.config.schema import CurationConfig, VideoConfig
from longvie.curation import frames as F
from longvie.curation.shots import detect_cuts
from longvie.curation.sources import SourceFile
from longvie.preflight import is_out_of_space
from longvie.video.io import VideoProbe, VideoReadError, VideoWriter, iter_frames, probe

GREY_PIXEL_FORMATS = ("gray", "ya8", "ya16", "monow", "monob")
CLIP_CRF = 10


@dataclass
class SegmentResult:
    index: int
    start_seconds: float
    end_seconds: float
    frames: int
    clips: list[dict] = field(default_factory=list)
    reason: str | None = None
    first_thumbnail: np.ndarray | None = None
    mean_thumbnail: np.ndarray | None = None


@dataclass
class SourceResult:
    source: SourceFile
    reason: str | None = None
    probe: VideoProbe | None = None
    decoded_frames: int = 0
    duration_seconds: float = 0.0
    segments: list[SegmentResult] = field(default_factory=list)
    seconds: float = 0.0


class SegmentBuilder:
    """Collects one shot's resampled frames into overlapping clips, writing each as it fills."""

    def __init__(
        self,
        source: SourceFile,
        index: int,
        video: VideoConfig,
        overlap: int,
        out_dir: Path,
        box: F.CropBox,
        probe_info: VideoProbe,
    ) -> None:
        self.source, self.video, self.overlap, self.out_dir = source, video, overlap, out_dir
        self.box, self.probe = box, probe_info
        self.result = SegmentResult(index=index, start_seconds=-1.0, end_seconds=-1.0, frames=0)
        self._buffer: list[tuple[np.ndarray, float, int]] = []
        self._previous_gray: np.ndarray | None = None
        self._motion_sum = self._sharpness_sum = 0.0
        self._thumbnail_sum: np.ndarray | None = None

    def add(self, rgb: np.ndarray, source_seconds: float, source_index: int) -> None:
        gray = F.to_gray(rgb)
        thumb = F.thumbnail(gray)
        if self.result.frames == 0:
            self.result.start_seconds = source_seconds
            self.result.first_thumbnail = thumb
            self._thumbnail_sum = np.zeros_like(thumb)
        if self._previous_gray is not None:
            self._motion_sum += float(np.abs(gray.astype(np.int16) - self._previous_gray).mean())
        self._previous_gray = gray.astype(np.int16)
        self._sharpness_sum += F.sharpness(gray)
        self._thumbnail_sum += thumb
        self.result.frames += 1
        self.result.end_seconds = source_seconds
        self._buffer.append((rgb, source_seconds, source_index))
        if len(self._buffer) == self.video.clip_frames:
            self._write_clip()
            self._buffer = self._buffer[len(self._buffer) - self.overlap :] if self.overlap else []

    def _write_clip(self) -> None:
        clip_index = len(self.result.clips)
        stride = self.video.clip_frames - self.overlap
        frame_start = clip_index * stride
        name = f"s{self.result.index:03d}_c{clip_index:04d}.mp4"
        relative = f"clips/{self.source.source_id}/{name}"
        with VideoWriter(
            self.out_dir / relative, self.video.fps, self.video.width, self.video.height, CLIP_CRF
        ) as writer:
            for rgb, _, _ in self._buffer:
                writer.write(rgb)
        first_seconds, last_seconds = self._buffer[0][1], self._buffer[-1][1]
        self.result.clips.append(
            {
                "clip_id": f"{self.source.source_id}/s{self.result.index:03d}c{clip_index:04d}",
                "source_id": self.source.source_id,
                "source_path": self.source.relative,
                "split": self.source.split,
                "caption": self.source.caption,
                "segment_index": self.result.index,
                "clip_index": clip_index,
                "frame_start": frame_start,
                "frame_end": frame_start + self.video.clip_frames,
                "source_frame_start": self._buffer[0][2],
                "source_frame_end": self._buffer[-1][2] + 1,
                # The decoded source frame behind each clip frame (nearest-time resampling), so
                # per-frame ground truth (depth, tracks) can be mapped onto the clip exactly.
                "source_frames": [index for _, _, index in self._buffer],
                "start_seconds": first_seconds,
                "end_seconds": last_seconds,
                "num_frames": len(self._buffer),
                "fps": self.video.fps,
                "width": self.video.width,
                "height": self.video.height,
                "duration_seconds": len(self._buffer) / self.video.fps,
                "path": relative,
                "source_width": self.probe.width,
                "source_height": self.probe.height,
                "source_fps": self.probe.fps,
                "crop_scale": self.box.scale,
                "crop_x": self.box.x,
                "crop_y": self.box.y,
            }
        )

    def finish(self, config: CurationConfig) -> SegmentResult:
        """Judge the finished segment; a rejected segment's clips are deleted."""
        result, frames = self.result, self.result.frames
        if self._thumbnail_sum is not None:
            result.mean_thumbnail = self._thumbnail_sum / max(frames, 1)
        motion = self._motion_sum / max(frames - 1, 1)
        sharp = self._sharpness_sum / max(frames, 1)
        if frames < self.video.clip_frames:
            result.reason = (
                f"too short: {frames} frames at {self.video.fps} fps "
                f"< one {self.video.clip_frames}-frame clip"
            )
        elif motion < config.static_threshold:
            result.reason = (
                f"static: mean frame change {motion:.2f} < {config.static_threshold}"
            )
        elif sharp < config.blur_threshold:
            result.reason = (
                f"blurred: Laplacian variance {sharp:.1f} < {config.blur_threshold}"
            )
        for clip in result.clips:
            clip["sharpness"], clip["motion"] = sharp, motion
        if result.reason:
            delete_clips(self.out_dir, result.clips)
            result.clips = []
        return result


def delete_clips(out_dir: Path, clips: list[dict]) -> None:
    for clip in clips:
        (out_dir / clip["path"]).unlink(missing_ok=True)


def _check_probe(info: VideoProbe, config: CurationConfig) -> None:
    short, long = sorted((info.width, info.height))
    if short <= 0:
        raise VideoReadError(f"no frame size: {info.width}x{info.height}")
    if short < config.min_short_side:
        raise VideoReadError(
            f"too small: {info.width}x{info.height}, short side {short} < {config.min_short_side}"
        )
    if long / short > config.max_aspect_ratio:
        raise VideoReadError(
            f"extreme aspect ratio: {info.width}x{info.height} ({long / short:.1f}:1 > "
            f"{config.max_aspect_ratio}:1)"
        )
    if info.pixel_format.startswith(GREY_PIXEL_FORMATS):
        raise VideoReadError(f"greyscale: pixel format {info.pixel_format}")
    if info.declared_frames == 1:
        raise VideoReadError("single frame: a still image, not a video")


def _check_timing(times: list[float], info: VideoProbe, config: CurationConfig) -> None:
    if not times:
        raise VideoReadError("corrupt or truncated: no frame could be decoded")
    if len(times) < 2:
        raise VideoReadError("single frame: 1 decoded, not a video")
    expected = info.declared_frames or round(info.duration_seconds * info.fps)
    if expected and len(times) < (1 - config.truncation_tolerance) * expected:
        raise VideoReadError(f"truncated: decoded {len(times)} of {expected} declared frames")
    intervals = np.diff(np.asarray(times))
    if (intervals <= 0).any():
        raise VideoReadError("bad timestamps: presentation times do not increase")
    if len(intervals) >= 3:
        low, median, high = np.percentile(intervals, [5, 50, 95])
        if (high - low) / median > config.vfr_tolerance:
            raise VideoReadError(
                f"variable frame rate: frame intervals range {low * 1e3:.0f}-{high * 1e3:.0f} ms"
            )


def curate_source(
    source: SourceFile, video: VideoConfig, config: CurationConfig, out_dir: Path
) -> SourceResult:
    """Never raises for a bad file: the result carries the reason."""
    started = time.perf_counter()
    result = SourceResult(source=source)
    try:
        _curate_into(result, video, config, out_dir)
    except VideoReadError as error:
        result.reason = str(error)
    except Exception as error:  # a library bug on one odd file must not stop the run
        if is_out_of_space(error):
            shutil.rmtree(out_dir / "clips" / source.source_id, ignore_errors=True)
            raise  # not the file's fault: the whole step stops, its previous output kept
        result.reason = f"internal error: {type(error).__name__}: {error}"
    if result.reason:
        shutil.rmtree(out_dir / "clips" / source.source_id, ignore_errors=True)
        result.segments = []
    result.seconds = time.perf_counter() - started
    return result


def _curate_into(
    result: SourceResult, video: VideoConfig, config: CurationConfig, out_dir: Path
) -> None:
    info = probe(result.source.path)
    result.probe = info
    _check_probe(info, config)
    cuts = detect_cuts(result.source.path, config)
    box = F.crop_box(info.width, info.height, video.width, video.height)
    resampler = F.NearestTimeResampler(video.fps)
    times: list[float] = []
    chroma_sum, chroma_frames = 0.0, 0
    builder: SegmentBuilder | None = None

    def route(index: int, rgb_small: np.ndarray) -> None:
        nonlocal builder, chroma_sum, chroma_frames
        chroma_sum, chroma_frames = chroma_sum + F.chroma(rgb_small), chroma_frames + 1
        seconds = times[index]
        segment_index = bisect.bisect_right(cuts, seconds + 1e-6)
        if builder is None or builder.result.index != segment_index:
            if builder is not None:
                result.segments.append(builder.finish(config))
            builder = SegmentBuilder(
                result.source, segment_index, video, config.clip_overlap, out_dir, box, info
            )
        builder.add(rgb_small, seconds, index)

    for source_index, (seconds, rgb) in enumerate(iter_frames(result.source.path)):
        times.append(seconds)
        small = F.resize_center_crop(rgb, video.width, video.height)
        for _, chosen, frame in resampler.push(seconds - times[0], source_index, small):
            route(chosen, frame)
    result.decoded_frames = len(times)
    _check_timing(times, info, config)
    last_interval = times[-1] - times[-2]
    for _, chosen, frame in resampler.finish(last_interval):
        route(chosen, frame)
    if builder is not None:
        result.segments.append(builder.finish(config))
    mean_chroma = chroma_sum / max(chroma_frames, 1)
    if mean_chroma < config.grayscale_tolerance:
        raise VideoReadError(
            f"greyscale: mean channel difference {mean_chroma:.2f} "
            f"< {config.grayscale_tolerance}"
        )
    result.duration_seconds = times[-1] - times[0] + last_interval

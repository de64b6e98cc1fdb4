"""Long videos the pipeline already knows: a curated source's shot, joined from its clips.

Curation cuts a shot into clips that share their boundary frames, and the controls are stored per
clip but normalised over the whole source video. Joining the clips back gives the long video,
its controls (already globally normalised, as generation needs them) and the reference frames
the benchmark compares against. Reads touch only the clips a span needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from longvie.config import LongvieConfig
from longvie.errors import LongvieError


@dataclass(frozen=True)
class StoredClip:
    clip_id: str
    start: int  # first frame in the long video
    stop: int
    caption: str
    video: Path
    controls: Path


@dataclass
class StoredVideo:
    """One shot of a curated source with its controls; implements ``ControlVideo``."""

    source_id: str
    segment: int
    clips: list[StoredClip]

    @property
    def num_frames(self) -> int:
        return self.clips[-1].stop

    def _gather(self, start: int, stop: int, read) -> np.ndarray:
        """Frames [start, stop) from ``read(clip)`` arrays, loading each clip once per call (a
        shared boundary frame is read from the earlier clip: both hold the same frame)."""
        if not 0 <= start < stop <= self.num_frames:
            raise LongvieError(f"{self.source_id}: frames [{start}, {stop}) outside the video's "
                               f"{self.num_frames}")
        frames, loaded = [], {}
        for frame in range(start, stop):
            clip = next(c for c in self.clips if c.start <= frame < c.stop)
            if clip.clip_id not in loaded:
                loaded = {clip.clip_id: read(clip)}
            frames.append(loaded[clip.clip_id][frame - clip.start])
        return np.stack(frames)

    def span(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        def depth(clip):
            with np.load(clip.controls) as data:
                return data["depth"]

        def points(clip):
            with np.load(clip.controls) as data:
                return data["point_map"]

        dense = self._gather(start, stop, depth).astype(np.float32) / 65535.0
        return dense, self._gather(start, stop, points)

    def reference(self, start: int, stop: int) -> np.ndarray:
        """The real frames [start, stop) (T, H, W, 3) uint8, from the curated clips."""
        from longvie.video.io import read_video

        return self._gather(start, stop, lambda clip: read_video(clip.video)[0])

    def tracks(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Clip ``index``'s sparse control: query points (N, 2), tracks (T, N, 2), visibility."""
        with np.load(self.clips[index].controls) as data:
            return data["query_xy"], data["tracks_xy"], data["tracks_visible"]

    def span_tracks(self, start: int, stop: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The stored tracks of the clip that starts at ``start`` (generation spans and curated
        clips share their boundaries), cut to ``stop``; None when no clip starts there."""
        for index, clip in enumerate(self.clips):
            if clip.start == start:
                query, xy, visible = self.tracks(index)
                return query, xy[: stop - start], visible[: stop - start]
        return None

    def first_frame(self) -> np.ndarray:
        from longvie.video.io import first_frame

        return first_frame(self.clips[0].video)

    def caption_at(self, frame: int) -> str:
        """The caption of the clip that starts the span holding ``frame``."""
        return next(c.caption for c in self.clips if c.start <= frame < c.stop)


def stored_video(config: LongvieConfig, source_id: str, segment: int | None = None) -> StoredVideo:
    """The curated shot of ``source_id`` (its longest one when ``segment`` is None)."""
    import pandas as pd

    curated, controls = Path(config.paths.curated), Path(config.paths.controls)
    table, index = curated / "clips.parquet", controls / "controls.parquet"
    for needed, step in ((table, "curate"), (index, "controls")):
        if not needed.is_file():
            raise LongvieError(f"{needed} does not exist: run `longvie {step}` first")
    clips = pd.read_parquet(table)
    clips = clips[clips["source_id"] == source_id]
    if clips.empty:
        raise LongvieError(f"source {source_id!r} is not in {table}")
    if segment is None:
        segment = int(clips.groupby("segment_index").size().idxmax())
    clips = clips[clips["segment_index"] == segment].sort_values("clip_index")
    stored = dict(pd.read_parquet(index)[["clip_id", "path"]].itertuples(index=False))
    missing = [c for c in clips["clip_id"] if c not in stored]
    if missing:
        raise LongvieError(f"{source_id}: {len(missing)} clips have no controls (e.g. "
                           f"{missing[0]}): run `longvie controls`")
    offset = int(clips["frame_start"].iloc[0])
    joined, previous_end = [], None
    for row in clips.itertuples():
        if previous_end is not None and row.frame_start != previous_end - 1:
            raise LongvieError(f"{source_id}: clip {row.clip_id} starts at frame {row.frame_start}"
                               f", not on the previous clip's last frame {previous_end - 1}")
        joined.append(StoredClip(row.clip_id, row.frame_start - offset, row.frame_end - offset,
                                 row.caption, curated / row.path, controls / stored[row.clip_id]))
        previous_end = row.frame_end
    return StoredVideo(source_id, segment, joined)

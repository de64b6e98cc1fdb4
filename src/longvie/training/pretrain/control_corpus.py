"""Clips with exact controls for ``longvie pretrain``'s control part.

The corpus videos carry no sidecars, but they are seeded: each scene is rendered again in memory
for its ground truth (depth, meshes and poses). Per 17-frame clip the controls are made the way
``longvie controls`` makes them for rendered sources: disparity normalised by the whole video's
percentile bounds (0 = near), a grid of queries on the clip's first frame tracked through it,
and the sparse control in the model's colouring (``model.sparse_control``) from the decoded
first frame. The held-out clips are the pipeline's benchmark scenes, made the same way.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from longvie.config import LongvieConfig
from longvie.controls.normalise import colour_inverse_depth, global_bounds, normalise_disparity
from longvie.controls.pointmap import rectangle_half_sizes, render_point_map, track_colours
from longvie.controls.splat import splat_first_frame
from longvie.errors import LongvieError
from longvie.synth.corpus import render_corpus_video
from longvie.synth.groundtruth import GroundTruth, grid_queries, query_tracks
from longvie.synth.render import render_video, video_frames
from longvie.video.io import read_video, write_video


@dataclass(frozen=True)
class ControlSettings:
    """What the controls of a clip depend on (picklable, for the worker processes)."""

    clip_frames: int
    grid: int
    sparse_control: str
    depth_percentiles: tuple[float, float]
    colour_percentiles: tuple[float, float]
    bins: int

    @classmethod
    def from_config(cls, config: LongvieConfig) -> ControlSettings:
        controls = config.controls
        return cls(config.video.clip_frames, controls.track_grid, config.model.sparse_control,
                   (controls.depth_low_percentile, controls.depth_high_percentile),
                   (controls.colour_low_percentile, controls.colour_high_percentile),
                   controls.histogram_bins)


@dataclass
class ControlledClip:
    """One clip and its controls, in compact dtypes."""

    clip_id: str
    caption: str
    frames: np.ndarray  # (T, H, W, 3) uint8, as decoded from the mp4
    depth: np.ndarray  # (T, H, W) float32 in [0, 1], 0 = near
    sparse: np.ndarray  # (T, H, W, 3) uint8, the sparse control in the model's colouring
    query_xy: np.ndarray  # (N, 2)
    tracks_xy: np.ndarray  # (T, N, 2)
    visible: np.ndarray  # (T, N) bool


def sparse_video(kind: str, first_frame: np.ndarray, query_xy: np.ndarray,
                 tracks_xy: np.ndarray, visible: np.ndarray, depth: np.ndarray,
                 blue: np.ndarray | None = None) -> np.ndarray:
    """The sparse control video in colouring ``kind``: ``first_frame`` (frame 0 carried along the
    tracks) or ``point_map`` (LongVie's position + depth colours; ``blue`` (N,) the queries'
    inverse depth in [0, 1], 1 = near)."""
    if kind == "first_frame":
        return splat_first_frame(first_frame, query_xy, tracks_xy, visible, depth)
    height, width = first_frame.shape[:2]
    if blue is None:
        blue = 1.0 - _sample(depth[0], query_xy)
    order = np.stack([-_sample(depth[t], tracks_xy[t]) for t in range(len(tracks_xy))])
    return render_point_map(tracks_xy, visible, track_colours(query_xy, blue, width, height),
                            rectangle_half_sizes(query_xy), order, height, width)


def _sample(values: np.ndarray, xy: np.ndarray) -> np.ndarray:
    height, width = values.shape
    xy = np.nan_to_num(np.asarray(xy, dtype=np.float64))
    x = np.clip(np.round(xy[:, 0]).astype(np.int64), 0, width - 1)
    y = np.clip(np.round(xy[:, 1]).astype(np.int64), 0, height - 1)
    return values[y, x]


def clip_tracks(gt: GroundTruth, start: int, frames: int, query_xy: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Tracks of ``query_xy`` on frame ``start`` through ``frames`` frames; a point behind the
    camera keeps its last finite position (as the engine controls store them)."""
    tracks = query_tracks(gt, start, query_xy, range(start, start + frames))
    xy, visible = tracks.xy.copy(), tracks.visible & np.all(np.isfinite(tracks.xy), axis=2)
    for t in range(1, len(xy)):
        missing = ~np.all(np.isfinite(xy[t]), axis=1)
        xy[t, missing] = xy[t - 1, missing]
    return np.nan_to_num(xy).astype(np.float32), visible


def video_clips(name: str, caption: str, decoded: np.ndarray, gt: GroundTruth,
                settings: ControlSettings, starts: list[int] | None = None
                ) -> list[ControlledClip]:
    """The controlled clips of one video: every clip (stride ``clip_frames - 1``) or ``starts``."""
    clip = settings.clip_frames
    disparity = 1.0 / np.maximum(np.asarray(gt.depth[: len(decoded)], dtype=np.float32), 1e-6)
    bounds = global_bounds(lambda: iter([disparity]), settings.depth_percentiles,
                           settings.colour_percentiles, settings.bins)
    height, width = decoded.shape[1:3]
    queries = grid_queries(width, height, settings.grid)
    if starts is None:
        starts = list(range(0, len(decoded) - clip + 1, clip - 1))
    out = []
    for start in starts:
        frames = decoded[start : start + clip]
        depth = normalise_disparity(disparity[start : start + clip], bounds)
        xy, visible = clip_tracks(gt, start, clip, queries)
        blue = colour_inverse_depth(_sample(disparity[start], queries), bounds)
        sparse = sparse_video(settings.sparse_control, frames[0], queries, xy, visible, depth,
                              blue)
        out.append(ControlledClip(f"{name}_f{start:04d}", caption, frames, depth, sparse,
                                  queries, xy, visible))
    return out


def corpus_video_clips(synth, corpus, folder: str, index: int, settings: ControlSettings
                       ) -> list[ControlledClip]:
    """Corpus video ``index``: its decoded mp4 and the controls of its re-rendered scene."""
    import json

    path = Path(folder) / f"scene_{index:05d}.mp4"
    decoded, _ = read_video(path)
    video = render_corpus_video(synth, corpus, index)
    if video.num_frames != len(decoded):
        raise LongvieError(f"{path}: {len(decoded)} frames, its scene renders "
                           f"{video.num_frames} (render the corpus again)")
    caption = json.loads(path.with_suffix(".json").read_text())["caption"]
    return video_clips(path.stem, caption, decoded, video.groundtruth, settings)


def heldout_controlled_clips(config: LongvieConfig) -> list[ControlledClip]:
    """``pretrain.heldout_clips_per_video`` clips of each of the first ``heldout_videos``
    benchmark scenes (the clips :func:`corpus_clips.heldout_clips` picks), with their controls."""
    from longvie.training.pretrain.corpus_clips import heldout_starts

    synth, settings = config.synth, ControlSettings.from_config(config)
    starts = heldout_starts(config, video_frames(synth, "benchmark"))
    items: list[ControlledClip] = []
    with tempfile.TemporaryDirectory(prefix="longvie-heldout-") as scratch:
        for index in range(min(config.pretrain.heldout_videos, synth.benchmark_videos)):
            rendered = render_video(synth, "benchmark", index)
            path = Path(scratch) / f"benchmark_{index}.mp4"
            write_video(path, rendered.rgb, rendered.fps, synth.crf)
            decoded, _ = read_video(path)
            items += video_clips(f"benchmark_{index:04d}", rendered.scene.caption(), decoded,
                                 rendered.groundtruth, settings, starts)
    return items

"""Samples for the controller stages: cached latents plus what each stage's degradations need.

Every stage reads the clip's video, dense and sparse latents from the cache. Stage 1's data-level
dense degradation needs the depth video in pixels (it blurs and rescales the depth, then encodes
it again); stages 2 and 3 need the real first frame in pixels (T(I) degrades the image, not its
latent); stage 3 needs the preceding clip's latents (the history). When the sparse control is the first
frame carried along the tracks, a degraded first frame needs its own sparse control: those
stages also load the clip's tracks and depth, so the control can be splatted again from T(I) as
it is at generation time from the last generated frame. The extras are loaded only for the
stages that use them, once, in compact dtypes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from longvie.config import LongvieConfig
from longvie.training.clips import ClipRecord, clip_records, depth_tensor
from longvie.training.latents import LatentDataset, SPLITS


@dataclass(frozen=True)
class StageInputs:
    """Which extras a stage's samples carry."""

    depth_video: bool = False
    first_frame: bool = False
    previous_latents: bool = False
    tracks: bool = False  # query points, tracks and depth, to splat the sparse control again


def load_depth(record: ClipRecord) -> np.ndarray:
    """(T, H, W) uint16 normalised depth of a clip's control file."""
    with np.load(record.controls) as data:
        return data["depth"]


def load_tracks(record: ClipRecord) -> dict[str, np.ndarray]:
    """What :func:`longvie.controls.splat.splat_first_frame` needs besides the frame."""
    with np.load(record.controls) as data:
        return {"query_xy": data["query_xy"], "tracks_xy": data["tracks_xy"],
                "tracks_visible": data["tracks_visible"], "track_depth": data["depth"]}


def load_first_frame(record: ClipRecord) -> np.ndarray:
    from longvie.video.io import first_frame

    return first_frame(record.video)


class StageDataset(Dataset):
    """Latents + caption per clip, with the extras of :class:`StageInputs`.

    ``previous`` is the preceding clip's video latent (zeros and ``has_previous = False`` for a
    clip that opens its shot): the history is cut from it per step, so the history length can
    change from step to step without touching the data.
    """

    def __init__(self, config: LongvieConfig, records: list[ClipRecord],
                 inputs: StageInputs) -> None:
        self.latents = LatentDataset(config, records)
        self.records, self.inputs = records, inputs
        self.depth = [load_depth(r) for r in records] if inputs.depth_video else None
        self.first_frames = ([load_first_frame(r) for r in records] if inputs.first_frame
                             else None)
        self.tracks = [load_tracks(r) for r in records] if inputs.tracks else None
        self.previous: list[int | None] = [None] * len(records)
        self.previous_latents: LatentDataset | None = None
        if inputs.previous_latents:
            wanted = sorted({r.previous_clip_id for r in records if r.previous_clip_id})
            by_id = {clip_id: index for index, clip_id in enumerate(wanted)}
            records_by_id = {r.clip_id: r for r in _records_of(config, wanted)}
            self.previous_latents = LatentDataset(config, [records_by_id[c] for c in wanted])
            self.previous = [by_id.get(r.previous_clip_id) for r in records]

    def __len__(self) -> int:
        return len(self.records)

    def has_previous(self, index: int) -> bool:
        return self.previous[index] is not None

    def __getitem__(self, index: int) -> dict:
        item = self.latents[index]
        if self.depth is not None:
            # depth_tensor gives grey x3 in [-1, 1]; the degradations work on one channel in [0, 1].
            item["depth"] = (depth_tensor(self.depth[index])[:1] + 1) / 2
        if self.first_frames is not None:
            frame = torch.from_numpy(self.first_frames[index]).permute(2, 0, 1).float()
            item["first_frame"] = frame / 127.5 - 1
        if self.tracks is not None:
            tracks = self.tracks[index]
            item |= {key: torch.from_numpy(value) for key, value in tracks.items()
                     if key != "track_depth"}
            item["track_depth"] = torch.from_numpy(tracks["track_depth"].astype(np.float32)
                                                   / 65535.0)
        if self.previous_latents is not None:
            previous = self.previous[index]
            item["has_previous"] = previous is not None
            item["previous"] = (self.previous_latents[previous]["video"] if previous is not None
                                else torch.zeros_like(item["video"]))
        return item


def _records_of(config: LongvieConfig, clip_ids: list[str]) -> list[ClipRecord]:
    """The records of ``clip_ids`` (any split), for preceding clips outside the given list."""

    wanted = set(clip_ids)
    return [r for r in clip_records(config, SPLITS, with_controls=True) if r.clip_id in wanted]

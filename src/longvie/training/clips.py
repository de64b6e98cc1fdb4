"""Curated clips (and their controls) as model-ready tensors.

Videos become (3, T, H, W) float in [-1, 1]. The dense control (normalised depth, 0 = near) is
repeated into three channels, as the LongVie release stores its depth videos, so the same VAE
encodes RGB, depth and point maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from longvie.config import LongvieConfig
from longvie.errors import LongvieError


@dataclass(frozen=True)
class ClipRecord:
    clip_id: str
    source_id: str
    split: str
    caption: str
    video: Path
    controls: Path | None
    # The clip just before this one in the same shot (sharing its first frame), if any: the
    # source of stage 3's history frames.
    previous_clip_id: str | None = None


def clip_records(config: LongvieConfig, splits: tuple[str, ...],
                 with_controls: bool = False) -> list[ClipRecord]:
    """Clips of ``splits`` in table order; with controls, only clips that have them."""
    import pandas as pd

    curated = Path(config.paths.curated)
    table = curated / "clips.parquet"
    if not table.is_file():
        raise LongvieError(f"{table} does not exist: run `longvie curate` first")
    clips = pd.read_parquet(table)
    clips = clips[clips["split"].isin(splits)]
    controls: dict[str, Path] = {}
    if with_controls:
        index = Path(config.paths.controls) / "controls.parquet"
        if not index.is_file():
            raise LongvieError(f"{index} does not exist: run `longvie controls` first")
        frame = pd.read_parquet(index)
        controls = {row.clip_id: Path(config.paths.controls) / row.path
                    for row in frame.itertuples()}
        clips = clips[clips["clip_id"].isin(controls)]
    previous = previous_clips(clips)
    records = [
        ClipRecord(row.clip_id, row.source_id, row.split, row.caption, curated / row.path,
                   controls.get(row.clip_id), previous.get(row.clip_id))
        for row in clips.itertuples()
    ]
    if not records:
        raise LongvieError(f"no curated clips in splits {splits}" +
                           (" with controls" if with_controls else ""))
    return records


def previous_clips(clips) -> dict[str, str]:
    """clip id -> the clip ending on its first frame in the same source and shot."""
    ends = {(row.source_id, row.segment_index, row.frame_end - 1): row.clip_id
            for row in clips.itertuples()}
    found = {}
    for row in clips.itertuples():
        before = ends.get((row.source_id, row.segment_index, row.frame_start))
        if before is not None and before != row.clip_id:
            found[row.clip_id] = before
    return found


def video_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (3, T, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float() / 127.5 - 1


def to_frames(video: torch.Tensor) -> np.ndarray:
    """(1, 3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8."""
    return batch_to_frames(video[:1])[0]


def batch_to_frames(videos: torch.Tensor) -> np.ndarray:
    """(B, 3, T, H, W) in [-1, 1] -> (B, T, H, W, 3) uint8."""
    return ((videos.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(
        0, 2, 3, 4, 1).numpy()


def first_frame_controls(codec, frames: np.ndarray, depth: np.ndarray,
                         tracks: tuple[np.ndarray, np.ndarray, np.ndarray]) -> torch.Tensor:
    """The sparse control in the ``first_frame`` colouring, encoded by ``codec`` (a
    ``LatentCodec``), for each of ``frames`` (B, H, W, 3) uint8: (B, z, F, h, w). Generation
    colours it with each chain's conditioning frame, stages 2-3 with a degraded first frame."""
    from longvie.controls.splat import splat_first_frame

    query, xy, visible = tracks
    splats = [splat_first_frame(frame, query, xy, visible, depth) for frame in frames]
    device = next(codec.vae.parameters()).device  # the splats are drawn on the CPU
    return codec.encode(torch.stack([video_tensor(s) for s in splats]).to(device))


def depth_tensor(depth: np.ndarray) -> torch.Tensor:
    """(T, H, W) uint16 normalised depth -> (3, T, H, W) in [-1, 1] (grey in three channels)."""
    grey = torch.from_numpy(depth.astype(np.float32) / 65535.0) * 2 - 1
    return grey.unsqueeze(0).expand(3, -1, -1, -1).contiguous()


def read_clip(record: ClipRecord, sparse_control: str = "point_map") -> dict[str, np.ndarray]:
    """The clip's frames and, when it has them, its controls (compact dtypes), the sparse one
    in the model's colouring (``model.sparse_control``)."""
    from longvie.video.io import read_video

    frames, _ = read_video(record.video)
    item = {"video": frames}
    if record.controls is not None:
        with np.load(record.controls) as data:
            item["dense"], item["sparse"] = data["depth"], data["point_map"]
            if sparse_control == "first_frame":
                from longvie.controls.splat import splat_first_frame

                item["sparse"] = splat_first_frame(
                    frames[0], data["query_xy"], data["tracks_xy"], data["tracks_visible"],
                    data["depth"].astype(np.float32) / 65535.0)
    return item


class ClipDataset(Dataset):
    """Clips as tensors; ``preload`` decodes everything once and keeps compact arrays."""

    def __init__(self, records: list[ClipRecord], preload: bool,
                 sparse_control: str = "point_map") -> None:
        self.records, self.sparse_control = records, sparse_control
        self._cache = [read_clip(r, sparse_control) for r in records] if preload else None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        raw = (self._cache[index] if self._cache is not None
               else read_clip(record, self.sparse_control))
        item = {"index": index, "clip_id": record.clip_id, "caption": record.caption,
                "video": video_tensor(raw["video"])}
        if "dense" in raw:
            item["dense"] = depth_tensor(raw["dense"])
            item["sparse"] = video_tensor(raw["sparse"])
        return item

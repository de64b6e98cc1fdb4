"""Clips for ``longvie pretrain``: the rendered corpus cut into clips, and held-out clips of the
pipeline's benchmark scenes.

The corpus is rendered at the profile's size and frame rate, so it needs no curation: each video
is cut into ``video.clip_frames`` clips that overlap by one frame (the generation stride). The
held-out clips come from the benchmark scenes of ``synth`` rendered in memory by the same code
and passed through the same mp4 writer, i.e. the frames ``data/raw`` holds, without needing the
pipeline's data: the base is judged on scenes it never saw.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from longvie.config import LongvieConfig
from longvie.errors import LongvieError
from longvie.training.clips import video_tensor


class CorpusClips(Dataset):
    """Every clip of every corpus video, decoded once into memory (uint8)."""

    def __init__(self, folder: Path, clip_frames: int, width: int, height: int) -> None:
        from longvie.video.io import read_video

        videos = sorted(folder.glob("*.mp4"))
        if not videos:
            raise LongvieError(f"{folder}: no corpus videos (run `longvie pretrain`, which "
                               "renders them first)")
        self.clips: list[np.ndarray] = []
        self.captions: list[str] = []
        self.ids: list[str] = []
        stride = clip_frames - 1
        for path in videos:
            frames, _ = read_video(path)
            if frames.shape[1:3] != (height, width):
                raise LongvieError(f"{path}: frames are {frames.shape[2]}x{frames.shape[1]}, "
                                   f"the profile's video is {width}x{height}")
            caption = json.loads(path.with_suffix(".json").read_text())["caption"]
            for start in range(0, len(frames) - clip_frames + 1, stride):
                self.clips.append(frames[start : start + clip_frames])
                self.captions.append(caption)
                self.ids.append(f"{path.stem}_f{start:04d}")
        if not self.clips:
            raise LongvieError(f"{folder}: videos shorter than one {clip_frames}-frame clip")

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        return {"index": index, "clip_id": self.ids[index], "caption": self.captions[index],
                "video": video_tensor(self.clips[index])}


def heldout_clips(config: LongvieConfig) -> list[dict]:
    """``pretrain.heldout_clips_per_video`` clips of each of the first ``heldout_videos``
    benchmark scenes, spread evenly over the video: (3, T, H, W) tensors with their captions."""
    from longvie.synth.render import render_video, video_frames
    from longvie.video.io import read_video, write_video

    settings, synth = config.pretrain, config.synth
    clip = config.video.clip_frames
    videos = min(settings.heldout_videos, synth.benchmark_videos)
    if videos < 1:
        raise LongvieError("pretrain.heldout_videos and synth.benchmark_videos must be >= 1: the "
                           "base is judged on the benchmark scenes")
    frames = video_frames(synth, "benchmark")
    starts = heldout_starts(config, frames)
    items = []
    with tempfile.TemporaryDirectory(prefix="longvie-heldout-") as scratch:
        for index in range(videos):
            rendered = render_video(synth, "benchmark", index)
            path = Path(scratch) / f"benchmark_{index}.mp4"
            write_video(path, rendered.rgb, rendered.fps, synth.crf)
            decoded, _ = read_video(path)
            caption = rendered.scene.caption()
            for start in starts:
                items.append({"clip_id": f"benchmark_{index:04d}_f{start:04d}",
                              "caption": caption,
                              "video": video_tensor(decoded[start : start + clip])})
    if not items:
        raise LongvieError(f"benchmark videos of {frames} frames hold no {clip}-frame clip")
    return items


def heldout_starts(config: LongvieConfig, frames: int) -> list[int]:
    """First frames of the held-out clips of a ``frames``-long benchmark video: spread evenly,
    each on a clip boundary of the pipeline's curation (multiples of ``clip_frames - 1``), so
    that they are clips ``longvie controls`` also makes."""
    clip, count = config.video.clip_frames, config.pretrain.heldout_clips_per_video
    if frames < clip:
        return []
    last = (frames - clip) // (clip - 1)
    return sorted({int(k) * (clip - 1) for k in np.linspace(0, last, count).round()})


def stacked(items: list[dict]) -> torch.Tensor:
    return torch.stack([item["video"] for item in items])

"""Write one rendered video as its three files: mp4, ground-truth npz and metadata json.

Everything written is byte-deterministic for a given rendering: the mp4 through the project's
reproducible :class:`~longvie.video.io.VideoWriter`, the npz and json with fixed ordering and no
timestamps.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from longvie.synth.groundtruth import GroundTruth
from longvie.synth.render import RenderedVideo
from longvie.video.io import write_video as write_mp4


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

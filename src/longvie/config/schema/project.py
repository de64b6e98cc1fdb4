"""Where files live and the clip format every step shares."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PathsConfig:
    """Where everything lives. Only ``root`` needs setting; the rest derive from it."""

    root: str = "."
    raw: str = "${paths.root}/data/raw"
    curated: str = "${paths.root}/data/curated"
    controls: str = "${paths.root}/data/controls"
    models: str = "${paths.root}/models"
    reports: str = "${paths.root}/reports"
    # The pretraining corpus of ``longvie pretrain`` (tracked by pretrain.dvc, like data/raw).
    pretrain: str = "${paths.root}/data/pretrain"


@dataclass
class VideoConfig:
    """The frame rate, size and clip length every curated clip has (and the model consumes).

    ``clip_frames`` must be 4k+1: the Wan VAE compresses time 4x after the first frame.
    """

    fps: int = 8
    width: int = 64
    height: int = 64
    clip_frames: int = 17

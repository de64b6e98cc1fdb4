"""A sample clip after each stage: the held-out reference beside what the model generates from
its first frame, caption and controls (logged to MLflow and kept in ``reports/``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

from longvie.model.sampler import ClipInputs, sample_clip as sample_latents
from longvie.plots import write_gif
from longvie.training.clips import to_frames
from longvie.training.stages.data import StageDataset, load_depth
from longvie.training.stages.module import ControllerModule

SAMPLING_STEPS = 20


@torch.no_grad()
def sample_clip(module: ControllerModule, dataset: StageDataset, index: int = 0,
                seed: int = 0) -> np.ndarray:
    """The generated clip (T, H, W, 3) uint8 for held-out item ``index`` (Euler, no guidance):
    the sampler ``longvie generate`` runs per clip."""

    batch = default_collate([dataset[index]])
    text = module.text_encoder.encode(list(batch["caption"]))
    inputs = ClipInputs(module.clean_condition(batch), text, text, batch["dense"],
                        batch["sparse"])
    noise = torch.randn(batch["video"].shape, generator=torch.Generator().manual_seed(seed))
    was_training = module.transformer.training
    module.transformer.eval()
    clean = sample_latents(module.transformer, inputs, noise, SAMPLING_STEPS, module.shift, 1.0)
    module.transformer.train(was_training)
    return to_frames(module.codec.decode(clean))


def write_sample_gif(module: ControllerModule, dataset: StageDataset, path: Path,
                     fps: float) -> Path | None:
    """reference | generated | depth control, side by side."""
    from longvie.video.io import read_video

    record = dataset.records[0]
    generated = sample_clip(module, dataset)
    reference, _ = read_video(record.video)
    depth = np.repeat((load_depth(record) // 257).astype(np.uint8)[..., None], 3, axis=3)
    frames = min(len(reference), len(generated), len(depth))
    strip = np.concatenate([reference[:frames], generated[:frames], depth[:frames]], axis=2)
    return write_gif(path, list(strip), fps)

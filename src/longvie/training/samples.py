"""A sample clip after each stage: the held-out reference beside what the model generates from
its first frame, caption and controls (logged to MLflow and kept in ``reports/``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

from longvie.model.backbone import i2v_input
from longvie.model.flow_sampler import euler_denoise, flow_sigmas
from longvie.plots import write_gif
from longvie.training.stage_data import StageDataset, load_depth
from longvie.training.stages import ControllerModule, control_input

SAMPLING_STEPS = 20


def to_uint8(video: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8."""
    frames = ((video.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return frames.permute(1, 2, 3, 0).numpy()


@torch.no_grad()
def sample_clip(module: ControllerModule, dataset: StageDataset, index: int = 0,
                seed: int = 0) -> np.ndarray:
    """The generated clip (T, H, W, 3) uint8 for held-out item ``index`` (Euler, no guidance)."""
    batch = default_collate([dataset[index]])
    latents = batch["video"]
    condition = module.clean_condition(batch)
    text = module.text_encoder.encode(list(batch["caption"]))
    dense, sparse = control_input(batch["dense"]), control_input(batch["sparse"])
    was_training = module.transformer.training
    module.transformer.eval()

    def velocity(x, timesteps):
        return module.transformer(i2v_input(x, condition), timesteps, text, dense=dense,
                                  sparse=sparse)

    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(latents.shape, generator=generator)
    clean = euler_denoise(velocity, noise, flow_sigmas(SAMPLING_STEPS, module.shift))
    module.transformer.train(was_training)
    return to_uint8(module.codec.decode(clean)[0])


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

"""Pretraining of the small Wan video VAE on the curated clips (CPU profiles only).

Loong trains its causal video tokenizer on single frames before clips; the causal Wan VAE encodes
frame 0 on its own, so frame training teaches the spatial path cheaply (a batch-16 frame step costs
about a third of a batch-4 clip step here) before short and full clips teach the temporal one.
The phase of each step comes from ``training.vae.phases``; crops and noise are drawn from the
step's own random stream, so a resumed run reproduces the uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from longvie.atomic import replace_directory
from longvie.config import LongvieConfig
from longvie.model.backbone import LatentCodec, build_vae
from longvie.ranks import barrier, is_rank_zero
from longvie.training.clips import ClipDataset, clip_records
from longvie.training.draws import shard_start
from longvie.training.sampling import Phase, phase_at, phases_from
from longvie.training.trainer import data_stamp, fit_step

STEP_NAME = "vae"


def crop_frames(video: torch.Tensor, frames: int, seed: int, step: int, stream: int,
                first: int = 0) -> torch.Tensor:
    """A random window of ``frames`` frames per sample of (B, 3, T, H, W). The sample at global
    batch position ``first + i`` draws from its own stream, so ranks crop what one process would."""
    span = video.shape[2] - frames + 1
    starts = [int(np.random.default_rng([seed, step, stream, first + i]).integers(0, span))
              for i in range(video.shape[0])]
    return torch.stack([clip[:, s : s + frames] for clip, s in zip(video, starts, strict=True)])


class VaeModule(L.LightningModule):
    """L1 reconstruction of the posterior mode + a small KL term, on the phase's frame count.

    The decoder is trained on the posterior mode because that is what the latent codec hands the
    DiT (the Wan pipeline encodes with the mode too). Sampling with a KL weight this small kept
    the posterior's log-variance near 0 (mean -0.04 after 150 steps), i.e. trained the decoder
    on latents far noisier than any it is later given. The KL term keeps the means bounded.
    """

    def __init__(self, vae, phases: list[Phase], learning_rate: float, kl_weight: float,
                 seed: int) -> None:
        super().__init__()
        self.vae, self.phases = vae, phases
        self.learning_rate, self.kl_weight, self.seed = learning_rate, kl_weight, seed

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        step = self.global_step
        phase = phase_at(self.phases, step)
        count = batch["video"].shape[0]
        video = crop_frames(batch["video"], phase.frames, self.seed, step, 1,
                            shard_start(self, count))
        posterior = self.vae.encode(video).latent_dist
        reconstruction = self.vae.decode(posterior.mode()).sample
        l1 = (reconstruction - video).abs().mean()
        kl = posterior.kl().mean() / video[0].numel()
        loss = l1 + self.kl_weight * kl
        self.log_dict({"vae/loss": loss, "vae/l1": l1, "vae/frames": float(phase.frames)},
                      prog_bar=True, batch_size=video.shape[0])
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.vae.parameters(), lr=self.learning_rate, weight_decay=0.0)


STATISTICS_CLIPS = 48


@torch.no_grad()
def set_latent_statistics(vae, videos: list[torch.Tensor]) -> None:
    """Record the per-channel mean and std of the posterior-mode latents of ``videos`` in the
    VAE's config (``latents_mean`` / ``latents_std``), as Wan's config holds its VAE's.

    The latent codec normalises with them, so the DiT works on unit-variance channels. With the
    Wan values left in the config of a VAE trained here, channel stds ranged from 0.15 to 1.3:
    some channels were nearly pure noise at every noise level, and the loss scale moved with
    every retrained VAE.
    """
    was_training = vae.training
    vae.eval()
    latents = torch.cat([vae.encode(video.unsqueeze(0)).latent_dist.mode() for video in videos])
    channels = latents.transpose(0, 1).flatten(1)
    mean, std = channels.mean(dim=1), channels.std(dim=1).clamp_min(1e-4)
    vae.register_to_config(latents_mean=[round(float(v), 6) for v in mean],
                           latents_std=[round(float(v), 6) for v in std])
    vae.train(was_training)


@torch.no_grad()
def reconstruction_psnr(vae, videos: list[torch.Tensor]) -> float:
    """Mean PSNR (dB, on [0, 1] pixels) of full clips encoded (posterior mode) and decoded."""

    codec, values = LatentCodec(vae.eval()), []
    for video in videos:
        decoded = codec.decode(codec.encode(video.unsqueeze(0)))[0]
        mse = float(((decoded - video) / 2).pow(2).mean())
        values.append(10 * math.log10(1.0 / max(mse, 1e-12)))
    return sum(values) / len(values)


def train_vae(config: LongvieConfig, progress: bool = True, log_mlflow: bool = True,
              callbacks: tuple = (), tags: dict[str, str] | None = None) -> dict:
    """Train (resuming from the last checkpoint if one exists) and save ``paths.models/vae``."""

    started = time.perf_counter()
    phases = phases_from(config.training.vae.phases)
    settings = config.training
    L.seed_everything(settings.trainer.seed, workers=True, verbose=False)
    vae = build_vae(config.model)
    module = VaeModule(vae, phases, settings.vae.learning_rate, settings.vae.kl_weight,
                       settings.trainer.seed)
    fitted = fit_step(
        config, STEP_NAME, module, phases,
        lambda: ClipDataset(clip_records(config, ("train",)), config.training.trainer.preload),
        stamp={"vae": dataclasses.asdict(settings.vae),
               "model": dataclasses.asdict(config.model.vae),
               "video": dataclasses.asdict(config.video), "seed": settings.trainer.seed,
               "data": data_stamp(config)},
        run_name="base/vae", tags={"longvie.step": "base", "longvie.part": "vae", **(tags or {})},
        log_mlflow=log_mlflow, progress=progress, callbacks=callbacks)
    steps, metrics = fitted.steps, fitted.trainer.callback_metrics
    out_dir = Path(config.paths.models) / STEP_NAME / "model"
    if not is_rank_zero():  # rank 0 saves the one VAE folder; the others read it after it
        barrier()
        return {"steps": steps, "model": str(out_dir), "rank_zero": False}
    sample = ClipDataset(clip_records(config, ("train",))[:STATISTICS_CLIPS], preload=False)
    set_latent_statistics(vae, [sample[i]["video"] for i in range(len(sample))])
    held_out = ClipDataset(clip_records(config, ("val", "benchmark"))[:8], preload=True)
    psnr = reconstruction_psnr(vae, [held_out[i]["video"] for i in range(len(held_out))])
    staging = out_dir.with_name(".model.partial")
    vae.save_pretrained(staging)
    replace_directory(staging, out_dir)
    barrier()
    return {
        "steps": steps,
        "heldout_psnr_db": round(psnr, 2),
        "final_loss": float(metrics["vae/loss"]) if "vae/loss" in metrics else None,
        "seconds": round(time.perf_counter() - started, 2),
        "model": str(out_dir),
    }


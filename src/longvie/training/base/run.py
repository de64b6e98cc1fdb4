"""``base_model`` on the CPU profiles: VAE, then the small I2V DiT + caption encoder.

Production loads Wan2.1-I2V-14B instead (``model.pretrained``); here the same diffusers classes
are trained from scratch on the curated clips so every later mechanism has a real base to build
on. The DiT learns on cached latents with Loong's short-to-long phases: single frames (as
text-to-image: no conditioning frame), then short clips, then full clips, with the early latent
frames' loss weighted by (1 + lambda). The finished base is a diffusers-style folder
(``transformer/``, ``vae/``, ``text_encoder/``) that later stages load like pretrained weights.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch

from longvie.atomic import replace_directory, write_json_atomically
from longvie.config import LongvieConfig
from longvie.model.backbone import (
    build_transformer,
    condition_of,
    i2v_input,
    latent_frames,
    unconditioned_input,
)
from longvie.model.losses import early_frame_weights, weighted_flow_matching_loss
from longvie.model.text import CaptionTextEncoder, CaptionVocabulary
from longvie.ranks import is_rank_zero
from longvie.registry import log_and_register
from longvie.training.clips import clip_records
from longvie.training.draws import shard_start, step_draws
from longvie.training.flow import noisy_and_target, sample_sigmas
from longvie.training.latents import LatentDataset, encode_clips
from longvie.training.sampling import Phase, phase_at, phases_from
from longvie.training.trainer import data_stamp, files_stamp, fit_step
from longvie.training.base.vae import STEP_NAME as VAE_STEP, train_vae

STEP_NAME = "base"


def flow_matching_step(transformer, text_states: torch.Tensor, latents: torch.Tensor,
                       generators: Sequence[torch.Generator], shift: float, conditioned: bool,
                       frame_weights: torch.Tensor | None = None) -> torch.Tensor:
    """The I2V flow-matching loss of one batch of clean latents (B, 16, F, h, w), one generator
    per sample."""
    sigmas = sample_sigmas(generators, shift)
    noisy, target, timesteps = noisy_and_target(latents, sigmas, generators)
    # Unconditioned: no mask, no condition (the text-to-image phase).
    inputs = i2v_input(noisy, condition_of(latents)) if conditioned else unconditioned_input(noisy)
    prediction = transformer(inputs, timesteps, text_states).sample
    weights = frame_weights if frame_weights is not None else torch.ones(latents.shape[2])
    return weighted_flow_matching_loss(prediction, target, weights.to(prediction))


class BaseModule(L.LightningModule):
    """DiT + caption encoder trained together on the phase's number of latent frames."""

    def __init__(self, transformer, text_encoder, phases: list[Phase], learning_rate: float,
                 early_frame_lambda: float, shift: float, caption_dropout: float,
                 seed: int) -> None:
        super().__init__()
        self.transformer, self.text_encoder = transformer, text_encoder
        self.phases, self.learning_rate = phases, learning_rate
        self.early_frame_lambda, self.shift = early_frame_lambda, shift
        self.caption_dropout, self.seed = caption_dropout, seed

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        step = self.global_step
        phase = phase_at(self.phases, step)
        frames = latent_frames(phase.frames)
        latents = batch["video"][:, :, :frames]
        count = latents.shape[0]
        samples = step_draws(self.seed, step, shard_start(self, count), count).samples
        captions = ["" if float(torch.rand(1, generator=g)) < self.caption_dropout else c
                    for c, g in zip(batch["caption"], samples, strict=True)]
        # Loong weights the first 17 of 65 frames; a quarter of the latent frames here (21 -> 5
        # on wan14b, exactly Loong's 17 pixel frames; 5 -> 1 on tiny).
        weights = (early_frame_weights(frames, self.early_frame_lambda, max(1, frames // 4))
                   if self.early_frame_lambda > 0 else None)
        loss = flow_matching_step(self.transformer, self.text_encoder.encode(captions), latents,
                                  samples, self.shift, conditioned=phase.frames > 1,
                                  frame_weights=weights)
        self.log_dict({"base/loss": loss, "base/frames": float(phase.frames)}, prog_bar=True,
                      batch_size=latents.shape[0])
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.learning_rate, weight_decay=0.01)


@torch.no_grad()
def heldout_loss(transformer, text_encoder, dataset, shift: float, seed: int = 1234) -> float:
    """Mean flow-matching loss on held-out full clips with fixed noise (comparable run to run)."""
    losses = []
    for index in range(len(dataset)):
        item = dataset[index]
        text = text_encoder.encode([item["caption"]])
        generators = step_draws(seed, 0, index, 1).samples
        losses.append(float(flow_matching_step(transformer, text, item["video"].unsqueeze(0),
                                               generators, shift, conditioned=True)))
    return sum(losses) / len(losses)


def save_base(config: LongvieConfig, transformer, text_encoder, vae_step_dir: Path) -> Path:
    """The base model folder (transformer, caption encoder, the VAE step's model), written whole
    beside its place and swapped in."""
    out_dir = Path(config.paths.models) / STEP_NAME / "model"
    staging = out_dir.with_name(".model.partial")
    shutil.rmtree(staging, ignore_errors=True)
    transformer.save_pretrained(staging / "transformer")
    text_encoder.save_pretrained(staging / "text_encoder")
    shutil.copytree(vae_step_dir / "model", staging / "vae")
    replace_directory(staging, out_dir)
    return out_dir


def train_base(config: LongvieConfig, progress: bool = True, log_mlflow: bool = True,
               callbacks: tuple = (), tags: dict[str, str] | None = None) -> dict:
    """VAE pretraining, latent cache, DiT pretraining; writes ``paths.models/base``."""

    started = time.perf_counter()
    vae_report = train_vae(config, progress, log_mlflow, tags=tags)
    vae_dir = Path(vae_report["model"])
    rank_zero = is_rank_zero()  # the other ranks of a DDP run read rank 0's files and train
    encoded = encode_clips(config, vae_dir, progress) if rank_zero else None
    settings, model = config.training, config.model
    train_records = clip_records(config, ("train",), with_controls=True)
    L.seed_everything(settings.trainer.seed, workers=True, verbose=False)
    transformer = build_transformer(model)
    vocabulary = CaptionVocabulary.build(r.caption for r in train_records)
    text_encoder = CaptionTextEncoder(vocabulary, model.transformer.text_dim, model.text.max_tokens,
                                      model.text.layers, model.text.heads)
    phases = phases_from(config.training.base.phases)
    base = settings.base
    module = BaseModule(transformer, text_encoder, phases, base.learning_rate,
                        base.early_frame_lambda, base.shift, base.caption_dropout,
                        settings.trainer.seed)
    held_out = (LatentDataset(config, clip_records(config, ("val", "benchmark"),
                                                   with_controls=True)[: base.heldout_clips])
                if rank_zero else None)
    # The same seed builds the same initial weights, so this is the loss training starts from.
    initial_loss = (heldout_loss(transformer.eval(), text_encoder.eval(), held_out, base.shift)
                    if rank_zero else None)
    transformer.train()
    text_encoder.train()
    fitted = fit_step(
        config, STEP_NAME, module, phases, lambda: LatentDataset(config, train_records),
        stamp={"base": dataclasses.asdict(base), "model": dataclasses.asdict(model),
               "video": dataclasses.asdict(config.video), "seed": settings.trainer.seed,
               "vae": files_stamp(str(vae_dir)), "data": data_stamp(config)},
        run_name="base/dit", tags={"longvie.step": "base", "longvie.part": "dit", **(tags or {})},
        log_mlflow=log_mlflow, progress=progress, callbacks=callbacks,
        sync_after_claim=True)  # the other ranks wait for the latent cache and the claim
    steps, logger = fitted.steps, fitted.logger
    if not rank_zero:  # rank 0 saves, reports and registers the one base
        return {"steps": steps, "rank_zero": False}
    transformer.eval()
    text_encoder.eval()
    out_dir = save_base(config, transformer, text_encoder, Path(config.paths.models) / VAE_STEP)
    report = {
        "steps": steps,
        "seconds": round(time.perf_counter() - started, 2),
        "vae": vae_report,
        "latents": encoded,
        "heldout": {
            "flow_matching_loss": round(heldout_loss(transformer, text_encoder, held_out,
                                                     base.shift), 5),
            "flow_matching_loss_at_init": round(initial_loss, 5),
            "clips": len(held_out),
        },
        "model": str(out_dir),
    }
    report_path = Path(config.paths.reports) / "train_base.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomically(report_path, report)
    if logger is not None:

        logger.experiment.log_metric(logger.run_id, "base/heldout/flow_matching_loss",
                                     report["heldout"]["flow_matching_loss"])
        report["mlflow"] = log_and_register(config, logger.run_id, out_dir, "base", steps,
                                            report=report_path)
        write_json_atomically(report_path, report)
    return report

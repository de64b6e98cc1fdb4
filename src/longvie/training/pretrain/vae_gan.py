"""Part 1b of ``longvie pretrain``: the VAE decoder fine-tuned with an adversarial loss.

The L1 VAE (part 1) keeps ~28 dB on held-out frames but blurs their pixel-level texture (its
reconstructions keep about a quarter of the reference's Laplacian variance, the benchmark's
sharpness). Here the encoder is frozen, so the latent space the DiT learns stays the same, and
the decoder trains on L1 + ``weight`` x a hinge GAN loss against :class:`PatchDiscriminator` on
every frame of the phase's clips. Probes on single frames (docs/pretraining.md): weight 0 kept
0.30 of the sharpness at 28.5 dB; 0.005 gave 0.83 at 26.7 dB; 0.02 0.96 at 26.6 dB.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import lightning as L
import torch

from longvie.atomic import replace_directory
from longvie.config import LongvieConfig
from longvie.config.schema import AdversarialConfig
from longvie.model.discriminator import PatchDiscriminator
from longvie.training.pretrain.corpus_clips import CorpusClips
from longvie.training.draws import shard_start
from longvie.training.latents import vae_fingerprint
from longvie.training.pretrain.vae import reconstruction_figures
from longvie.training.sampling import Phase, phase_at, phases_from
from longvie.training.trainer import TrainingClock, fit_step, modules_stamp, recorded_train_seconds
from longvie.training.base.vae import crop_frames

STEP_NAME = "pretrain_vae_gan"
CODE = ("longvie.training.pretrain.vae_gan", "longvie.model.discriminator",
        "longvie.training.pretrain.corpus_clips")


# The VAE's decoding modules: what this part trains (the encoder's stay frozen).
DECODER_PREFIXES = ("post_quant_conv.", "decoder.")


def decoder_parameters(vae) -> list[torch.nn.Parameter]:
    return [*vae.post_quant_conv.parameters(), *vae.decoder.parameters()]


class AdversarialDecoderModule(L.LightningModule):
    """One optimizer over decoder and discriminator (two rate groups), one step per batch, so
    the trainer's step is the batch index (step-indexed batches resume exactly). Each loss
    back-propagates only into its own side (``inputs=``)."""

    def __init__(self, vae, discriminator, phases: list[Phase], learning_rate: float,
                 weight: float, seed: int) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.vae, self.discriminator = vae, discriminator
        self.phases, self.learning_rate, self.weight, self.seed = (phases, learning_rate,
                                                                   weight, seed)
        vae.encoder.requires_grad_(False)
        vae.quant_conv.requires_grad_(False)

    def training_step(self, batch: dict, batch_index: int) -> None:
        step = self.global_step
        phase = phase_at(self.phases, step)
        count = batch["video"].shape[0]
        video = crop_frames(batch["video"], phase.frames, self.seed, step, 3,
                            shard_start(self, count))
        with torch.no_grad():
            latents = self.vae.encode(video).latent_dist.mode()
        decoded = self.vae.decode(latents).sample
        real = video.transpose(1, 2).flatten(0, 1)
        fake = decoded.transpose(1, 2).flatten(0, 1)
        l1 = (decoded - video).abs().mean()
        generator_loss = -self.discriminator(fake).mean()
        discriminator_loss = (torch.relu(1 - self.discriminator(real)).mean()
                              + torch.relu(1 + self.discriminator(fake.detach())).mean())
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(l1 + self.weight * generator_loss,
                             inputs=decoder_parameters(self.vae))
        self.manual_backward(discriminator_loss, inputs=list(self.discriminator.parameters()))
        optimizer.step()
        self.log_dict({"vae_gan/l1": l1, "vae_gan/generator": generator_loss,
                       "vae_gan/discriminator": discriminator_loss}, prog_bar=True,
                      batch_size=video.shape[0])

    def configure_optimizers(self):
        return torch.optim.AdamW([
            {"params": decoder_parameters(self.vae), "lr": self.learning_rate},
            {"params": self.discriminator.parameters(), "lr": 2 * self.learning_rate},
        ], betas=(0.5, 0.9), weight_decay=0.0)


def model_dir(config: LongvieConfig, step_name: str = STEP_NAME) -> Path:
    return Path(config.paths.models) / step_name / "model"


def pretrain_vae_gan(config: LongvieConfig, corpus_dir: Path, corpus_stamp: str,
                     vae_dir: Path, heldout: list[dict], progress: bool = True,
                     log_mlflow: bool = True, tags: dict[str, str] | None = None,
                     settings: AdversarialConfig | None = None, step_name: str = STEP_NAME,
                     part: str = "vae_gan") -> dict:
    """Fine-tune the decoder of the VAE at ``vae_dir`` (resuming); returns its report.

    ``settings`` default to the base's ``pretrain.vae.adversarial``; the control part passes its
    own decoder settings with a ``step_name`` and MLflow ``part`` of its own."""
    from diffusers import AutoencoderKLWan

    started = time.perf_counter()
    settings = settings or config.pretrain.vae.adversarial
    phases = phases_from(settings.phases)
    seed = config.pretrain.seed
    L.seed_everything(seed, workers=True, verbose=False)
    vae = AutoencoderKLWan.from_pretrained(vae_dir)
    module = AdversarialDecoderModule(vae, PatchDiscriminator(settings.discriminator_width),
                                      phases, settings.learning_rate, settings.weight, seed)
    video = config.video
    fitted = fit_step(
        config, step_name, module, phases,
        lambda: CorpusClips(corpus_dir, video.clip_frames, video.width, video.height),
        stamp={"adversarial": dataclasses.asdict(settings), "vae": vae_fingerprint(vae_dir),
               "video": dataclasses.asdict(config.video), "seed": seed, "corpus": corpus_stamp},
        code=modules_stamp(*CODE), run_name=f"pretrain/{part}",
        tags={"longvie.step": "pretrain", "longvie.part": part, **(tags or {})},
        log_mlflow=log_mlflow, progress=progress, callbacks=(TrainingClock(),))
    steps, logger = fitted.steps, fitted.logger
    figures = reconstruction_figures(vae, [item["video"] for item in heldout])
    out_dir = model_dir(config, step_name)
    staging = out_dir.with_name(".model.partial")
    vae.save_pretrained(staging)
    replace_directory(staging, out_dir)
    report = {"steps": steps, "train_seconds": recorded_train_seconds(config, step_name),
              "seconds": round(time.perf_counter() - started, 2), "weight": settings.weight,
              "heldout": figures, "model": str(out_dir),
              "mlflow_run_id": logger.run_id if logger is not None else None}
    if logger is not None:
        for key in ("psnr_db", "ssim", "sharpness_ratio"):
            logger.experiment.log_metric(logger.run_id, f"{step_name}/heldout/{key}",
                                         figures[key])
    return report

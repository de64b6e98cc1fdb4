"""Part 1 of ``longvie pretrain``: the tiny video VAE on the rendered corpus.

The same module and phases as the pipeline's from-scratch VAE (frames, then short clips, then
full clips: Loong's order), on the corpus instead of the curated clips, with a warm-up + cosine
learning rate, and judged on full held-out clips of the benchmark scenes (PSNR, SSIM and the
sharpness the reconstruction keeps). Writes ``paths.models/pretrain_vae/model``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

from longvie.atomic import replace_directory
from longvie.config import LongvieConfig
from longvie.model.backbone import LatentCodec, build_vae
from longvie.training.clips import to_frames
from longvie.training.pretrain.corpus_clips import CorpusClips
from longvie.training.sampling import Phase, phases_from, total_steps
from longvie.training.schedule import optimizer_config
from longvie.training.trainer import TrainingClock, fit_step, modules_stamp, recorded_train_seconds
from longvie.training.base.vae import STATISTICS_CLIPS, VaeModule, set_latent_statistics

STEP_NAME = "pretrain_vae"
# The files this part runs: a run is continued only by the same code.
CODE = ("longvie.training.pretrain.vae", "longvie.training.base.vae",
        "longvie.training.pretrain.corpus_clips", "longvie.training.schedule")


class PretrainVaeModule(VaeModule):
    """:class:`VaeModule` with the pretraining schedule."""

    def __init__(self, vae, phases: list[Phase], learning_rate: float, kl_weight: float,
                 seed: int, warmup_steps: int, final_lr_fraction: float) -> None:
        super().__init__(vae, phases, learning_rate, kl_weight, seed)
        self.warmup_steps, self.final_lr_fraction = warmup_steps, final_lr_fraction

    def configure_optimizers(self):
        return optimizer_config(self.vae.parameters(), self.learning_rate, 0.0,
                                total_steps(self.phases), self.warmup_steps,
                                self.final_lr_fraction)


def model_dir(config: LongvieConfig) -> Path:
    return Path(config.paths.models) / STEP_NAME / "model"


@torch.no_grad()
def reconstruct(vae, videos: list[torch.Tensor]) -> list[np.ndarray]:
    """Each (3, T, H, W) clip encoded (posterior mode, normalised) and decoded, as uint8 frames."""

    codec = LatentCodec(vae.eval())
    return [to_frames(codec.decode(codec.encode(video.unsqueeze(0)))) for video in videos]


def reconstruction_figures(vae, videos: list[torch.Tensor]) -> dict:
    """PSNR / SSIM / sharpness ratio of full clips through the VAE, per clip and averaged."""
    from longvie.quality import metrics

    psnr, ssim, sharp = [], [], []
    for decoded, video in zip(reconstruct(vae, videos), videos, strict=True):
        reference = to_frames(video.unsqueeze(0))
        frame_psnr, frame_ssim = metrics.frame_quality(decoded, reference)
        psnr.append(float(np.minimum(frame_psnr, 100.0).mean()))
        ssim.append(float(frame_ssim.mean()))
        sharp.append(float((metrics.sharpness(decoded)
                            / np.maximum(metrics.sharpness(reference), 1e-6)).mean()))
    return {"psnr_db": round(float(np.mean(psnr)), 3), "ssim": round(float(np.mean(ssim)), 4),
            "sharpness_ratio": round(float(np.mean(sharp)), 4), "clips": len(videos),
            "psnr_db_per_clip": [round(v, 2) for v in psnr],
            "ssim_per_clip": [round(v, 4) for v in ssim]}


def pretrain_vae(config: LongvieConfig, corpus_dir: Path, corpus_stamp: str,
                 heldout: list[dict], progress: bool = True, log_mlflow: bool = True,
                 tags: dict[str, str] | None = None) -> dict:
    """Train (resuming from the last checkpoint) and save the VAE; returns its report."""

    started = time.perf_counter()
    settings = config.pretrain.vae
    phases = phases_from(settings.phases)
    seed = config.pretrain.seed
    L.seed_everything(seed, workers=True, verbose=False)
    vae = build_vae(dataclasses.replace(config.model, pretrained=""))
    module = PretrainVaeModule(vae, phases, settings.learning_rate, settings.kl_weight, seed,
                               settings.warmup_steps, settings.final_lr_fraction)
    video = config.video

    def corpus() -> CorpusClips:
        return CorpusClips(corpus_dir, video.clip_frames, video.width, video.height)

    fitted = fit_step(
        config, STEP_NAME, module, phases, corpus,
        stamp={"pretrain_vae": dataclasses.asdict(settings),
               "model": dataclasses.asdict(config.model.vae),
               "video": dataclasses.asdict(config.video), "seed": seed, "corpus": corpus_stamp},
        code=modules_stamp(*CODE), run_name="pretrain/vae",
        tags={"longvie.step": "pretrain", "longvie.part": "vae", **(tags or {})},
        log_mlflow=log_mlflow, progress=progress, callbacks=(TrainingClock(),))
    steps, logger = fitted.steps, fitted.logger
    clips = fitted.data.dataset if fitted.data.dataset is not None else corpus()
    every = max(1, len(clips) // STATISTICS_CLIPS)
    set_latent_statistics(vae, [clips[i]["video"] for i in range(0, len(clips), every)]
                          [:STATISTICS_CLIPS])
    figures = reconstruction_figures(vae, [item["video"] for item in heldout])
    out_dir = model_dir(config)
    staging = out_dir.with_name(".model.partial")
    vae.save_pretrained(staging)
    replace_directory(staging, out_dir)
    report = {"steps": steps, "train_seconds": recorded_train_seconds(config, STEP_NAME),
              "seconds": round(time.perf_counter() - started, 2),
              "heldout": figures, "model": str(out_dir),
              "mlflow_run_id": logger.run_id if logger is not None else None}
    if logger is not None:
        client = logger.experiment
        for key in ("psnr_db", "ssim", "sharpness_ratio"):
            client.log_metric(logger.run_id, f"pretrain_vae/heldout/{key}", figures[key])
    return report

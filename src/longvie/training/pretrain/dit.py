"""Part 2 of ``longvie pretrain``: the tiny I2V DiT and its caption encoder on the corpus.

The corpus clips are encoded once by the pretrained VAE (a cache keyed by the VAE's weights),
then the DiT learns by flow matching with the base's short-to-long phases (single frames as
text-to-image, short clips, full clips; Loong's early-frame weights) and a warm-up + cosine
learning rate. It is judged on held-out clips of the benchmark scenes: the flow-matching loss,
and clips generated from their true first frame and caption (:mod:`pretrain_eval`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import Dataset

from longvie.atomic import replace_directory
from longvie.config import LongvieConfig
from longvie.model.backbone import LatentCodec, build_transformer
from longvie.model.text import CaptionTextEncoder, CaptionVocabulary
from longvie.training.base.run import BaseModule, heldout_loss
from longvie.training.pretrain.corpus_clips import CorpusClips
from longvie.training.latents import vae_fingerprint
from longvie.training.pretrain.evaluation import generation_figures
from longvie.training.sampling import Phase, phases_from, total_steps
from longvie.training.schedule import optimizer_config
from longvie.training.trainer import TrainingClock, fit_step, modules_stamp, recorded_train_seconds

STEP_NAME = "pretrain_dit"
CODE = ("longvie.training.pretrain.dit", "longvie.training.base.run", "longvie.training.flow",
        "longvie.model.losses", "longvie.model.backbone", "longvie.model.text",
        "longvie.training.schedule", "longvie.training.pretrain.corpus_clips")
LATENT_CACHE = "latents.safetensors"


class PretrainDitModule(BaseModule):
    """:class:`BaseModule` with the pretraining schedule."""

    def __init__(self, transformer, text_encoder, phases: list[Phase], learning_rate: float,
                 early_frame_lambda: float, shift: float, caption_dropout: float, seed: int,
                 warmup_steps: int, final_lr_fraction: float) -> None:
        super().__init__(transformer, text_encoder, phases, learning_rate, early_frame_lambda,
                         shift, caption_dropout, seed)
        self.warmup_steps, self.final_lr_fraction = warmup_steps, final_lr_fraction

    def configure_optimizers(self):
        return optimizer_config(self.parameters(), self.learning_rate, 0.01,
                                total_steps(self.phases), self.warmup_steps,
                                self.final_lr_fraction)


class LatentClips(Dataset):
    """Normalised clip latents (N, 16, F, h, w) with their captions."""

    def __init__(self, latents: torch.Tensor, captions: list[str]) -> None:
        self.latents, self.captions = latents, captions

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict:
        return {"index": index, "caption": self.captions[index], "video": self.latents[index]}


@torch.no_grad()
def encode_videos(codec, videos, progress: bool, batch_size: int = 8) -> torch.Tensor:
    from tqdm import tqdm

    out = []
    bar = tqdm(total=len(videos), desc="encode latents", unit="clip", disable=not progress)
    for start in range(0, len(videos), batch_size):
        batch = torch.stack([videos[i] for i in range(start, min(start + batch_size,
                                                                 len(videos)))])
        out.append(codec.encode(batch))
        bar.update(len(batch))
    bar.close()
    return torch.cat(out)


def corpus_latents(config: LongvieConfig, vae_dir: Path, corpus_stamp: str,
                   progress: bool) -> LatentClips:
    """Latents of every corpus clip, from the cache when it was made from the same corpus by the
    same VAE (decoding 500 videos alone takes minutes here)."""
    import json

    from diffusers import AutoencoderKLWan
    from safetensors import safe_open
    from safetensors.torch import save_file

    from longvie.synth.corpus import corpus_folder

    video = config.video
    stamp = f"{vae_fingerprint(vae_dir)}:{corpus_stamp}:{video.clip_frames}"
    cache = Path(config.paths.models) / STEP_NAME / LATENT_CACHE
    if cache.is_file():
        with safe_open(cache, "pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("stamp") == stamp:
                return LatentClips(handle.get_tensor("latents"),
                                   json.loads(metadata["captions"]))
    clips = CorpusClips(corpus_folder(config.paths.pretrain), video.clip_frames, video.width,
                        video.height)
    codec = LatentCodec(AutoencoderKLWan.from_pretrained(vae_dir).eval())
    latents = encode_videos(codec, [clips[i]["video"] for i in range(len(clips))], progress)
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f".{cache.name}.partial")
    save_file({"latents": latents.contiguous()}, partial,
              metadata={"stamp": stamp, "captions": json.dumps(clips.captions)})
    partial.replace(cache)
    return LatentClips(latents, clips.captions)


def pretrain_dit(config: LongvieConfig, corpus_dir: Path, corpus_stamp: str,
                 heldout: list[dict], vae_dir: Path, progress: bool = True,
                 log_mlflow: bool = True, tags: dict[str, str] | None = None) -> dict:
    """Train (resuming) the DiT + caption encoder; returns its report (with the sample frames
    under ``"_samples"``, for the picture)."""
    from diffusers import AutoencoderKLWan

    started = time.perf_counter()
    settings, model = config.pretrain.dit, dataclasses.replace(config.model, pretrained="")
    seed = config.pretrain.seed
    train = corpus_latents(config, vae_dir, corpus_stamp, progress)
    vae = AutoencoderKLWan.from_pretrained(vae_dir).eval()
    codec = LatentCodec(vae)
    with torch.no_grad():
        heldout_latents = LatentClips(
            torch.cat([codec.encode(item["video"].unsqueeze(0)) for item in heldout]),
            [item["caption"] for item in heldout])
    L.seed_everything(seed, workers=True, verbose=False)
    transformer = build_transformer(model)
    vocabulary = CaptionVocabulary.build(train.captions)
    text_encoder = CaptionTextEncoder(vocabulary, model.transformer.text_dim,
                                      model.text.max_tokens, model.text.layers, model.text.heads)
    phases = phases_from(settings.phases)
    module = PretrainDitModule(transformer, text_encoder, phases, settings.learning_rate,
                               settings.early_frame_lambda, settings.shift,
                               settings.caption_dropout, seed, settings.warmup_steps,
                               settings.final_lr_fraction)
    initial_loss = heldout_loss(transformer.eval(), text_encoder.eval(), heldout_latents,
                                settings.shift)
    transformer.train()
    text_encoder.train()
    fitted = fit_step(
        config, STEP_NAME, module, phases, lambda: train,
        stamp={"pretrain_dit": dataclasses.asdict(settings), "model": dataclasses.asdict(model),
               "video": dataclasses.asdict(config.video), "seed": seed, "corpus": corpus_stamp,
               "vae": vae_fingerprint(vae_dir)},
        code=modules_stamp(*CODE), run_name="pretrain/dit",
        tags={"longvie.step": "pretrain", "longvie.part": "dit", **(tags or {})},
        log_mlflow=log_mlflow, progress=progress, callbacks=(TrainingClock(),))
    steps, logger = fitted.steps, fitted.logger
    transformer.eval()
    text_encoder.eval()
    loss = heldout_loss(transformer, text_encoder, heldout_latents, settings.shift)
    generated, samples = generation_figures(transformer, text_encoder, vae, heldout, config)
    out_dir = Path(config.paths.models) / STEP_NAME / "model"
    staging = out_dir.with_name(".model.partial")
    transformer.save_pretrained(staging / "transformer")
    text_encoder.save_pretrained(staging / "text_encoder")
    replace_directory(staging, out_dir)
    report = {
        "steps": steps,
        "train_seconds": recorded_train_seconds(config, STEP_NAME),
        "seconds": round(time.perf_counter() - started, 2),
        "corpus_clips": len(train),
        "parameters": sum(p.numel() for p in transformer.parameters()),
        "heldout": {"flow_matching_loss": round(loss, 5),
                    "flow_matching_loss_at_init": round(initial_loss, 5),
                    "clips": len(heldout), "generated": generated},
        "model": str(out_dir),
        "mlflow_run_id": logger.run_id if logger is not None else None,
        "_samples": samples,
    }
    if logger is not None:
        client = logger.experiment
        client.log_metric(logger.run_id, "pretrain_dit/heldout/flow_matching_loss", loss)
        for key in ("sharpness_ratio", "psnr_db", "ssim"):
            client.log_metric(logger.run_id, f"pretrain_dit/heldout/generated_{key}",
                              generated[key])
    return report

"""Part 3 of ``longvie pretrain``: the base DiT and the dual controller trained together.

On a CPU the base cannot learn motion on its own (far too few steps), so the motion must come
from the controls, read from the first training step. This part starts from the pretrained base
(``pretrain.output``) with a fresh zero-initialised dual controller and trains both, the base at
a lower rate, on the corpus with its exact depth and tracks; the controls are zeroed for a share
of the samples so that the model still generates without them. The result is a folder of control
weights over the base, as LongVie's release ships a DiT override and control weights beside
Wan's::

    controller/    config.json + model.safetensors (DualController)
    transformer/   the DiT trained with it (WanTransformer3DModel)
    vae/           the base VAE with its decoder sharpened further (``pretrain.control.decoder``)
    longvie.json   {"stage": "pretrain_control", "base": "../tiny-base", "pretrain": {...}}

The training step is the controller stages' (:class:`ControllerModule`, spec
:data:`PRETRAIN_CONTROL`), so the controls enter exactly as they do in stages 1-3.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from longvie.atomic import replace_directory
from longvie.config import LongvieConfig
from longvie.model.backbone import LatentCodec
from longvie.model.folder import Generator, META, load_generator, save_controller
from longvie.model.pretrained import check_pretrained
from longvie.synth.corpus import corpus_folder
from longvie.training.clips import video_tensor
from longvie.training.pretrain.control_corpus import (
    ControlSettings,
    ControlledClip,
    corpus_video_clips,
    heldout_controlled_clips,
)
from longvie.training.pretrain.control_eval import generation_figures
from longvie.training.latents import encoder_fingerprint
from longvie.training.sampling import Phase

STEP_NAME = "pretrain_control"
LATENT_CACHE = "latents.safetensors"
TRAINING_KEYS = ("batch_size", "learning_rate", "base_learning_rate", "weight_decay",
                 "control_dropout", "caption_dropout", "shift")
MODEL_KEYS = ("condition_encoding", "sparse_control", "dtype", "transformer", "vae", "text",
              "controller")
CACHE_FORMAT = 1
DECODER_STORAGE_DTYPE = torch.float16
# The code a training step runs (the data enters by the latent cache's stamp).
CODE = ("longvie.training.stages.module", "longvie.training.flow", "longvie.training.draws",
        "longvie.model.controller", "longvie.model.losses", "longvie.model.backbone")


class ControlLatents(Dataset):
    """Clip latents with their dense and sparse control latents (N, z, F, h, w) and captions."""

    def __init__(self, tensors: dict[str, torch.Tensor], captions: list[str],
                 stamp: str = "") -> None:
        self.tensors, self.captions, self.stamp = tensors, captions, stamp

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, index: int) -> dict:
        return {"index": index, "caption": self.captions[index],
                **{key: value[index] for key, value in self.tensors.items()}}


@torch.no_grad()
def encode_clips(codec, clips: list[ControlledClip]) -> dict[str, torch.Tensor]:
    """``video``, ``dense`` and ``sparse`` latents of ``clips`` (one batch)."""

    videos = torch.stack([video_tensor(c.frames) for c in clips])
    grey = torch.stack([torch.from_numpy(c.depth) for c in clips]) * 2 - 1
    dense = grey.unsqueeze(1).expand(-1, 3, -1, -1, -1)
    sparse = torch.stack([video_tensor(c.sparse) for c in clips])
    return {"video": codec.encode(videos), "dense": codec.encode(dense),
            "sparse": codec.encode(sparse)}


def _render_video_clips(args) -> list[ControlledClip]:
    return corpus_video_clips(*args)


def corpus_control_latents(config: LongvieConfig, codec, vae_dir: Path, corpus_stamp: str,
                           progress: bool) -> ControlLatents:
    """Latents of every corpus clip and its controls, from a cache keyed by the VAE's encoder, the
    corpus and the control settings (rendering the ground truth again costs minutes)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from safetensors import safe_open
    from safetensors.torch import save_file
    from tqdm import tqdm

    settings = ControlSettings.from_config(config)
    stamp = json.dumps([CACHE_FORMAT, encoder_fingerprint(vae_dir), corpus_stamp,
                        dataclasses.asdict(settings)])
    cache = Path(config.paths.models) / STEP_NAME / LATENT_CACHE
    if cache.is_file():
        with safe_open(cache, "pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("stamp") == stamp:
                names = list(handle.keys())  # a safetensors handle, not a dict
                return ControlLatents({k: handle.get_tensor(k) for k in names},
                                      json.loads(metadata["captions"]), stamp)
    count, folder = config.pretrain.corpus.videos, str(corpus_folder(config.paths.pretrain))
    jobs = [(config.synth, config.pretrain.corpus, folder, i, settings) for i in range(count)]
    parts: dict[str, list[torch.Tensor]] = {"video": [], "dense": [], "sparse": []}
    captions: list[str] = []
    bar = tqdm(total=count, desc="corpus controls", unit="video", disable=not progress)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max(1, config.synth.workers), mp_context=context) as pool:
        for clips in pool.map(_render_video_clips, jobs, chunksize=2):
            for key, value in encode_clips(codec, clips).items():
                parts[key].append(value)
            captions += [c.caption for c in clips]
            bar.update()
    bar.close()
    tensors = {key: torch.cat(values).contiguous() for key, values in parts.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f".{cache.name}.partial-{os.getpid()}")
    save_file(tensors, partial, metadata={"stamp": stamp, "captions": json.dumps(captions)})
    partial.replace(cache)
    return ControlLatents(tensors, captions, stamp)


def heldout_latents(codec, clips: list[ControlledClip]) -> ControlLatents:
    encoded = [encode_clips(codec, clips[i:i + 8]) for i in range(0, len(clips), 8)]
    return ControlLatents({k: torch.cat([e[k] for e in encoded]) for k in encoded[0]},
                          [c.caption for c in clips])


def build_module(config: LongvieConfig, base_dir: str):
    """The training module over the base at ``base_dir`` with a fresh controller."""
    from longvie.training.stages.module import PRETRAIN_CONTROL, ControllerModule

    settings = config.pretrain.control
    parts = load_generator(base_dir, config.model, with_controller=True)
    if config.training.trainer.gradient_checkpointing:
        parts.transformer.base.enable_gradient_checkpointing()
    return ControllerModule(PRETRAIN_CONTROL, settings, parts.transformer, parts.text_encoder,
                            parts.vae, settings.shift, settings.caption_dropout,
                            config.pretrain.seed, config.model.condition_encoding)


def pretrain_control(config: LongvieConfig, corpus_stamp: str, progress: bool = True,
                     log_mlflow: bool = True, tags: dict[str, str] | None = None,
                     callbacks: tuple = (), decoder_dir: Path | None = None) -> dict:
    """Train (resuming) the DiT + controller over the base; write ``pretrain.control.output``
    (with the VAE at ``decoder_dir`` as its ``vae/``, when given) and return the part's report
    (with the picture's clips under ``"_samples"``)."""
    import lightning as L

    from longvie.training.stages.heldout import measure
    from longvie.training.trainer import (
        TrainingClock,
        fit_step,
        modules_stamp,
        recorded_train_seconds,
    )

    started = time.perf_counter()
    settings, base_dir = config.pretrain.control, config.pretrain.output
    check_pretrained(base_dir, config.model)
    L.seed_everything(config.pretrain.seed, workers=True, verbose=False)
    module = build_module(config, base_dir)
    codec = LatentCodec(module.frozen.vae)
    vae_dir = Path(base_dir) / "vae"
    train = corpus_control_latents(config, codec, vae_dir, corpus_stamp, progress)
    heldout_clips = heldout_controlled_clips(config)
    heldout = heldout_latents(codec, heldout_clips)
    before = measure(module, heldout, detailed=False)
    module.transformer.train()
    fitted = fit_step(
        config, STEP_NAME, module,
        [Phase(config.video.clip_frames, settings.steps, settings.batch_size)], lambda: train,
        stamp=training_settings(config) | {"data": train.stamp, "base": base_stamp(base_dir)},
        code=modules_stamp(*CODE), run_name="pretrain/control",
        tags={"longvie.step": "pretrain", "longvie.part": "control", **(tags or {})},
        log_mlflow=log_mlflow, progress=progress, callbacks=(TrainingClock(), *callbacks))
    steps, logger = fitted.steps, fitted.logger
    module.transformer.eval()
    after = measure(module, heldout, detailed=False)
    vae = module.frozen.vae if decoder_dir is None else shipped_vae(decoder_dir)
    parts = Generator(module.transformer, module.text_encoder, vae, STEP_NAME, base_dir)
    generated, samples = generation_figures(parts, heldout_clips, heldout, config)
    out_dir = save_control_folder(config, module.transformer,
                                  vae if decoder_dir is not None else None)
    report = {
        "steps": steps,
        "train_seconds": recorded_train_seconds(config, STEP_NAME),
        "seconds": round(time.perf_counter() - started, 2),
        "corpus_clips": len(train),
        "sparse_control": config.model.sparse_control,
        "parameters": {
            "base": sum(p.numel() for p in module.transformer.base.parameters()),
            "controller": sum(p.numel() for p in module.transformer.controller.parameters())},
        "heldout": {"loss": after, "loss_at_start": before, "clips": len(heldout),
                    "loss_ratio_controls_vs_zeroed": round(
                        after["with_controls"] / after["controls_zeroed"], 4),
                    "generated": generated},
        "model": str(out_dir),
        "mlflow_run_id": logger.run_id if logger is not None else None,
        "_samples": samples,
    }
    if logger is not None:
        client = logger.experiment
        for name, value in after.items():
            client.log_metric(logger.run_id, f"pretrain_control/heldout/loss_{name}", value)
    return report


def training_settings(config: LongvieConfig) -> dict:
    """What the checkpoints depend on: the training settings and the architecture, not where
    the folders live nor how the result is judged (a run of hours survives those edits)."""
    settings, model = config.pretrain.control, config.model
    return {
        "control": {key: getattr(settings, key) for key in TRAINING_KEYS},
        "model": {key: dataclasses.asdict(model)[key] for key in MODEL_KEYS},
        "video": dataclasses.asdict(config.video),
        "seed": config.pretrain.seed,
    }


def base_stamp(base_dir: str) -> dict:
    """What training starts from: the base DiT, the caption encoder and the VAE's encoder (a
    decoder fine-tuned later changes no latent, so it does not restart this part)."""
    from longvie.training.trainer import files_stamp

    base = Path(base_dir)
    return {"transformer": files_stamp(str(base / "transformer")),
            "text_encoder": files_stamp(str(base / "text_encoder")),
            "vae_encoder": encoder_fingerprint(base / "vae")}


def decoder_tensor(name: str) -> bool:
    """Whether ``name`` is a decoding weight (stored in half precision; the encoder's stay full,
    byte for byte the base's, so every latent and latent cache stays valid)."""
    from longvie.training.pretrain.vae_gan import DECODER_PREFIXES

    return name.startswith(DECODER_PREFIXES)


def shipped_vae(decoder_dir: Path):
    """The VAE at ``decoder_dir`` as it loads from the control folder: the decoder stored in half
    precision (the 40 MB the shipped weights may take leave no room for a second full-precision
    decoder), the encoder in full; loaded in full precision."""
    from diffusers import AutoencoderKLWan

    vae = AutoencoderKLWan.from_pretrained(decoder_dir).eval().requires_grad_(False)
    with torch.no_grad():
        for name, tensor in vae.state_dict().items():
            if decoder_tensor(name) and tensor.is_floating_point():
                tensor.copy_(tensor.to(DECODER_STORAGE_DTYPE))  # what the stored file holds
    return vae


def save_vae_with_half_decoder(vae, folder: Path) -> None:
    """``vae`` as a diffusers folder whose decoding tensors are half precision."""
    from safetensors.torch import load_file, save_file

    vae.save_pretrained(folder)
    weights = folder / "diffusion_pytorch_model.safetensors"
    tensors = load_file(weights)
    save_file({name: value.to(DECODER_STORAGE_DTYPE) if decoder_tensor(name) else value
               for name, value in tensors.items()}, weights, metadata={"format": "pt"})


def save_control_folder(config: LongvieConfig, transformer, vae=None) -> Path:
    """``pretrain.control.output``: the controller and DiT (and ``vae``, its decoder in half
    precision, when given), naming the base folder by a path relative to itself (the two folders travel together
    in the repository)."""

    out_dir = Path(config.pretrain.control.output)
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_controller(transformer.controller, staging / "controller")
    transformer.base.save_pretrained(staging / "transformer")
    if vae is not None:
        save_vae_with_half_decoder(vae, staging / "vae")
    base = os.path.relpath(Path(config.pretrain.output).resolve(), out_dir.resolve())
    (staging / META).write_text(json.dumps({"stage": STEP_NAME, "base": base}, indent=2) + "\n")
    replace_directory(staging, out_dir)
    return out_dir

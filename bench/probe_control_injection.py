"""Probe: can the tiny base follow its controls when they reach it as the first frame carried
along the tracks, concatenated to its input channels, and trained from the first step?

Two fine-tunings of the shipped base (``weights/tiny-base``), the same data, steps and draws:

- ``splat``: the controls-only video (frame 0's colours carried along the clip's tracks, far to
  near, holes from frame 0: ``longvie.controls.splat``) is encoded by the VAE and concatenated
  to the DiT's input after ``[noisy | mask | first frame]``; the patch embedding gains
  zero-initialised input columns for it, so step 0 computes exactly the base. The whole DiT
  trains; the splat is zeroed for 20 % of the samples (control dropout).
- ``none``: the same fine-tuning without the splat (what the data and the steps alone give);
- ``controller``: LongVie's recipe instead: the base frozen, the zero-initialised dual controller
  (``model.controller.num_layers`` layers) trained, the splat latents as its sparse control;
- ``joint``: the same controller, with the base trained beside it at ``--lr`` (base and
  controller pretrained together, as LongVie 2's release overrides Wan's self-attention).

Data: ``tiny``'s rendered scenes, in memory, with ground-truth tracks queried at each clip's
first frame (the pipeline's ``engine`` controls on rendered data are these): the train split to
train, the benchmark split held out. Printed and written as JSON: the held-out flow-matching loss
at fixed noise levels (with the splat, and with it zeroed), and sampled clips (Euler, no
guidance) scored on frames 1-16 against holding frame 0 and against the splat itself.

    .venv/bin/python bench/probe_control_injection.py --steps 400 --out bench/results/x.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from longvie.quality import metrics
from longvie.config import compose
from longvie.controls.splat import splat_first_frame
from longvie.training.clips import batch_to_frames
from longvie.model.backbone import LatentCodec, i2v_input
from longvie.model.controller import LongVieTransformer
from longvie.model.flow_sampler import denoise
from longvie.model.folder import load_generator
from longvie.synth.groundtruth import grid_queries, query_tracks
from longvie.synth.render import render_video
from longvie.training.clips import video_tensor
from longvie.training.flow import NUM_TIMESTEPS, shift_sigmas
from longvie.model.backbone import control_input

CLIP = 17
SIGMAS = (0.3, 0.5, 0.7, 0.9)


def clips_of(synth, split: str, videos: int, stride: int, grid: int) -> list[dict]:
    """17-frame clips of rendered videos: frames, caption, the splat of frame 0 along the
    ground-truth tracks queried at the clip's first frame."""
    items = []
    for index in range(videos):
        video = render_video(synth, split, index)
        gt, caption = video.groundtruth, video.scene.caption()
        queries = grid_queries(synth.width, synth.height, grid)
        for start in range(0, video.num_frames - CLIP + 1, stride):
            frames = video.rgb[start:start + CLIP]
            tracks = query_tracks(gt, start, queries, range(start, start + CLIP))
            splat = splat_first_frame(frames[0], queries, tracks.xy, tracks.visible,
                                      gt.depth[start:start + CLIP])
            items.append({"frames": frames, "splat": splat, "caption": caption})
    return items


@torch.no_grad()
def encode(codec: LatentCodec, videos: list[np.ndarray], batch: int = 8) -> torch.Tensor:
    out = []
    for i in range(0, len(videos), batch):
        stack = torch.stack([video_tensor(v) for v in videos[i:i + batch]])
        out.append(codec.encode(stack))
    return torch.cat(out)


def widen_patch_embedding(base, extra: int) -> None:
    """``extra`` zero-initialised input channels on the patch embedding (step 0 = the base)."""
    old = base.patch_embedding
    new = torch.nn.Conv3d(old.in_channels + extra, old.out_channels, old.kernel_size,
                          old.stride, old.padding)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    base.patch_embedding = new


def model_input(noisy, latents, splat, use_splat: bool) -> torch.Tensor:
    condition = torch.zeros_like(latents)
    condition[:, :, 0] = latents[:, :, 0]
    x = i2v_input(noisy, condition)
    return torch.cat([x, splat], dim=1) if use_splat else x


class Predictor:
    """The variant's forward pass: (noisy, clip latents, splat latents, timesteps, text)."""

    def __init__(self, variant: str, parts, splat_channels: int, base_lr: float) -> None:
        self.variant, base = variant, parts.transformer.base
        if variant in ("controller", "joint"):
            self.model = parts.transformer  # the base and a fresh zero-init controller
            self.parameters = [{"params": list(self.model.controller.parameters())}]
            if variant == "joint":
                base.requires_grad_(True)
                self.parameters.append({"params": list(base.parameters()), "lr": base_lr})
            return
        if variant == "splat":
            widen_patch_embedding(base, splat_channels)
        base.requires_grad_(True)  # loaded frozen, as the stages keep it
        self.model = LongVieTransformer(base, None, frozen_base=False)
        self.parameters = list(base.parameters())

    def __call__(self, noisy, latents, splat, timesteps, text):
        if self.variant in ("controller", "joint"):
            return self.model(model_input(noisy, latents, splat, False), timesteps, text,
                              sparse=control_input(splat))
        return self.model(model_input(noisy, latents, splat, self.variant == "splat"),
                          timesteps, text)


def run(variant: str, args, parts, data: dict, text: dict) -> dict:
    torch.manual_seed(0)
    predict = Predictor(variant, parts, data["train_splat"].shape[1], args.lr)
    predict.model.train()
    lr = args.controller_lr if variant in ("controller", "joint") else args.lr
    optimiser = torch.optim.AdamW(predict.parameters, lr=lr, weight_decay=0.0)
    latents, splats = data["train_latents"], data["train_splat"]
    generator = torch.Generator().manual_seed(1)
    losses, started = [], time.perf_counter()
    for step in range(args.steps):
        index = torch.randint(len(latents), (args.batch,), generator=generator)
        z, splat = latents[index], splats[index].clone()
        drop = torch.rand(args.batch, generator=generator) < args.control_dropout
        splat[drop] = 0.0
        sigma = shift_sigmas(torch.sigmoid(torch.randn(args.batch, generator=generator)),
                             args.shift).view(-1, 1, 1, 1, 1)
        noise = torch.randn(z.shape, generator=generator)
        noisy = (1 - sigma) * z + sigma * noise
        prediction = predict(noisy, z, splat, sigma.flatten() * NUM_TIMESTEPS,
                             text["train"][index])
        loss = (prediction - (noise - z))[:, :, 1:].pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0:
            print(f"{variant} step {step}: loss {np.mean(losses[-50:]):.4f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    predict.model.eval()
    return {"train_seconds": round(time.perf_counter() - started, 1),
            "final_train_loss": round(float(np.mean(losses[-50:])), 4),
            **evaluate(predict, args, parts, data, text)}


@torch.no_grad()
def evaluate(predict, args, parts, data: dict, text: dict) -> dict:
    latents, splats = data["held_latents"], data["held_splat"]
    generator = torch.Generator().manual_seed(2)
    noise = torch.randn(latents.shape, generator=generator)
    result = {"loss": {}, "loss_splat_zeroed": {}}
    for sigma in SIGMAS:
        noisy = (1 - sigma) * latents + sigma * noise
        t = torch.full((len(latents),), sigma * NUM_TIMESTEPS)
        for key, splat in (("loss", splats), ("loss_splat_zeroed", torch.zeros_like(splats))):
            prediction = predict(noisy, latents, splat, t, text["held"])
            result[key][str(sigma)] = round(float(
                (prediction - (noise - latents))[:, :, 1:].pow(2).mean()), 4)
    codec = LatentCodec(parts.vae)
    count = min(args.samples, len(latents))
    scores = {"ssim": [], "psnr_db": [], "sharpness_ratio": []}
    for seed in range(args.seeds):
        start = torch.randn(latents[:count].shape, generator=torch.Generator().manual_seed(seed))

        def velocity(x, timesteps):
            return predict(x, latents[:count], splats[:count], timesteps, text["held"][:count])

        clean = denoise(velocity, start, args.sample_steps, args.shift, "euler")
        clean[:, :, 0] = latents[:count, :, 0]
        frames = batch_to_frames(codec.decode(clean))
        for generated, reference in zip(frames, data["held_frames"][:count], strict=True):
            add_scores(scores, generated, reference)
    result["samples"] = summary(scores)
    return result


def add_scores(scores: dict, generated: np.ndarray, reference: np.ndarray) -> None:
    psnr, ssim = metrics.frame_quality(generated[1:], reference[1:])
    scores["psnr_db"].append(float(np.minimum(psnr, 100).mean()))
    scores["ssim"].append(float(ssim.mean()))
    scores["sharpness_ratio"].append(float((metrics.sharpness(generated[1:]) / np.maximum(
        metrics.sharpness(reference[1:]), 1e-6)).mean()))


def summary(scores: dict) -> dict:
    return {key: {"mean": round(float(np.mean(v)), 4),
                  "se": round(float(np.std(v, ddof=1) / np.sqrt(len(v))), 4), "n": len(v)}
            for key, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--controller-lr", type=float, default=5e-4)  # stage 1's
    parser.add_argument("--shift", type=float, default=3.0)
    parser.add_argument("--control-dropout", type=float, default=0.2)
    parser.add_argument("--train-videos", type=int, default=32)
    parser.add_argument("--held-videos", type=int, default=4)
    parser.add_argument("--samples", type=int, default=24)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--sample-steps", type=int, default=20)
    parser.add_argument("--variants", default="splat,none")
    parser.add_argument("--out", type=Path, default=Path("bench/results/probe_control_injection.json"))
    args = parser.parse_args()
    config = compose(["profile=tiny"])
    torch.set_num_threads(2)
    started = time.perf_counter()
    train = clips_of(config.synth, "train", args.train_videos, 16, config.synth.track_grid)
    held = clips_of(config.synth, "benchmark", args.held_videos, 64, config.synth.track_grid)
    print(f"{len(train)} train clips, {len(held)} held-out clips "
          f"({time.perf_counter() - started:.0f} s)", flush=True)
    results = {"args": {k: str(v) for k, v in vars(args).items()}}
    baselines = {"static": {k: [] for k in ("ssim", "psnr_db", "sharpness_ratio")},
                 "controls_only": {k: [] for k in ("ssim", "psnr_db", "sharpness_ratio")}}
    for item in held[:args.samples]:
        add_scores(baselines["static"], np.repeat(item["frames"][:1], CLIP, axis=0),
                   item["frames"])
        add_scores(baselines["controls_only"], item["splat"], item["frames"])
    results["baselines"] = {k: summary(v) for k, v in baselines.items()}
    print(json.dumps(results["baselines"]), flush=True)
    for variant in args.variants.split(","):
        parts = load_generator(config.model.pretrained, config.model,
                               with_controller=variant in ("controller", "joint"))
        codec = LatentCodec(parts.vae)
        data = {"train_latents": encode(codec, [i["frames"] for i in train]),
                "train_splat": encode(codec, [i["splat"] for i in train]),
                "held_latents": encode(codec, [i["frames"] for i in held]),
                "held_splat": encode(codec, [i["splat"] for i in held]),
                "held_frames": [i["frames"] for i in held]}
        with torch.no_grad():
            text = {"train": parts.text_encoder.encode([i["caption"] for i in train]),
                    "held": parts.text_encoder.encode([i["caption"] for i in held])}
        results[variant] = run(variant, args, parts, data, text)
        print(variant, json.dumps(results[variant]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"-> {args.out} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()

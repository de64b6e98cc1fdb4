"""PSNR against sharpness of a pretrained VAE's decoder fine-tuned with L1 + w x GAN loss.

Starts from a VAE folder (default: the L1 VAE of `longvie pretrain`, models/pretrain_vae/model),
freezes the encoder and fine-tunes the decoder on single corpus frames for --steps steps at batch
8, with :class:`longvie.model.discriminator.PatchDiscriminator` (hinge loss) weighted by each
--weights value (0 = L1 alone, the control). Scores 32 held-out frames of the four benchmark scenes
(every 60th frame, mp4 round trip) before and after: PSNR, SSIM, sharpness ratio.

    python bench/vae_sharpness_tradeoff.py --weights 0 0.005 0.02 0.1 --steps 600
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from longvie.quality import metrics
from longvie.config import compose
from longvie.model.discriminator import PatchDiscriminator
from longvie.synth.render import render_video
from longvie.training.clips import video_tensor
from longvie.video.io import read_video, write_video


def held_out_frames(config) -> np.ndarray:
    frames = []
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(4):
            video = render_video(config.synth, "benchmark", index)
            path = Path(scratch) / f"{index}.mp4"
            write_video(path, video.rgb[::60], config.synth.fps, config.synth.crf)
            frames.append(read_video(path)[0])
    return np.concatenate(frames)


@torch.no_grad()
def score(vae, frames: np.ndarray) -> dict:
    vae.eval()
    out = []
    for frame in frames:
        x = video_tensor(frame[None]).unsqueeze(0)
        decoded = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
        out.append(((decoded[0, :, 0] + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())
    out = np.stack(out)
    psnr, ssim = metrics.frame_quality(out, frames)
    ratio = (metrics.sharpness(out) / np.maximum(metrics.sharpness(frames), 1e-6)).mean()
    vae.train()
    return {"psnr_db": round(float(np.minimum(psnr, 100).mean()), 2),
            "ssim": round(float(ssim.mean()), 3), "sharpness_ratio": round(float(ratio), 3)}


def fine_tune(vae_dir: str, corpus: np.ndarray, held: np.ndarray, weight: float, steps: int,
              learning_rate: float) -> dict:
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    vae = AutoencoderKLWan.from_pretrained(vae_dir)
    vae.encoder.requires_grad_(False)
    vae.quant_conv.requires_grad_(False)
    discriminator = PatchDiscriminator()
    decoder = [p for p in vae.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": decoder, "lr": learning_rate},
                                   {"params": discriminator.parameters(),
                                    "lr": 2 * learning_rate}], betas=(0.5, 0.9))
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    for _ in range(steps):
        x = video_tensor(corpus[rng.integers(0, len(corpus), 8)]).permute(1, 0, 2, 3)
        with torch.no_grad():
            latents = vae.encode(x.unsqueeze(2)).latent_dist.mode()
        fake = vae.decode(latents).sample[:, :, 0]
        loss = (fake - x).abs().mean() - weight * discriminator(fake).mean()
        optimizer.zero_grad()
        loss.backward(inputs=decoder)
        if weight > 0:
            critic = (torch.relu(1 - discriminator(x)).mean()
                      + torch.relu(1 + discriminator(fake.detach())).mean())
            critic.backward(inputs=list(discriminator.parameters()))
        optimizer.step()
    return {**score(vae, held), "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vae", default="models/pretrain_vae/model")
    parser.add_argument("--corpus", default="data/pretrain/synth")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.005, 0.02, 0.1])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--out", default="bench/results/vae_sharpness_tradeoff.json")
    args = parser.parse_args()
    from diffusers import AutoencoderKLWan

    config = compose([])
    held = held_out_frames(config)
    corpus = np.concatenate([read_video(p)[0][::4]
                             for p in sorted(Path(args.corpus).glob("*.mp4"))[:300]])
    results = {"start": score(AutoencoderKLWan.from_pretrained(args.vae), held),
               "steps": args.steps, "by_weight": {}}
    print("start", results["start"], flush=True)
    for weight in args.weights:
        results["by_weight"][str(weight)] = fine_tune(args.vae, corpus, held, weight,
                                                      args.steps, args.learning_rate)
        print(f"weight {weight}", results["by_weight"][str(weight)], flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

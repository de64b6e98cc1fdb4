"""Probe: how much of the generated clips' missing sharpness is the decoder's?

The DiT samples latents and the VAE's decoder turns them into pixels, so no sample keeps more of
the reference's detail than the decoder can draw. The decoder can be fine-tuned alone (encoder
frozen: every latent stays what it was, and the DiT and controller trained on them stay valid).
This script samples the held-out clips once with the control weights (the benchmark's sampler,
guidance 1 and the benchmark's, each seed), then decodes the same latents with the shipped
decoder and with decoders fine-tuned further by ``longvie pretrain``'s adversarial part
(``pretrain_vae_gan``, from the shipped VAE) at each ``--variants`` weight:steps, and scores the
reconstructions and the samples of each.

    .venv/bin/python bench/decoder_sharpness.py --variants 0.005:400,0.02:400 \
        --out bench/results/decoder_sharpness.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from longvie.config import compose
from longvie.training.clips import batch_to_frames
from longvie.model.sampler import ClipInputs, sample_clip
from longvie.model.backbone import LatentCodec
from longvie.model.folder import load_generator
from longvie.synth.corpus import corpus_fingerprint, corpus_folder
from longvie.training.clips import video_tensor
from longvie.training.pretrain.control_corpus import heldout_controlled_clips
from longvie.training.pretrain.control_eval import benchmark_sampler, clip_scores, guidances, summary
from longvie.training.pretrain.control import heldout_latents

SEEDS = (0, 1, 2)


@torch.no_grad()
def sample_latents(parts, clips, latents, config, seed: int, guidance: float) -> torch.Tensor:
    """The clean latents the control model samples for every clip (as ``control_eval`` does)."""
    sampler = benchmark_sampler(config)
    codec = LatentCodec(parts.vae)
    first = torch.stack([video_tensor(c.frames[:1])[:, 0] for c in clips])
    condition = codec.condition(first, config.video.clip_frames, config.model.condition_encoding)
    inputs = ClipInputs(condition, parts.text_encoder.encode([c.caption for c in clips]),
                        parts.text_encoder.encode([""]), latents.tensors["dense"],
                        latents.tensors["sparse"])
    shape = latents.tensors["video"].shape[1:]
    noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(
        seed * 100_003 + index)) for index in range(len(clips))])
    return sample_clip(parts.transformer.eval(), inputs, noise, sampler["steps"],
                       sampler["shift"], guidance, sampler["solver"])


@torch.no_grad()
def decoded_scores(vae, latents: torch.Tensor, clips) -> dict:
    codec = LatentCodec(vae.eval())
    frames = [f for i in range(0, len(latents), 8)
              for f in batch_to_frames(codec.decode(latents[i:i + 8]))]
    return summary([clip_scores(f, c) for f, c in zip(frames, clips, strict=True)])


def fine_tuned_decoder(config, weight: float, steps: int, root: Path) -> tuple[Path, dict]:
    """``pretrain_vae_gan`` from the shipped VAE, in a models folder of its own."""
    from longvie.training.pretrain.corpus_clips import heldout_clips
    from longvie.training.pretrain.vae_gan import pretrain_vae_gan

    variant = compose([f"paths.models={root / f'w{weight:g}_s{steps}'}",
                       f"pretrain.vae.adversarial.weight={weight}",
                       f"pretrain.vae.adversarial.phases=[{{frames: 17, steps: {steps}, "
                       "batch_size: 2}]"])
    report = pretrain_vae_gan(variant, corpus_folder(variant.paths.pretrain),
                              corpus_fingerprint(variant.synth, variant.pretrain.corpus),
                              Path(variant.pretrain.output) / "vae", heldout_clips(variant),
                              progress=True, log_mlflow=False)
    return Path(report["model"]), report


def main() -> None:
    from diffusers import AutoencoderKLWan

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="weights/tiny-longvie")
    parser.add_argument("--variants", default="0.005:400,0.02:400")
    parser.add_argument("--root", type=Path, default=Path("models/decoder_probe"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/decoder_sharpness.json"))
    args = parser.parse_args()
    config = compose([])
    started = time.perf_counter()
    parts = load_generator(args.model, config.model)
    clips = heldout_controlled_clips(config)
    latents = heldout_latents(LatentCodec(parts.vae), clips)
    sampled = {guidance: torch.cat([sample_latents(parts, clips, latents, config, seed,
                                                   guidance) for seed in SEEDS])
               for guidance in guidances(config.generation)}
    repeated = clips * len(SEEDS)
    decoders = {"shipped": (None, parts.vae)}
    trained = {}
    for variant in filter(None, args.variants.split(",")):
        weight, steps = float(variant.split(":")[0]), int(variant.split(":")[1])
        folder, report = fine_tuned_decoder(config, weight, steps, args.root)
        decoders[variant] = (folder, AutoencoderKLWan.from_pretrained(folder))
        trained[variant] = {k: report[k] for k in ("steps", "train_seconds", "weight")}
    result = {"model": args.model, "clips": len(clips), "seeds": list(SEEDS),
              "sampler": benchmark_sampler(config), "decoders": {}}
    for name, (folder, vae) in decoders.items():
        row = {"round_trip": decoded_scores(vae, latents.tensors["video"], clips),
               **{f"guidance_{g:g}": decoded_scores(vae, z, repeated)
                  for g, z in sampled.items()}}
        row |= {"folder": str(folder) if folder else None, **trained.get(name, {})}
        result["decoders"][name] = row
        print(f"{name:>10}: round trip sharpness {row['round_trip']['sharpness_ratio']:.3f} "
              f"PSNR {row['round_trip']['psnr_db']:.2f} | " + " | ".join(
                  f"g{g:g} sharpness {row[f'guidance_{g:g}']['sharpness_ratio']:.3f} SSIM "
                  f"{row[f'guidance_{g:g}']['ssim']:.3f}" for g in sampled))
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()

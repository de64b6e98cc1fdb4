"""Where the controls lower the held-out loss: the flow-matching loss with the controls against
with them zeroed, at each noise level.

``longvie pretrain`` reports one ratio averaged over the training draw of noise levels (logit-
normal, shifted towards noise). This splits it by level s on the same held-out clips and fixed
noise, so one can see whether the controls fail to help where they could (high s: the clip is
unknown without them) or whether a floor at low s (the noise itself is what is left to predict,
and no control knows it) holds the average up. It also prints the share of the training draw's
mass in each bin, so the per-level ratios recombine into the reported average.

    .venv/bin/python bench/loss_by_noise.py --model weights/tiny-longvie \
        --out bench/results/loss_by_noise.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

from longvie.config import compose
from longvie.model.backbone import LatentCodec, i2v_input
from longvie.model.folder import load_generator
from longvie.model.losses import weighted_flow_matching_loss
from longvie.training.clips import video_tensor
from longvie.training.pretrain.control_corpus import heldout_controlled_clips
from longvie.training.flow import NUM_TIMESTEPS, shift_sigmas
from longvie.training.pretrain.control import heldout_latents
from longvie.model.backbone import control_input

LEVELS = (0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95)
DRAWS = 4


@torch.no_grad()
def losses_at(transformer, inputs: dict, level: float, zeroed: bool) -> torch.Tensor:
    """(clips,) mean loss over DRAWS fixed noise draws at noise level ``level``."""
    latents = inputs["video"]
    dense, sparse = inputs["dense"], inputs["sparse"]
    if zeroed:
        dense, sparse = torch.zeros_like(dense), torch.zeros_like(sparse)
    total = torch.zeros(len(latents))
    for draw in range(DRAWS):
        noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(7 + draw))
        noisy = (1 - level) * latents + level * noise
        steps = torch.full((len(latents),), level * NUM_TIMESTEPS)
        prediction = transformer(i2v_input(noisy, inputs["condition"]), steps, inputs["text"],
                                 dense=control_input(dense), sparse=control_input(sparse))
        frames = torch.ones(latents.shape[2])
        total += torch.stack([weighted_flow_matching_loss(prediction[i:i + 1],
                                                          (noise - latents)[i:i + 1], frames)
                              for i in range(len(latents))])
    return total / DRAWS


def draw_mass(shift: float, samples: int = 200_000) -> list[float]:
    """Share of the training draw of noise levels (``flow.sample_sigmas``' law) in each bin
    around LEVELS."""
    draws = torch.randn(samples, generator=torch.Generator().manual_seed(0))
    sigmas = shift_sigmas(torch.sigmoid(draws), shift)
    edges = torch.tensor([0.0, *[(a + b) / 2 for a, b in itertools.pairwise(LEVELS)], 1.0])
    counts = torch.histogram(sigmas, edges).hist
    return (counts / counts.sum()).tolist()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="weights/tiny-longvie")
    parser.add_argument("--out", type=Path, default=Path("bench/results/loss_by_noise.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    config = compose([])
    parts = load_generator(args.model, config.model)
    transformer = parts.transformer.eval()
    codec = LatentCodec(parts.vae)
    clips = heldout_controlled_clips(config)
    encoded = heldout_latents(codec, clips).tensors
    first = torch.stack([video_tensor(c.frames[:1])[:, 0] for c in clips])
    inputs = {**encoded, "text": parts.text_encoder.encode([c.caption for c in clips]),
              "condition": codec.condition(first, config.video.clip_frames,
                                           config.model.condition_encoding)}
    mass = draw_mass(config.pretrain.control.shift)
    rows = []
    for level, share in zip(LEVELS, mass, strict=True):
        with_controls = losses_at(transformer, inputs, level, zeroed=False)
        zeroed = losses_at(transformer, inputs, level, zeroed=True)
        ratio = with_controls / zeroed
        rows.append({"noise_level": level, "training_draw_share": round(share, 4),
                     "with_controls": round(float(with_controls.mean()), 5),
                     "controls_zeroed": round(float(zeroed.mean()), 5),
                     "ratio": round(float(with_controls.mean() / zeroed.mean()), 4),
                     "ratio_se_over_clips": round(float(ratio.std() / len(ratio) ** 0.5), 4)})
        print(f"s={level:.2f} share {share:.3f}: with {rows[-1]['with_controls']:.4f} zeroed "
              f"{rows[-1]['controls_zeroed']:.4f} ratio {rows[-1]['ratio']:.3f}", flush=True)
    weighted = {key: sum(r[key] * r["training_draw_share"] for r in rows)
                for key in ("with_controls", "controls_zeroed")}
    result = {"model": args.model, "clips": len(clips), "draws": DRAWS,
              "shift": config.pretrain.control.shift, "levels": rows,
              "training_draw_average": {**weighted, "ratio": round(
                  weighted["with_controls"] / weighted["controls_zeroed"], 4)},
              "seconds": round(time.perf_counter() - started, 1)}
    print(f"over the training draw: ratio {result['training_draw_average']['ratio']:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

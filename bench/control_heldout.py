"""Held-out figures of control weights on the pipeline's own benchmark data.

``longvie pretrain`` judges its control part on benchmark scenes it renders in memory, with
controls made by the same functions the engine extractor uses. This script takes the clips,
first frames and controls that ``longvie curate`` and ``longvie controls`` wrote instead
(``data/curated``, ``data/controls``: run ``make run`` or those steps first), so the figures hold
for what the stages and the benchmark actually read. Same evaluation (``control_eval``): every
clip generated from its true first frame, caption and controls with the benchmark's sampler at
guidance 1 and at the benchmark's guidance, each sampler seed, against holding frame 0
(``static``), the controls alone and the VAE round trip; means and standard errors over clips.

    .venv/bin/python bench/control_heldout.py --model weights/tiny-longvie \
        --out bench/results/control_heldout.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from longvie.config import compose
from longvie.controls.normalise import from_uint16
from longvie.generation.sources import stored_video
from longvie.model.backbone import LatentCodec
from longvie.model.folder import load_generator
from longvie.training.pretrain.control_corpus import ControlledClip, sparse_video
from longvie.training.pretrain.control_eval import generation_figures
from longvie.training.pretrain.control import heldout_latents
from longvie.video.io import read_video


def benchmark_sources(config) -> list[str]:
    import pandas as pd

    clips = pd.read_parquet(Path(config.paths.curated) / "clips.parquet")
    return sorted(clips[clips["split"] == "benchmark"]["source_id"].unique())


def stored_clips(config, per_video: int) -> list[ControlledClip]:
    """``per_video`` curated clips of each benchmark source, spread evenly, with the controls
    the pipeline extracted for them (the sparse one in the model's colouring)."""
    out = []
    for source in benchmark_sources(config):
        video = stored_video(config, source)
        picks = sorted({int(i) for i in np.linspace(0, len(video.clips) - 1, per_video).round()})
        for index in picks:
            clip = video.clips[index]
            frames, _ = read_video(clip.video)
            with np.load(clip.controls) as data:
                depth = from_uint16(data["depth"])
                query, xy, visible = data["query_xy"], data["tracks_xy"], data["tracks_visible"]
                sparse = (data["point_map"] if config.model.sparse_control == "point_map"
                          else sparse_video("first_frame", frames[0], query, xy, visible, depth))
            out.append(ControlledClip(clip.clip_id, clip.caption, frames, depth, sparse, query,
                                      xy, visible))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="weights/tiny-longvie")
    parser.add_argument("--clips-per-video", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("bench/results/control_heldout.json"))
    parser.add_argument("overrides", nargs="*", help="config overrides (key=value)")
    args = parser.parse_args()
    config = compose(args.overrides)
    started = time.perf_counter()
    parts = load_generator(args.model, config.model)
    clips = stored_clips(config, args.clips_per_video)
    latents = heldout_latents(LatentCodec(parts.vae), clips)
    figures, _ = generation_figures(parts, clips, latents, config)
    result = {"model": args.model, "clips": [c.clip_id for c in clips],
              "sparse_control": config.model.sparse_control, "figures": figures,
              "seconds": round(time.perf_counter() - started, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, values in figures.items():
        if isinstance(values, dict) and "ssim" in values:
            print(f"{name:>20}: SSIM {values['ssim']:.3f} ± {values['ssim_se']:.3f}, PSNR "
                  f"{values['psnr_db']:.2f} dB, sharpness {values['sharpness_ratio']:.2f}, "
                  f"EPE {values['track_epe_px'] or float('nan'):.2f} px")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()

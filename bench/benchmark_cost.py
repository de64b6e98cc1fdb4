"""What one generated benchmark clip costs, and what batching buys.

The benchmark regenerates every held-out video with each generating contender and each sampler
seed, clip after clip (4 videos x 30 clips x 3 seeds x 2 contenders = 720 clips on ``tiny``).
This script generates the first ``--clips`` clips of the first benchmark video's controls with
a model of the configured size (``--model``, else fresh weights: the cost does not depend on
them) three ways, measured in this one run:

- ``one seed, two passes``: each seed alone, the guided and unguided predictions as two forward
  passes (how the benchmark sampled before batching);
- ``one seed, one pass``: each seed alone, both predictions as one batch of two;
- ``seeds batched``: all seeds as one batch (``generate_long_videos``), as the benchmark does now.

It prints seconds per generated clip for each, their ratios, and the benchmark's generation time
they imply; figures go to ``bench/results/benchmark_cost_<solver><steps>.json``.

    .venv/bin/python bench/benchmark_cost.py [--clips=6] [--seeds=3] [--solver=euler:20]
        [--model=PATH] [hydra overrides ...]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from script_options import take_option

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"  # benchmark_cost_<solver><steps>.json


class TwoPasses:
    """A transformer wrapper that runs a batch of guided + unguided inputs as two forward passes
    (the cost of the sampler before it batched them)."""

    def __init__(self, transformer) -> None:
        self.transformer = transformer

    def eval(self):
        self.transformer.eval()
        return self

    def __call__(self, x, timesteps, text, **controls):
        import torch

        halves = [{k: None if v is None else v.chunk(2)[i] for k, v in controls.items()}
                  for i in (0, 1)]
        return torch.cat([self.transformer(x.chunk(2)[i], timesteps.chunk(2)[i],
                                           text.chunk(2)[i], **halves[i]) for i in (0, 1)])


def main(args: list[str]) -> int:
    import dataclasses

    import numpy as np
    import torch

    from longvie.benchmark.run import benchmark_sources
    from longvie.config import compose
    from longvie.generation.long_video import (
        GenerationSettings,
        generate_long_video,
        generate_long_videos,
    )
    from longvie.generation.plan import plan_clips
    from longvie.generation.sources import stored_video
    from longvie.model.folder import Generator, load_generator

    clips_text, args = take_option(args, "clips", "6")
    seeds_text, args = take_option(args, "seeds", "3")
    solver_text, args = take_option(args, "solver", "euler:20")
    model_text, overrides = take_option(args, "model", "")
    config = compose(overrides)
    solver, steps = solver_text.split(":")
    settings = dataclasses.replace(GenerationSettings.from_config(config.generation),
                                   solver=solver, steps=int(steps))
    if model_text:
        parts = load_generator(model_text, config.model, with_controller=True)
    else:
        from longvie.model.backbone import build_transformer, build_vae
        from longvie.model.controller import DualController, LongVieTransformer
        from longvie.model.text import CaptionTextEncoder, CaptionVocabulary

        torch.manual_seed(0)
        base = build_transformer(config.model)
        text = config.model.text
        parts = Generator(
            LongVieTransformer(base, DualController(base, config.model.controller.num_layers)),
            CaptionTextEncoder(CaptionVocabulary.build(["a red box"]),
                               config.model.transformer.text_dim, text.max_tokens, text.layers,
                               text.heads),
            build_vae(config.model), "fresh", "random")
    video = stored_video(config, benchmark_sources(config)[0])
    clip = config.video.clip_frames
    frames = plan_clips(video.num_frames, clip)[int(clips_text) - 1].stop
    seeds = [config.generation.seed + k for k in range(int(seeds_text))]
    first = video.first_frame()
    clips = len(plan_clips(frames, clip))

    def one_at_a_time(model_parts) -> float:
        started = time.perf_counter()
        for seed in seeds:
            generate_long_video(model_parts, first, video, "a scene", frames, clip,
                                dataclasses.replace(settings, seed=seed), lambda _: None,
                                config.model.condition_encoding, progress=False)
        return (time.perf_counter() - started) / (clips * len(seeds))

    def batched() -> float:
        started = time.perf_counter()
        generate_long_videos(parts, first, video, "a scene", frames, clip, settings, seeds,
                             lambda *_: None, config.model.condition_encoding, progress=False)
        return (time.perf_counter() - started) / (clips * len(seeds))

    with torch.no_grad():
        two_passes = dataclasses.replace(parts, transformer=TwoPasses(parts.transformer))
        rows = {"one seed, two passes": one_at_a_time(two_passes),
                "one seed, one pass": one_at_a_time(parts),
                "seeds batched": batched()}
    base = rows["one seed, two passes"]
    benchmark_clips = (len(benchmark_sources(config))
                       * len(plan_clips(video.num_frames, clip)) * config.benchmark.seeds * 2)
    result = {"solver": solver, "steps": int(steps), "guidance": settings.guidance,
              "clips": clips, "seeds": seeds, "model": model_text or "fresh weights",
              "seconds_per_clip": {k: round(v, 3) for k, v in rows.items()},
              "speedup_over_two_passes": {k: round(base / v, 2) for k, v in rows.items()},
              "benchmark_clips": benchmark_clips,
              "benchmark_generation_minutes": {k: round(v * benchmark_clips / 60, 1)
                                               for k, v in rows.items()}}
    for name, seconds in rows.items():
        print(f"{name}: {seconds:.3f} s per clip ({base / seconds:.2f}x), the benchmark's "
              f"{benchmark_clips} clips in {seconds * benchmark_clips / 60:.1f} min")
    out = RESULTS / f"benchmark_cost_{solver}{steps}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Stage 3 fine-tuned on the model's own rollouts instead of the synthetic T(I) alone.

On the benchmark every clip after the first starts from the model's own last frame, which after
a few clips has lost object shapes and colours far beyond what T(I) (VAE round trips, a partial
regeneration, a colour drift) draws. This script makes the degradation the real one:

1. the starting model generates every training video clip by clip as the benchmark does
   (history, the profile's start noise, seed 0); each clip's conditioning frame and history
   latents are kept (``generate_long_videos``'s ``on_clip``);
2. the stage-3 step trains on, with probability ``--rollout_p`` per sample, that rollout's frame
   as the condition (and the sparse control splatted from it) and its latents as the history,
   the target being the real clip as always.

The trained folder is written to ``--out``; compare it with ``bench/compare_models.py``.

    .venv/bin/python bench/rollout_training.py [--model=models/stage3/model] [--steps=400]
        [--rollout_p=0.7] [--lr=1e-4] [--videos=0 (all training videos)]
        [--out=/tmp/rollout/model] [hydra overrides]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from script_options import take_option

ROOT = Path(__file__).resolve().parents[1]


def rollouts(config, folder: Path, videos: int = 0) -> dict:
    """clip id -> {"frame": (H, W, 3) uint8, "history": (z, 2, h, w)} of the model's rollout
    through the training video the clip belongs to (clips that open a video have none)."""
    import pandas as pd

    from longvie.benchmark.run import Contender, contender_sampler, load_model
    from longvie.generation.long_video import generate_long_videos
    from longvie.generation.sources import stored_video

    clips = pd.read_parquet(Path(config.paths.curated) / "clips.parquet")
    sources = sorted(clips[clips.split == "train"].source_id.unique())[: videos or None]
    parts = load_model(config.model, folder)
    settings = contender_sampler(config, Contender("candidate", None, None))
    bank = {}
    for source in sources:
        video = stored_video(config, source)

        def keep(span, latents, frames, video=video):
            if span.index + 1 < len(video.clips):
                bank[video.clips[span.index + 1].clip_id] = {
                    "frame": frames[0].copy(), "history": latents[0, :, -2:].clone()}

        generate_long_videos(parts, video.first_frame(), video,
                             [c.caption for c in video.clips], video.num_frames,
                             config.video.clip_frames, settings, [0], lambda *_: None,
                             config.model.condition_encoding, progress=False, on_clip=keep)
    return bank


def with_rollouts(module, bank: dict, probability: float):
    """``module.flow_batch`` wrapped: a sample with a rollout takes its frame, sparse control and
    history with ``probability`` (drawn from a generator seeded by the step)."""
    import torch

    original = module.flow_batch

    def flow_batch(batch, step, draws):
        flow = original(batch, step, draws)
        draw = torch.Generator().manual_seed(10_000 + step)
        condition, sparse = flow.condition.clone(), flow.sparse.clone()
        history = None if flow.history is None else flow.history.clone()
        for index, clip_id in enumerate(batch["clip_id"]):
            if clip_id not in bank or float(torch.rand(1, generator=draw)) >= probability:
                continue
            frame = torch.from_numpy(bank[clip_id]["frame"]).permute(2, 0, 1).float()[None]
            frame = frame / 127.5 - 1
            row = slice(index, index + 1)
            condition[row] = module.encode_condition(frame, condition[row])
            sparse[row] = module.splat_sparse(frame, batch, index).to(sparse)
            if history is not None:
                history[index] = bank[clip_id]["history"][:, -history.shape[2]:]
        flow.condition, flow.sparse, flow.history = condition, sparse, history
        return flow

    module.flow_batch = flow_batch


def main(args: list[str]) -> int:
    import torch
    from torch.utils.data import DataLoader

    from longvie.config import compose
    from longvie.model.folder import save_stage_model
    from longvie.training.stages.data import StageDataset
    from longvie.training.stages.run import stage_module, stage_records
    from longvie.training.stages.module import STAGES

    model, args = take_option(args, "model", "models/stage3/model")
    steps, args = take_option(args, "steps", "400")
    probability, args = take_option(args, "rollout_p", "0.7")
    rate, args = take_option(args, "lr", "1e-4")
    videos, args = take_option(args, "videos", "0")
    out, overrides = take_option(args, "out", "/tmp/rollout/model")
    config = compose(overrides)
    folder = (ROOT / model).resolve()
    started = time.perf_counter()
    bank = rollouts(config, folder, int(videos))
    print(f"rollouts: {len(bank)} clips in {time.perf_counter() - started:.0f} s", flush=True)

    spec = STAGES["3"]
    module = stage_module(config, spec, str(folder))
    module.settings.learning_rate = module.settings.base_attention_learning_rate = float(rate)
    with_rollouts(module, bank, float(probability))
    records = stage_records(config, spec, ("train",))
    dataset = StageDataset(config, records, spec.inputs(config.model.condition_encoding,
                                                        config.model.sparse_control))
    loader = DataLoader(dataset, batch_size=module.settings.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0), drop_last=True)
    optimizer = module.configure_optimizers()
    module.transformer.train()
    batches, losses, started = iter(loader), [], time.perf_counter()
    for step in range(int(steps)):
        batch = next(batches, None)
        if batch is None:
            batches = iter(loader)
            batch = next(batches)
        terms, _ = module.step_terms(batch, step)
        optimizer.zero_grad()
        terms["total"].backward()
        optimizer.step()
        losses.append(float(terms["total"].detach()))
        if (step + 1) % 50 == 0:
            print(f"step {step + 1}: loss {np.mean(losses[-50:]):.4f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    module.transformer.eval()
    saved = save_stage_model(Path(out), "stage3", module.transformer, str(folder),
                             base_changed=True)
    print(f"-> {saved}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Where do the stage-1 controls help? Held-out loss per noise level, with, zeroed and without.

Trains a fresh stage-1 controller on the base with a plain PyTorch loop (AdamW, the stage's
flow-matching step with its caption dropout; no dense degradation, which starts late in the real
stage) and measures, before training and every ``--eval-every`` steps, the held-out
flow-matching loss of the clip's later latent frames (frame 0 is given) at fixed noise levels,
for three inputs: the real controls, the controls zeroed, and no controller input. The same
noise draws serve every variant and every evaluation.

``--oracle=1`` feeds the clip's own video latents as the dense control (to training and
evaluation): an upper bound on what the controller path can carry in the same number of steps.
Two departures from LongVie 2's dual-controller design, as experiments: ``--sees-latent=1`` adds
the (half-width) patchified noisy input to each branch's control tokens, as ControlNet's copy
sees its input; ``--train-base=1`` trains the base with the controller. ``--equalise-depth=1``
re-encodes the dense control from each clip's depth video rank-equalised over the clip (more
contrast for the objects; clip-wise, so only a probe of what the depth could tell). ``--raw-
point-map=1`` gives the sparse branch the point map itself instead of its VAE latents: pixel
frames 0, 4, …, 16 pooled 4×4 onto the 16×16 latent grid, in latent channels 0–2 (the rest
zero).

    .venv/bin/python bench/controls_per_sigma.py [--steps=300] [--lr=5e-4] [--batch=8]
        [--layers=2] [--eval-every=150] [--oracle=0] [--sees-latent=0] [--train-base=0]
        [--equalise-depth=0] [--raw-point-map=0]
        [--caption-dropout=<the base's>]
        [--out=JSON] [hydra overrides ...]

Needs a project root with curated clips, controls and cached latents (`longvie train
stage=base` has run there). All figures come from this one run.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from script_options import take_option

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "controls_per_sigma.json"
SIGMAS = (0.1, 0.3, 0.5, 0.7, 0.9, 0.97)
CHUNK = 16


def main(args: list[str]) -> int:
    import torch
    from torch.utils.data import default_collate

    from longvie.config import compose
    from longvie.model.backbone import i2v_input
    from longvie.model.folder import load_generator
    from longvie.model.backbone import condition_of
    from longvie.training.draws import step_draws
    from longvie.training.flow import noisy_and_target
    from longvie.training.stages.data import StageDataset
    from longvie.training.stages.run import stage_records, start_source
    from longvie.training.stages.module import STAGES, ControllerModule, control_input, flow_matching_terms

    steps, args = take_option(args, "steps", "300")
    lr, args = take_option(args, "lr", "5e-4")
    batch, args = take_option(args, "batch", "8")
    layers, args = take_option(args, "layers", "2")
    every, args = take_option(args, "eval-every", "150")
    oracle, args = take_option(args, "oracle", "0")
    dropout, args = take_option(args, "caption-dropout", "")
    sees_latent, args = take_option(args, "sees-latent", "0")
    train_base, args = take_option(args, "train-base", "0")
    equalise, args = take_option(args, "equalise-depth", "0")
    raw_point_map, args = take_option(args, "raw-point-map", "0")
    out, args = take_option(args, "out", str(RESULTS))
    steps, batch, every, oracle = int(steps), int(batch), int(every), oracle == "1"

    torch.manual_seed(0)
    config = compose([*args, f"model.controller.num_layers={layers}"])
    spec, base = STAGES["1"], config.training.base
    parts = load_generator(start_source(config, spec), config.model, with_controller=True)
    module = ControllerModule(spec, config.training.stage1, parts.transformer,
                              parts.text_encoder, parts.vae, base.shift,
                              float(dropout) if dropout else base.caption_dropout,
                              config.training.trainer.seed, config.model.condition_encoding)
    inputs = spec.inputs(config.model.condition_encoding)
    held_out = StageDataset(config, stage_records(config, spec, ("val", "benchmark"))
                            [: config.training.stage1.heldout_clips],
                            dataclasses.replace(inputs, first_frame=True))
    train = StageDataset(config, stage_records(config, spec, ("train",)), inputs)
    transformer = module.transformer
    trained = list(transformer.controller.parameters())
    if train_base == "1":
        transformer.base.requires_grad_(True)
        trained += list(transformer.base.parameters())
    if sees_latent == "1":
        branches_see_the_latent(type(transformer))
    optimizer = torch.optim.AdamW(trained, lr=float(lr),
                                  weight_decay=config.training.stage1.weight_decay)

    @torch.no_grad()
    def equalised_dense(depth: torch.Tensor) -> torch.Tensor:
        """Depth videos (B, 1, T, H, W) in [0, 1], rank-equalised per clip, VAE-encoded."""
        flat = depth.flatten(1)
        ranks = flat.argsort(dim=1).argsort(dim=1).float() / (flat.shape[1] - 1)
        grey = (ranks.view_as(depth) * 2 - 1).expand(-1, 3, -1, -1, -1).contiguous()
        return module.codec.encode(grey)

    def dense_of(items: dict) -> torch.Tensor:
        if oracle:
            return items["video"]
        return equalised_dense(items["depth"]) if equalise == "1" else items["dense"]

    def pooled_point_maps(records) -> torch.Tensor:
        """(B, latent channels, 5, 16, 16): each clip's point map, pixel frames 0, 4, ..., 16,
        pooled 4x4, in channels 0-2 (scaled to about unit spread), zeros elsewhere."""
        import numpy as np

        maps = []
        for record in records:
            with np.load(record.controls) as data:
                frames = data["point_map"][::4].astype(np.float32) / 127.5 - 1
            video = torch.from_numpy(frames).permute(3, 0, 1, 2).unsqueeze(0)
            pooled = torch.nn.functional.avg_pool3d(video, (1, 4, 4))[0]
            latent = torch.zeros(config.model.transformer.out_channels, *pooled.shape[1:])
            latent[:3] = pooled * 2
            maps.append(latent)
        return torch.stack(maps)

    def sparse_of(items: dict, records) -> torch.Tensor:
        return pooled_point_maps(records) if raw_point_map == "1" else items["sparse"]

    held_out_dense: dict[int, torch.Tensor] = {}  # per chunk: the same at every evaluation
    held_out_sparse: dict[int, torch.Tensor] = {}

    @torch.no_grad()
    def evaluate() -> dict[str, list[float]]:
        transformer.eval()
        result = {}
        for variant in ("controls", "zeroed", "none"):
            per_sigma = []
            for sigma in SIGMAS:
                total = 0.0
                for start in range(0, len(held_out), CHUNK):
                    items = default_collate([held_out[i] for i in
                                             range(start, min(start + CHUNK, len(held_out)))])
                    latents = items["video"]
                    noise = step_draws(99, 0, start, latents.shape[0]).samples
                    noisy, target, timesteps = noisy_and_target(
                        latents, torch.full((latents.shape[0],), sigma), noise)
                    if start not in held_out_dense:
                        held_out_dense[start] = dense_of(items)
                    dense = held_out_dense[start]
                    if start not in held_out_sparse:
                        held_out_sparse[start] = sparse_of(
                            items, held_out.records[start:start + CHUNK])
                    sparse = held_out_sparse[start]
                    if variant == "zeroed":
                        dense, sparse = torch.zeros_like(dense), torch.zeros_like(sparse)
                    controls = {} if variant == "none" else {
                        "dense": control_input(dense), "sparse": control_input(sparse)}
                    text = module.text_encoder.encode(list(items["caption"]))
                    prediction = transformer(i2v_input(noisy, condition_of(latents)), timesteps,
                                             text, **controls)
                    error = ((prediction - target) ** 2)[:, :, 1:].mean()
                    total += float(error) * latents.shape[0]
                per_sigma.append(round(total / len(held_out), 4))
            result[variant] = per_sigma
        transformer.train()
        return result

    report = {"sigmas": list(SIGMAS), "steps": steps, "lr": float(lr), "batch": batch,
              "layers": int(layers), "oracle": oracle, "sees_latent": sees_latent == "1",
              "train_base": train_base == "1", "equalise_depth": equalise == "1",
              "raw_point_map": raw_point_map == "1",
              "evaluations": {"0": evaluate()}}
    print("sigma", SIGMAS, "\nstep 0", report["evaluations"]["0"], flush=True)
    draws = torch.Generator().manual_seed(0)
    started, losses = time.perf_counter(), []
    transformer.train()
    for step in range(steps):
        indices = torch.randint(len(train), (batch,), generator=draws).tolist()
        items = default_collate([train[i] for i in indices])
        items["dense"] = dense_of(items)
        items["sparse"] = sparse_of(items, [train.records[i] for i in indices])
        step_random = module.step_draws(step, batch)
        flow = module.flow_batch(items, 0, step_random)
        loss = flow_matching_terms(transformer, flow, step_random.samples, module.shift)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if (step + 1) % every == 0 or step + 1 == steps:
            report["evaluations"][str(step + 1)] = evaluate()
            print(f"step {step + 1} ({time.perf_counter() - started:.0f} s, training loss "
                  f"{sum(losses[-every:]) / len(losses[-every:]):.4f})",
                  report["evaluations"][str(step + 1)], flush=True)
    report["train_seconds"] = round(time.perf_counter() - started, 1)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def branches_see_the_latent(model_class) -> None:
    """Patch ``model_class`` so each branch's tokens also hold its half of the patchified noisy
    input (even features for dense, odd for sparse): the branches then see the latent."""
    forward, branch_states, patchify = (model_class.forward, model_class._branch_states,
                                        model_class._patchify)

    def seeing_forward(self, hidden_states, *args, **kwargs):
        self._latent_tokens = patchify(self, hidden_states)
        return forward(self, hidden_states, *args, **kwargs)

    def seeing_branch_states(self, dense, sparse, context, timestep_proj):
        branches = branch_states(self, dense, sparse, context, timestep_proj)
        return {parity: state._replace(tokens=state.tokens + self._latent_tokens[..., parity::2])
                for parity, state in branches.items()}

    model_class.forward, model_class._branch_states = seeing_forward, seeing_branch_states


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

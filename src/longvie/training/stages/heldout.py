"""Held-out evidence that each stage's mechanism works (``reports/train_<stage>.json``).

Every comparison is a flow-matching loss on the same held-out clips with the same noise draws
(a fixed generator per chunk), so two variants differ only in what the model is given:

- stage 1: the controls vs the controls zeroed (and each branch alone, and none);
- stage 2: clean vs degraded first frames T(I), with T drawn once (p = 1, fixed seed, made by
  the starting model) so stage 1's and stage 2's weights see identical frames;
- stage 3: with the preceding frames as history tokens (the longest history, and each shorter
  one) vs without, on clean and on degraded first frames.

Each variant is measured before the stage trains (the previous stage's weights) and after.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
from torch.utils.data import default_collate

from longvie.training.stages.data import StageDataset
from longvie.training.draws import step_draws
from longvie.training.stages.module import ControllerModule, FlowBatch, flow_matching_terms

SEED = 1234
DRAWS = 4  # noise draws per clip: the loss of one draw varies a lot with its noise level
CHUNK = 16


@dataclass(frozen=True)
class Variant:
    controls: str = "both"  # both | zeroed | dense | sparse | none
    degraded_first_frame: bool = False
    history_latents: int = 0


def stage_variants(module: ControllerModule, detailed: bool = True) -> dict[str, Variant]:
    """The comparisons of the module's stage; ``detailed`` adds stage 3's per-length losses."""
    spec = module.spec
    if spec.number <= 1:  # stage 1 and the control pretraining: what the controls do
        return {"with_controls": Variant(), "controls_zeroed": Variant(controls="zeroed"),
                "dense_only": Variant(controls="dense"), "sparse_only": Variant(controls="sparse"),
                "no_controls": Variant(controls="none")}
    if spec.number == 2:
        return {"clean_first_frame": Variant(),
                "degraded_first_frame": Variant(degraded_first_frame=True)}
    lengths = sorted(module.settings.history_frames)
    longest = lengths[-1] // 4
    variants = {
        "with_history": Variant(history_latents=longest),
        "without_history": Variant(),
        # What history is for: recovering from a degraded conditioning frame, as in a rollout.
        "degraded_first_frame_with_history": Variant(degraded_first_frame=True,
                                                     history_latents=longest),
        "degraded_first_frame_without_history": Variant(degraded_first_frame=True),
    }
    if detailed:
        variants |= {f"with_history_{n}_frames": Variant(history_latents=n // 4)
                     for n in lengths[:-1]}
    return variants


@torch.no_grad()
def degraded_conditions(module: ControllerModule, dataset: StageDataset
                        ) -> tuple[list[dict], dict]:
    """T(I) of every held-out first frame (p = 1), encoded, with the sparse control splatted
    from it where the dataset carries tracks (else None); and how often each kind was drawn."""
    generator = torch.Generator().manual_seed(SEED)
    conditions, kinds = [], Counter()
    for start in range(0, len(dataset), CHUNK):
        batch = default_collate([dataset[i] for i in range(start, min(start + CHUNK,
                                                                      len(dataset)))])
        frames, drawn = module.degrade_frames(batch["first_frame"], generator, p=1.0)
        encoded = module.encode_condition(frames, batch["video"])
        for index, condition in enumerate(encoded):
            sparse = (module.splat_sparse(frames[index:index + 1], batch, index)[0]
                      if "tracks_xy" in batch else None)
            conditions.append({"condition": condition, "sparse": sparse})
        kinds.update(kind.split(":")[0] + ("+drift" if "+drift" in kind else "")
                     for kind in drawn)
    return conditions, dict(kinds)


@torch.no_grad()
def heldout_loss(module: ControllerModule, dataset: StageDataset, variant: Variant,
                 conditions: list | None = None) -> float:
    """Mean flow-matching loss of ``variant`` over the held-out clips (fixed noise)."""
    was_training = module.transformer.training
    module.transformer.eval()
    total, count = 0.0, 0
    for start in range(0, len(dataset), CHUNK):
        indices = range(start, min(start + CHUNK, len(dataset)))
        batch = default_collate([dataset[i] for i in indices])
        flow = _flow_batch(module, batch, variant, conditions, indices)
        generators = step_draws(SEED, 0, start, len(indices)).samples  # noise per clip
        for _ in range(DRAWS):
            loss = flow_matching_terms(module.transformer, flow, generators, module.shift)["total"]
            total += float(loss) * len(indices)
            count += len(indices)
    module.transformer.train(was_training)
    return total / count


def _flow_batch(module: ControllerModule, batch: dict, variant: Variant, conditions,
                indices) -> FlowBatch:
    dense, sparse = batch["dense"], batch["sparse"]
    if variant.degraded_first_frame:
        condition = torch.stack([conditions[i]["condition"] for i in indices])
        if conditions[indices[0]]["sparse"] is not None:
            sparse = torch.stack([conditions[i]["sparse"] for i in indices]).to(sparse)
    else:
        condition = module.clean_condition(batch)
    if variant.controls == "zeroed":
        dense, sparse = torch.zeros_like(dense), torch.zeros_like(sparse)
    dense = dense if variant.controls in ("both", "zeroed", "dense") else None
    sparse = sparse if variant.controls in ("both", "zeroed", "sparse") else None
    history = None
    if variant.history_latents:
        history = batch["previous"][:, :, -variant.history_latents:]
    text = module.text_encoder.encode(list(batch["caption"]))
    return FlowBatch(batch["video"], condition, text, dense, sparse, None, history)


def measure(module: ControllerModule, dataset: StageDataset, conditions=None,
            detailed: bool = True) -> dict[str, float]:
    return {name: round(heldout_loss(module, dataset, variant, conditions), 5)
            for name, variant in stage_variants(module, detailed).items()}

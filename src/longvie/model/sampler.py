"""One clip from noise: flow matching (Euler or UniPC) with classifier-free guidance on the
caption.

The controls and the history condition both the guided and the unguided prediction; only the
caption is dropped for the unguided one (the stages trained with captions dropped 10 % of the
time, so the empty caption is a learnt input).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from longvie.model.backbone import control_input, history_input, i2v_input
from longvie.model.flow_sampler import denoise


@dataclass(frozen=True)
class ClipInputs:
    """Everything one clip is generated from (latents (B, z, F, h, w): B chains at once)."""

    condition: torch.Tensor
    text: torch.Tensor
    null_text: torch.Tensor
    dense: torch.Tensor | None = None
    sparse: torch.Tensor | None = None
    history: torch.Tensor | None = None


@torch.no_grad()
def sample_clip(transformer, inputs: ClipInputs, start_noise: torch.Tensor, steps: int,
                shift: float, guidance: float, solver: str = "euler") -> torch.Tensor:
    """Clean latents of one clip, integrated from ``start_noise`` over ``steps`` steps of
    ``solver`` (``euler`` or ``unipc``)."""
    dense = None if inputs.dense is None else control_input(inputs.dense)
    sparse = None if inputs.sparse is None else control_input(inputs.sparse)
    history = None if inputs.history is None else history_input(inputs.history)

    def twice(tensor):
        return None if tensor is None else torch.cat([tensor, tensor])

    def velocity(x, timesteps):
        if guidance == 1.0:
            return transformer(i2v_input(x, inputs.condition), timesteps, inputs.text,
                               dense=dense, sparse=sparse, history=history)
        # The guided and the unguided prediction in one batch: one forward pass, not two.
        both = transformer(i2v_input(twice(x), twice(inputs.condition)), twice(timesteps),
                           torch.cat([inputs.text, inputs.null_text.expand_as(inputs.text)]),
                           dense=twice(dense), sparse=twice(sparse), history=twice(history))
        guided, unguided = both.chunk(2)
        return unguided + guidance * (guided - unguided)

    return denoise(velocity, start_noise, steps, shift, solver)

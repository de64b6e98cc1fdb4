"""Rectified-flow (flow matching) training targets, as Wan is trained.

``x_t = (1 - s) x_0 + s e`` with noise e; the DiT predicts the velocity ``e - x_0`` at timestep
``1000 s``. Noise levels s come from a logit-normal draw pushed towards noise by ``shift``
(Wan/SD3: ``s' = shift s / (1 + (shift - 1) s)``). Each sample draws its level and noise from
its own generator (:mod:`longvie.training.draws`), so a batch split over processes draws the
same as one process.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from longvie.model.flow_sampler import NUM_TIMESTEPS


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def sample_sigmas(generators: Sequence[torch.Generator], shift: float) -> torch.Tensor:
    """(B,) noise levels in (0, 1), one per sample's generator: logit-normal, then shifted."""
    draws = torch.cat([torch.randn(1, generator=g) for g in generators])
    return shift_sigmas(torch.sigmoid(draws), shift)


def noisy_and_target(clean: torch.Tensor, sigmas: torch.Tensor,
                     generators: Sequence[torch.Generator]
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_t, velocity target, timesteps) for clean latents (B, C, F, h, w)."""
    if len(generators) != clean.shape[0]:
        raise ValueError(f"{len(generators)} generators for a batch of {clean.shape[0]}")
    noise = torch.cat([torch.randn((1, *clean.shape[1:]), generator=g)
                       for g in generators]).to(clean)
    s = sigmas.to(clean).view(-1, *([1] * (clean.ndim - 1)))
    noisy = (1 - s) * clean + s * noise
    return noisy, noise - clean, sigmas.to(clean) * NUM_TIMESTEPS

"""Rectified-flow (flow matching) training targets, as Wan is trained.

``x_t = (1 - s) x_0 + s e`` with noise e; the DiT predicts the velocity ``e - x_0`` at timestep
``1000 s``. Noise levels s come from a logit-normal draw pushed towards noise by ``shift``
(Wan/SD3: ``s' = shift s / (1 + (shift - 1) s)``), drawn from the step's own generator.
"""

from __future__ import annotations

import torch

NUM_TIMESTEPS = 1000


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def sample_sigmas(batch: int, shift: float, generator: torch.Generator) -> torch.Tensor:
    """(B,) noise levels in (0, 1): logit-normal, then shifted."""
    return shift_sigmas(torch.sigmoid(torch.randn(batch, generator=generator)), shift)


def noisy_and_target(clean: torch.Tensor, sigmas: torch.Tensor, generator: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_t, velocity target, timesteps) for clean latents (B, C, F, h, w)."""
    noise = torch.randn(clean.shape, generator=generator).to(clean)
    s = sigmas.to(clean).view(-1, *([1] * (clean.ndim - 1)))
    noisy = (1 - s) * clean + s * noise
    return noisy, noise - clean, sigmas.to(clean) * NUM_TIMESTEPS

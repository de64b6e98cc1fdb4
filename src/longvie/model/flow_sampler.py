"""Flow-matching Euler sampling on the diffusers scheduler's noise schedule.

The schedule is ``FlowMatchEulerDiscreteScheduler``'s (shifted sigmas from 1 towards 0); the
update is Euler's ``x <- x + (s_next - s) v`` with the DiT's velocity v. Stage 2's generation
degradation runs the last ``t`` of ``n`` steps from a partly noised latent; generation (and the
sample clips training logs) runs them all from pure noise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from longvie.training.flow import NUM_TIMESTEPS

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, timesteps (B,)) -> v


def flow_sigmas(steps: int, shift: float) -> torch.Tensor:
    """(steps + 1,) noise levels of an Euler schedule, from ~1 down to 0."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TIMESTEPS, shift=shift)
    scheduler.set_timesteps(steps)
    return scheduler.sigmas.float()


def euler_denoise(velocity: Velocity, latents: torch.Tensor, sigmas: torch.Tensor,
                  start: int = 0) -> torch.Tensor:
    """Integrate from ``sigmas[start]`` to ``sigmas[-1]``; ``latents`` are at ``sigmas[start]``."""
    x = latents
    for index in range(start, len(sigmas) - 1):
        sigma = sigmas[index]
        timesteps = torch.full((x.shape[0],), float(sigma) * NUM_TIMESTEPS, device=x.device)
        x = x + (sigmas[index + 1] - sigma).to(x) * velocity(x, timesteps)
    return x


def renoise_and_denoise(velocity: Velocity, clean: torch.Tensor, steps_back: int,
                        num_steps: int, shift: float, generator: torch.Generator) -> torch.Tensor:
    """Noise ``clean`` to the level ``steps_back`` steps before the end of a ``num_steps``
    schedule, then denoise it through those steps: a partial regeneration by the model."""
    if not 0 < steps_back <= num_steps:
        raise ValueError(f"steps_back={steps_back} must lie in [1, num_steps={num_steps}]")
    sigmas = flow_sigmas(num_steps, shift)
    start = num_steps - steps_back
    noise = torch.randn(clean.shape, generator=generator).to(clean)
    level = sigmas[start].to(clean)
    return euler_denoise(velocity, (1 - level) * clean + level * noise, sigmas, start)

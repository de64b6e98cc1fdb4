"""Flow-matching sampling on the diffusers schedulers' noise schedules.

Euler: ``FlowMatchEulerDiscreteScheduler``'s shifted sigmas from 1 towards 0 and the update
``x <- x + (s_next - s) v`` with the DiT's velocity v. Stage 2's generation degradation runs the
last ``t`` of ``n`` Euler steps from a partly noised latent. UniPC: diffusers'
``UniPCMultistepScheduler`` with flow sigmas and flow prediction, the multistep
predictor-corrector the Wan pipeline samples with, which needs far fewer steps than Euler for
the same error. Generation (and the sample clips training logs) runs from pure noise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# Wan's timestep scale: the DiT sees timestep 1000 s at noise level s (training uses the same).
NUM_TIMESTEPS = 1000

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, timesteps (B,)) -> v
SOLVERS = ("euler", "unipc")


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


def unipc_denoise(velocity: Velocity, noise: torch.Tensor, steps: int,
                  shift: float) -> torch.Tensor:
    """Integrate from pure noise to sigma 0 in ``steps`` UniPC (order 2, bh2) steps."""
    from diffusers import UniPCMultistepScheduler

    scheduler = UniPCMultistepScheduler(num_train_timesteps=NUM_TIMESTEPS,
                                        prediction_type="flow_prediction", use_flow_sigmas=True,
                                        flow_shift=shift, solver_order=2)
    scheduler.set_timesteps(steps)
    x = noise
    for timestep in scheduler.timesteps:
        timesteps = torch.full((x.shape[0],), float(timestep), device=x.device)
        x = scheduler.step(velocity(x, timesteps), timestep, x).prev_sample
    return x


def denoise(velocity: Velocity, noise: torch.Tensor, steps: int, shift: float,
            solver: str = "euler") -> torch.Tensor:
    """Clean latents from pure ``noise`` with the named solver (:data:`SOLVERS`)."""
    if solver == "euler":
        return euler_denoise(velocity, noise, flow_sigmas(steps, shift))
    if solver == "unipc":
        return unipc_denoise(velocity, noise, steps, shift)
    raise ValueError(f"solver {solver!r} is not one of {SOLVERS}")


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

"""Flow-matching Euler sampling: the schedule, exact integration of a known velocity field, and
the partial regeneration stage 2 uses."""

from __future__ import annotations

import pytest
import torch

from longvie.model.flow_sampler import euler_denoise, flow_sigmas, renoise_and_denoise


def test_schedule_runs_from_noise_to_clean_and_shift_keeps_more_noise():
    plain, shifted = flow_sigmas(10, 1.0), flow_sigmas(10, 3.0)
    assert plain.shape == (11,) and float(plain[0]) == pytest.approx(1.0)
    assert float(plain[-1]) == 0.0 and torch.all(plain[:-1] > plain[1:])
    assert torch.all(shifted[1:-1] > plain[1:-1])


def test_euler_recovers_the_clean_sample_of_a_straight_path():
    # On x_t = (1 - s) x0 + s e the exact velocity is e - x0: Euler is exact for it.
    clean, noise = torch.randn(2, 4, 3), torch.randn(2, 4, 3)

    def velocity(x, timesteps):
        assert timesteps.shape == (2,)
        return noise - clean

    out = euler_denoise(velocity, noise, flow_sigmas(7, 3.0))
    assert torch.allclose(out, clean, atol=1e-5)


def test_regeneration_noises_to_the_level_of_its_step_then_returns():
    clean = torch.randn(1, 4, 2)
    seen = []

    def velocity(x, timesteps):
        seen.append(float(timesteps[0]))
        return torch.zeros_like(x)  # a model that moves nothing: the output keeps the noise

    out = renoise_and_denoise(velocity, clean, 5, 50, 3.0, torch.Generator().manual_seed(0))
    sigmas = flow_sigmas(50, 3.0)
    assert len(seen) == 5 and seen[0] == pytest.approx(float(sigmas[45]) * 1000)
    assert not torch.equal(out, clean)
    with pytest.raises(ValueError, match="steps_back"):
        renoise_and_denoise(velocity, clean, 0, 50, 3.0, torch.Generator())

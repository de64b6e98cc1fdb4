"""Each generating contender samples with the profile's sampler; the naive baseline turns off
the two long-video parts of it (history tokens and unified noise), nothing else."""

from __future__ import annotations

import pytest

from longvie.benchmark.run import Contender, contender_sampler
from longvie.config import compose


@pytest.mark.parametrize("unified", [True, False])
def test_the_candidate_samples_as_generation_is_configured(unified):
    config = compose(["profile=tiny", f"generation.unified_noise={unified}"])
    candidate = contender_sampler(config, Contender("candidate", None, None))
    assert candidate.history and candidate.unified_noise == unified
    assert candidate.frame_memory == config.generation.frame_memory
    assert candidate.colour_anchor == config.generation.colour_anchor


@pytest.mark.parametrize("unified", [True, False])
def test_the_naive_baseline_has_neither_history_nor_unified_noise(unified):
    config = compose(["profile=tiny", f"generation.unified_noise={unified}"])
    naive = contender_sampler(config, Contender("naive", None, None, history=False,
                                                unified_noise=False))
    candidate = contender_sampler(config, Contender("candidate", None, None))
    assert not naive.history and not naive.unified_noise
    assert naive.steps == candidate.steps and naive.frame_memory == candidate.frame_memory


def test_tiny_samples_with_fresh_noise_and_wan14b_with_longvies_unified_noise():
    assert not compose(["profile=tiny"]).generation.unified_noise
    assert compose(["profile=wan14b"]).generation.unified_noise

"""The random draws of one training step, independent of how its global batch is split.

Every sample of optimizer step ``s`` draws from its own generator, seeded by the run's seed,
``s`` and the sample's position in the global batch; a decision for the whole batch (stage 3's
history length) comes from a generator of the step alone. Two DDP ranks with ``b`` samples each
therefore draw exactly what one process with ``2b`` draws, and their averaged gradients equal
its gradient up to the order of float sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Keys of the seed sequence that separate the step's batch-level and per-sample generators.
_BATCH, _SAMPLE = 0, 1


def _generator(*key: int) -> torch.Generator:
    seed = int(np.random.SeedSequence([abs(k) for k in key]).generate_state(1, np.uint64)[0])
    return torch.Generator().manual_seed(seed >> 1)


@dataclass(frozen=True)
class StepDraws:
    """``batch``: draws shared by the whole step (the same on every rank); ``samples``: one
    generator per sample of this process's share of the batch, in batch order."""

    batch: torch.Generator
    samples: tuple[torch.Generator, ...]


def step_draws(seed: int, step: int, first: int, count: int, stream: int = 0) -> StepDraws:
    """The draws of samples ``first .. first + count - 1`` (global batch positions) of ``step``."""
    return StepDraws(_generator(seed, stream, step, _BATCH),
                     tuple(_generator(seed, stream, step, _SAMPLE, first + i)
                           for i in range(count)))


def shard_start(module, local_batch: int) -> int:
    """The global batch position of this rank's first sample (ranks hold equal shares)."""
    trainer = getattr(module, "_trainer", None)
    return (trainer.global_rank if trainer is not None else 0) * local_batch

"""Batches as a pure function of the optimizer step, so a killed run resumes exactly.

Lightning restores the step counter from the last checkpoint; a sampler that starts at that step
and derives each batch from ``(seed, step)`` alone then yields the very batches the uninterrupted
run would have seen: no step is repeated with other data, none is skipped. Under DDP every rank
draws the same global batch and keeps its own slice (Lightning's sampler injection is off).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Sampler


@dataclass(frozen=True)
class Phase:
    """``frames`` pixel frames per sample for ``steps`` steps at ``batch_size``."""

    frames: int
    steps: int
    batch_size: int


def phases_from(configs) -> list[Phase]:
    """Phases from the config's ``PhaseConfig`` list."""
    return [Phase(c.frames, c.steps, c.batch_size) for c in configs]


def total_steps(phases: Sequence[Phase]) -> int:
    return sum(phase.steps for phase in phases)


def phase_at(phases: Sequence[Phase], step: int) -> Phase:
    """The phase that optimizer step ``step`` (0-based) belongs to; the last one continues."""
    end = 0
    for phase in phases:
        end += phase.steps
        if step < end:
            return phase
    return phases[-1]


def step_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    """The random stream of one step (``stream`` separates uses within a step)."""
    return np.random.default_rng([seed, step, stream])


class StepBatchSampler(Sampler[list[int]]):
    """Yields the batch of dataset indices for every step from the start step to ``end_step``.

    ``start_step`` may be a callable (the trainer's current step), read each time iteration
    begins: Lightning iterates the loader again when it thinks an epoch ended (it does after a
    resume), and a fixed start would then replay the batches from the resume point.
    """

    def __init__(self, dataset_size: int, phases: Sequence[Phase], seed: int,
                 start_step: int | Callable[[], int] = 0, end_step: int | None = None,
                 rank: int = 0, world_size: int = 1) -> None:
        if dataset_size < 1:
            raise ValueError("no training samples")
        for phase in phases:
            if phase.batch_size % world_size:
                raise ValueError(f"batch_size {phase.batch_size} does not split over "
                                 f"{world_size} processes: make it a multiple of {world_size}")
        self.size, self.phases, self.seed = dataset_size, list(phases), seed
        self._start = start_step
        self.end = total_steps(self.phases) if end_step is None else end_step
        self.rank, self.world_size = rank, world_size

    @property
    def start(self) -> int:
        return self._start() if callable(self._start) else self._start

    def batch(self, step: int) -> list[int]:
        """This rank's share of the step's global batch (``batch_size`` is the global size)."""
        size = phase_at(self.phases, step).batch_size
        indices = step_rng(self.seed, step).integers(0, self.size, size=size).tolist()
        share = size // self.world_size
        return indices[self.rank * share:(self.rank + 1) * share]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.end):
            yield self.batch(step)

    def __len__(self) -> int:
        return max(0, self.end - self.start)

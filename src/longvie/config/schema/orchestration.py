"""Dagster (``orchestration``) and the pyfunc server (``serving``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class TrainingLaunch(StrEnum):
    """Where a training asset's training runs (``orchestration.training_launch``)."""

    in_process = "in_process"
    pipes = "pipes"


class ExecutorKind(StrEnum):
    """The Dagster executor of the code location's jobs (``orchestration.executor``)."""

    in_process = "in_process"
    multiprocess = "multiprocess"


@dataclass
class OrchestrationConfig:
    """How Dagster runs the steps (docs/scale_out.md). The run launcher and storage are Dagster
    instance settings (``dagster.yaml``), not config.

    ``executor`` and ``max_concurrent`` are read once, when the code location loads, from the
    config composed without overrides (``LONGVIE_EXECUTOR`` overrides ``executor``); the other
    keys are read per run, from the ``longvie`` resource's overrides.
    """

    # "in_process": the training assets train in the Dagster step's process. "pipes": they run
    # `<launch_command> train stage=<stage> <the resource's overrides>` as a subprocess through
    # Dagster Pipes, which reports the materialisation (torchrun, Lightning's multi-GPU launch).
    training_launch: TrainingLaunch = TrainingLaunch.in_process
    # Command prefix of the `pipes` launch, e.g. [torchrun, --nproc_per_node=8, -m, longvie];
    # empty = this Python: [sys.executable, -m, longvie].
    launch_command: list[str] = field(default_factory=list)
    executor: ExecutorKind = ExecutorKind.multiprocess
    # Steps the multiprocess executor runs at once; 0 = one per CPU core (Dagster's default).
    max_concurrent: int = 0
    # The blocking check `training_loss_is_finite_and_not_rising` judges the trend (mean of the
    # last 10 % of the logged losses against the first 10 %) only with at least this many losses;
    # finiteness always. A run of a few steps (the smoke profile) has no trend to judge.
    loss_trend_min_steps: int = 10
    # A rise of the last 10 %'s mean over the first's within this many standard errors of their
    # difference is scatter, not divergence (stage 2 starts from a trained controller: its loss
    # is flat: "last below first" stopped a fresh `make run` at 0.3558 vs 0.3474, 1.0 SE).
    loss_rise_standard_errors: float = 2.0
    # Seconds a step waits for another run of the same step on the same root (its lock under
    # <paths.models>/.locks) before refusing with the holder's pid, host and command.
    step_lock_wait_s: float = 0.0
    # Free space every step needs on its output folders' file systems before it starts.
    min_free_mb: float = 200.0


@dataclass
class ServingConfig:
    """The registered model as an MLflow pyfunc: ``longvie serve`` and what one request may ask.

    Every version is logged with these limits and ``generation``'s sampler as its defaults.
    """

    # The registry alias or version ``longvie serve`` serves.
    model: str = "champion"
    # Loopback by default: the server has no authentication.
    host: str = "127.0.0.1"
    port: int = 5001
    # The longest video one request may ask for: it is generated whole before it is returned.
    max_frames: int = 481
    # Seconds the server gives one request (`mlflow models serve --timeout`).
    timeout_s: int = 600

"""The Lightning trainer every training step uses: checkpoints, resume, MLflow, scale-out.

Checkpoints go to ``paths.models/<step>/checkpoints`` every ``training.trainer.checkpoint_every``
optimizer steps (``last.ckpt`` always points at the newest); starting a step again resumes from
it. Together with :mod:`longvie.training.sampling` a run killed at any moment continues with
exactly the batches the uninterrupted run would have used. Strategy, precision, devices and
nodes come from ``training.trainer`` (ddp / fsdp / deepspeed on clusters; one CPU process here).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from longvie.config import LongvieConfig
from longvie.training.sampling import Phase, StepBatchSampler, total_steps

LAST = "last.ckpt"


def checkpoint_dir(config: LongvieConfig, step_name: str) -> Path:
    return Path(config.paths.models) / step_name / "checkpoints"


def resume_path(config: LongvieConfig, step_name: str) -> str | None:
    last = checkpoint_dir(config, step_name) / LAST
    return str(last) if last.is_file() else None


def mlflow_logger(config: LongvieConfig, run_name: str, extra_tags: dict[str, str] | None = None):
    """Lightning's MLflow logger on the project's store (experiment created with our artifacts)."""
    from lightning.pytorch.loggers import MLFlowLogger

    from longvie.tracking import ensure_experiment, standard_tags, tracking_uri

    ensure_experiment(config)
    return MLFlowLogger(
        experiment_name=config.mlflow.experiment,
        run_name=run_name,
        tracking_uri=tracking_uri(config),
        tags={**standard_tags(config), **(extra_tags or {})},
    )


def build_trainer(config: LongvieConfig, step_name: str, max_steps: int, logger=None,
                  progress: bool = True, callbacks: tuple = ()) -> L.Trainer:
    settings = config.training.trainer
    checkpoints = ModelCheckpoint(
        dirpath=checkpoint_dir(config, step_name),
        filename="step{step:06d}",
        auto_insert_metric_name=False,
        every_n_train_steps=settings.checkpoint_every,
        save_last=True,
        save_top_k=1,
    )
    return L.Trainer(
        accelerator=settings.accelerator,
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy=settings.strategy,
        precision=settings.precision,
        max_steps=max_steps,
        max_epochs=-1,
        logger=logger if logger is not None else False,
        callbacks=[checkpoints, *callbacks],
        log_every_n_steps=settings.log_every,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        deterministic=False,
        default_root_dir=str(checkpoint_dir(config, step_name).parent),
    )


def fit_resumable(trainer: L.Trainer, module: L.LightningModule, datamodule,
                  config: LongvieConfig, step_name: str) -> int:
    """Fit from the last checkpoint (if any) and checkpoint the final state as ``last.ckpt``, so
    asking for more steps later continues where this run ended. Returns the optimizer step.

    A run whose checkpoint already reached ``max_steps`` only loads its weights.
    """
    import torch

    resume = resume_path(config, step_name)
    if resume is not None:
        # Our own checkpoints hold tensors and plain containers only: never unpickle code.
        state = torch.load(resume, map_location="cpu", weights_only=True, mmap=True)
        if state["global_step"] >= trainer.max_steps:
            module.load_state_dict(state["state_dict"])
            return int(state["global_step"])
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    trainer.save_checkpoint(checkpoint_dir(config, step_name) / LAST)
    return trainer.global_step


class StepDataModule(L.LightningDataModule):
    """Any dataset in step-indexed batches (restarting at the restored step on resume)."""

    def __init__(self, config: LongvieConfig, phases: list[Phase],
                 make_dataset: Callable[[], Dataset]) -> None:
        super().__init__()
        self.config, self.phases, self.make_dataset = config, phases, make_dataset
        self.dataset: Dataset | None = None

    def setup(self, stage: str) -> None:
        if self.dataset is None:
            self.dataset = self.make_dataset()

    def train_dataloader(self) -> DataLoader:
        start = self.trainer.global_step if self.trainer is not None else 0
        sampler = StepBatchSampler(len(self.dataset), self.phases,
                                   self.config.training.trainer.seed, start_step=start,
                                   end_step=total_steps(self.phases))
        return DataLoader(self.dataset, batch_sampler=sampler,
                          num_workers=self.config.training.trainer.num_workers)

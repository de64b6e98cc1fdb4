"""The Lightning trainer every training step uses: checkpoints, resume, MLflow, scale-out.

Checkpoints go to ``paths.models/<step>/checkpoints`` every ``training.trainer.checkpoint_every``
optimizer steps (``last.ckpt`` always points at the newest); starting a step again resumes from
it. Together with :mod:`longvie.training.sampling` a run killed at any moment continues with
exactly the batches the uninterrupted run would have used. Strategy, precision, devices and
nodes come from ``training.trainer`` (ddp / fsdp / deepspeed on clusters; one CPU process here).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from longvie.atomic import write_atomically
from longvie.config import LongvieConfig
from longvie.ranks import barrier, is_rank_zero
from longvie.tracking import (
    ensure_experiment,
    owner_tags,
    standard_tags,
    tracking_client,
    tracking_uri,
)
from longvie.training.sampling import Phase, StepBatchSampler, total_steps

LAST = "last.ckpt"


def checkpoint_dir(config: LongvieConfig, step_name: str) -> Path:
    return Path(config.paths.models) / step_name / "checkpoints"


def resume_path(config: LongvieConfig, step_name: str) -> str | None:
    last = checkpoint_dir(config, step_name) / LAST
    return str(last) if last.is_file() else None


RUN_ID_FILE = "mlflow_run_id"


SETTINGS_FILE = "settings.json"


def without_steps(value):
    """``value`` with every ``steps`` key dropped: asking for more steps continues a run."""
    if isinstance(value, dict):
        return {k: without_steps(v) for k, v in value.items() if k != "steps"}
    if isinstance(value, list):
        return [without_steps(v) for v in value]
    return value


def claim_checkpoints(config: LongvieConfig, step_name: str, settings: dict,
                      code: str | None = None) -> bool:
    """Keep ``step_name``'s checkpoints only if they were made with ``settings`` (step counts
    aside) by the same model and training code; otherwise delete them so the step starts afresh.
    Returns True when they were kept.

    Without this a changed learning rate or start model (``dvc repro`` after an edit) would
    silently continue the old run. ``code`` replaces the stamp of the whole model and training
    code (``longvie pretrain`` stamps only the files each of its parts runs, so that a run of
    hours survives edits elsewhere).
    """
    import json
    import shutil

    folder = checkpoint_dir(config, step_name).parent
    record = folder / SETTINGS_FILE
    wanted = json.dumps({**without_steps(settings), "code": code or code_stamp()}, sort_keys=True,
                        default=str)
    kept = record.is_file() and record.read_text() == wanted
    if not kept:
        shutil.rmtree(checkpoint_dir(config, step_name), ignore_errors=True)
        (folder / RUN_ID_FILE).unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(record, lambda temporary: temporary.write_text(wanted))
    return kept


def files_stamp(source: str) -> list:
    """Content stamp of a model folder or file (md5 per file; size + mtime above 256 MB, where
    hashing would cost minutes); a hub id stands for itself."""
    import hashlib

    root = Path(source)
    if not root.exists():
        return [source]
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    stamp = []
    for path in files:
        size = path.stat().st_size
        digest = (hashlib.md5(path.read_bytes()).hexdigest() if size < 256 * 2**20
                  else f"{size}:{path.stat().st_mtime_ns}")
        stamp.append((path.name if path == root else str(path.relative_to(root)), digest))
    return stamp


def code_stamp() -> str:
    """md5 of the model and training code: a run made by other code is not continued (what
    `dvc repro` expects after an edit of its `src/` dependencies)."""
    import hashlib

    package = Path(__file__).resolve().parents[1]
    digest = hashlib.md5()
    for folder in ("model", "training"):
        for path in sorted((package / folder).rglob("*.py")):
            digest.update(str(path.relative_to(package)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def modules_stamp(*modules: str) -> str:
    """md5 of the source files of the named modules (``longvie.training.base.vae``, ...)."""
    import hashlib
    import importlib.util

    digest = hashlib.md5()
    for name in modules:
        path = Path(importlib.util.find_spec(name).origin)
        digest.update(name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def data_stamp(config: LongvieConfig) -> list:
    """The clip table and controls index a step trained on."""
    return [files_stamp(str(Path(config.paths.curated) / "clips.parquet")),
            files_stamp(str(Path(config.paths.controls) / "controls.parquet"))]


def mlflow_logger(config: LongvieConfig, run_name: str,
                  extra_tags: dict[str, str] | None = None, step_name: str | None = None):
    """Lightning's MLflow logger on the project's store (experiment created with our artifacts).

    With ``step_name``, a step resumed from its checkpoints continues the MLflow run it started
    (the run id is kept beside the checkpoints), so one stage is one run even across a kill.
    """
    from lightning.pytorch.loggers import MLFlowLogger

    ensure_experiment(config)
    run_id = None
    id_file = checkpoint_dir(config, step_name).parent / RUN_ID_FILE if step_name else None
    if id_file is not None and id_file.is_file() and resume_path(config, step_name):
        run_id = _run_in_store(config, id_file.read_text().strip())
    logger = MLFlowLogger(
        experiment_name=config.mlflow.experiment,
        run_name=run_name,
        tracking_uri=tracking_uri(config),
        tags={**standard_tags(config), **owner_tags(), **(extra_tags or {})},
        run_id=run_id,
    )
    if id_file is not None and is_rank_zero():  # the other ranks' logger has no run
        id_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(id_file, lambda temporary: temporary.write_text(logger.run_id + "\n"))
    return logger


def _run_in_store(config: LongvieConfig, run_id: str) -> str | None:
    """``run_id`` if the tracking store holds it, else None (a new run starts). Checkpoints can
    outlive their store: pulled with `dvc pull` onto a fresh clone, or copied into a `dvc exp
    run --temp` workspace whose mlflow.db is new."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        tracking_client(config).get_run(run_id)
    except MlflowException:
        return None
    return run_id


def quiet_lightning(cpu: bool) -> None:
    """Drop the start-up lines that say nothing about a CPU run (accelerator report, the
    litlogger tip) and two warnings our own resume logic makes moot."""
    import logging
    import warnings

    if cpu:
        logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")


def build_trainer(config: LongvieConfig, step_name: str, max_steps: int, logger=None,
                  progress: bool = True, callbacks: tuple = ()) -> L.Trainer:
    settings = config.training.trainer
    quiet_lightning(settings.accelerator == "cpu")
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
        # StepBatchSampler shards each step's global batch over the ranks itself.
        use_distributed_sampler=False,
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
            module.load_state_dict(state["state_dict"], strict=module.strict_loading)
            module.on_load_checkpoint(state)
            return int(state["global_step"])
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    trainer.save_checkpoint(checkpoint_dir(config, step_name) / LAST, weights_only=False)
    return trainer.global_step


TRAIN_SECONDS_KEY = "longvie_train_seconds"


@dataclass
class Fitted:
    """What :func:`fit_step` leaves the caller: the optimizer step reached, the seconds the fit
    took, the MLflow logger (None without MLflow), the data module (its dataset, once built) and
    the Lightning trainer (its last logged metrics)."""

    steps: int
    seconds: float
    logger: object | None
    data: StepDataModule
    trainer: L.Trainer


def fit_step(config: LongvieConfig, step_name: str, module: L.LightningModule,
             phases: list[Phase], dataset: Callable[[], Dataset], *, stamp: dict,
             run_name: str, tags: dict[str, str], log_mlflow: bool = True,
             progress: bool = True, callbacks: tuple = (), code: str | None = None,
             hyperparams: dict | None = None, sync_after_claim: bool = False) -> Fitted:
    """The chain every training shares (the base, the VAE, the stages, each pretraining part):
    keep the step's checkpoints only if they were made for ``stamp`` (rank 0 decides; with
    ``sync_after_claim`` the other ranks wait for it), open the MLflow logger (continuing the
    step's run when it resumes; ``hyperparams`` logged on a fresh run), build the Lightning
    trainer and fit ``module`` over ``phases`` from the last checkpoint."""
    if is_rank_zero():
        claim_checkpoints(config, step_name, stamp, code=code)
    if sync_after_claim:
        barrier()
    resumed = resume_path(config, step_name) is not None
    logger = mlflow_logger(config, run_name, tags, step_name=step_name) if log_mlflow else None
    if logger is not None and hyperparams is not None and not resumed:
        logger.log_hyperparams(hyperparams)
    trainer = build_trainer(config, step_name, total_steps(phases), logger, progress, callbacks)
    data = StepDataModule(config, phases, dataset)
    started = time.perf_counter()
    steps = fit_resumable(trainer, module, data, config, step_name)
    return Fitted(steps, time.perf_counter() - started, logger, data, trainer)


class TrainingClock(Callback):
    """Training wall time summed over every run of a step, kept in its checkpoints, so a run
    resumed across kills and sessions still reports what it cost in all."""

    def __init__(self) -> None:
        self.before, self.started = 0.0, None

    @property
    def seconds(self) -> float:
        running = time.perf_counter() - self.started if self.started is not None else 0.0
        return self.before + running

    def on_train_start(self, trainer, pl_module) -> None:
        self.started = time.perf_counter()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self.before = float(checkpoint.get(TRAIN_SECONDS_KEY, 0.0))

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[TRAIN_SECONDS_KEY] = self.seconds


def recorded_train_seconds(config: LongvieConfig, step_name: str) -> float | None:
    """The summed training seconds in ``step_name``'s last checkpoint (None if unrecorded)."""
    import torch

    resume = resume_path(config, step_name)
    if resume is None:
        return None
    state = torch.load(resume, map_location="cpu", weights_only=True, mmap=True)
    value = state.get(TRAIN_SECONDS_KEY)
    return None if value is None else float(value)


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

    def current_step(self) -> int:
        return self.trainer.global_step if self.trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        sampler = StepBatchSampler(len(self.dataset), self.phases,
                                   self.config.training.trainer.seed,
                                   start_step=self.current_step,
                                   end_step=total_steps(self.phases),
                                   rank=trainer.global_rank if trainer is not None else 0,
                                   world_size=trainer.world_size if trainer is not None else 1)
        return DataLoader(self.dataset, batch_sampler=sampler,
                          num_workers=self.config.training.trainer.num_workers)

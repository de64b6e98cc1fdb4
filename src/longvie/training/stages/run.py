"""``longvie train stage=1|2|3``: train one controller stage from the previous stage's folder.

Writes ``paths.models/stage<N>/model`` (see :mod:`longvie.model.folder`), the report
``reports/train_<N>.json`` with the held-out comparisons, a loss plot and a sample GIF; with
MLflow on, one run per stage (resumed together with the checkpoints) holding the flattened
config, per-step losses, held-out figures and artifacts, and a new version of the registered
model tagged with the stage, data hash and git commit.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from longvie.atomic import write_json_atomically
from longvie.config import LongvieConfig
from longvie.errors import LongvieError
from longvie.model.folder import load_generator, read_meta, save_stage_model
from longvie.model.pretrained import check_controlled, check_pretrained
from longvie.plots import plot_losses
from longvie.ranks import is_rank_zero
from longvie.registry import log_and_register
from longvie.tracking import flatten
from longvie.training.clips import clip_records
from longvie.training.stages.heldout import degraded_conditions, measure
from longvie.training.stages.heldout_curve import HeldoutCurve, write_curve
from longvie.training.samples import write_sample_gif
from longvie.training.sampling import Phase
from longvie.training.stages.data import StageDataset
from longvie.training.stages.module import ControllerModule, STAGES, StageSpec
from longvie.training.trainer import data_stamp, files_stamp, fit_step


def model_dir(config: LongvieConfig, step_name: str) -> Path:
    return Path(config.paths.models) / step_name / "model"


def start_source(config: LongvieConfig, spec: StageSpec) -> str:
    """The folder (or hub id) this stage starts from."""
    if spec.previous == "base" and config.model.controlled:

        check_controlled(config.model.controlled, config.model)
        return config.model.controlled
    if spec.previous == "base" and config.model.pretrained:

        check_pretrained(config.model.pretrained, config.model)
        return config.model.pretrained
    folder = model_dir(config, spec.previous)
    previous = "base" if spec.previous == "base" else spec.previous.removeprefix("stage")
    if not folder.is_dir():
        raise LongvieError(f"{folder} does not exist: stage {spec.number} starts from it "
                           f"(run `longvie train stage={previous}` first)")
    stale = stale_ancestor(str(folder))
    if stale:
        raise LongvieError(f"stage {spec.number} starts from {folder}, but {stale}: run "
                           f"`longvie train stage={previous}` again first, so that stage "
                           f"{spec.number} does not build on a model its parents no longer make")
    return str(folder)


def source_stamp(source: str) -> str:
    """One md5 over :func:`files_stamp` of a model folder: what a stage records of its start."""
    import hashlib

    return hashlib.md5(json.dumps(files_stamp(source)).encode()).hexdigest()


def stale_ancestor(folder: str) -> str | None:
    """Why ``folder`` (a stage model) no longer descends from what is on disk, or None.

    Each stage folder records the folder it started from and that folder's stamp; a stage
    retrained since (``train stage=1`` beside a benchmark, say) leaves its children built on the
    old one. The chain is walked up to the base.
    """

    current = folder
    while True:
        meta = read_meta(current)
        parent, stamp = meta.get("started_from"), meta.get("started_from_stamp")
        if not parent or not stamp or not Path(parent).is_dir():
            return None
        if source_stamp(parent) != stamp:
            return (f"{current} was trained from {parent} as it was before; {parent} has "
                    "changed since")
        current = parent


def stage_records(config: LongvieConfig, spec: StageSpec, splits: tuple[str, ...]):
    """Clips with controls; stage 3 keeps those with a preceding clip (their history)."""

    records = clip_records(config, splits, with_controls=True)
    if spec.history:
        records = [r for r in records if r.previous_clip_id is not None]
        if not records:
            raise LongvieError(f"no clip in splits {splits} has a preceding clip in its shot: "
                               "stage 3 needs history frames (longer videos)")
    return records


def train_stage(config: LongvieConfig, key: str, progress: bool = True, log_mlflow: bool = True,
                callbacks: tuple = (), tags: dict[str, str] | None = None) -> dict:

    if key not in STAGES:
        raise LongvieError(f"stage={key!r}: the controller stages are {sorted(STAGES)}")
    spec = STAGES[key]
    settings = getattr(config.training, spec.name)
    started = time.perf_counter()
    source = start_source(config, spec)
    start_stamp = source_stamp(source)
    module = stage_module(config, spec, source)
    held_out = heldout_dataset(config, spec)
    rank_zero = is_rank_zero()  # the other ranks of a DDP run only train
    conditions, kinds = (degraded_conditions(module, held_out)
                         if spec.first_frame_degradation and rank_zero else (None, None))
    before = measure(module, held_out, conditions, detailed=False) if rank_zero else {}
    curve = None
    if settings.curve_every > 0 and rank_zero:
        curve = HeldoutCurve(held_out, conditions, settings.curve_every, before, spec.name)
        callbacks = (*callbacks, curve)

    train_records = stage_records(config, spec, ("train",))
    module.transformer.train()
    fitted = fit_step(
        config, spec.name, module,
        [Phase(config.video.clip_frames, settings.steps, settings.batch_size)],
        lambda: StageDataset(config, train_records, spec.inputs(
            config.model.condition_encoding, config.model.sparse_control)),
        stamp={"stage": dataclasses.asdict(settings), "model": dataclasses.asdict(config.model),
               "base": dataclasses.asdict(config.training.base),
               "video": dataclasses.asdict(config.video), "seed": config.training.trainer.seed,
               "start": files_stamp(source), "data": data_stamp(config)},
        run_name=spec.name, tags={"longvie.step": spec.name, **(tags or {})},
        log_mlflow=log_mlflow, progress=progress, callbacks=callbacks,
        hyperparams=flatten(dataclasses.asdict(config)))
    steps, train_seconds, logger = fitted.steps, fitted.seconds, fitted.logger
    if not rank_zero:  # rank 0 measures, saves, reports and registers the one model
        return {"stage": spec.name, "steps": steps, "rank_zero": False}
    after = measure(module, held_out, conditions)

    out_dir = save_stage_model(model_dir(config, spec.name), spec.name, module.transformer,
                               source, base_changed=spec.trains_base_attention,
                               extra={"started_from": source,
                                      "started_from_stamp": start_stamp})
    reports = Path(config.paths.reports)
    pictures = stage_pictures(module, held_out, curve, reports, key, config.video.fps)
    heldout = {f"loss_{name}": value for name, value in after.items()}
    heldout |= {f"loss_{name}_{spec.previous}": value for name, value in before.items()}
    heldout["clips"] = len(held_out)
    if kinds is not None:
        heldout["degradations"] = kinds
    report = {
        "stage": spec.name,
        "steps": steps,
        "seconds": round(time.perf_counter() - started, 2),
        "train_seconds": round(train_seconds, 2),
        "train_clips": len(train_records),
        "started_from": source,
        "heldout": heldout,
        "final_loss": round(sum(module.losses[-50:]) / max(1, len(module.losses[-50:])), 5),
        "model": str(out_dir),
    }
    if curve is not None:
        report["heldout_curve"] = curve.points
    report_path = reports / f"train_{key}.json"
    reports.mkdir(parents=True, exist_ok=True)
    write_json_atomically(report_path, report)
    if logger is not None:
        report["mlflow"] = _log_outcome(config, logger, spec, report, out_dir, pictures,
                                        report_path)
        write_json_atomically(report_path, report)
    return report


def heldout_dataset(config: LongvieConfig, spec: StageSpec):
    """The stage's held-out clips (validation and benchmark splits), always with their real
    first frames: the degraded-frame comparison degrades them."""

    inputs = dataclasses.replace(
        spec.inputs(config.model.condition_encoding, config.model.sparse_control),
        first_frame=True)
    clips = stage_records(config, spec, ("val", "benchmark"))
    return StageDataset(config, clips[: getattr(config.training, spec.name).heldout_clips], inputs)


def stage_module(config: LongvieConfig, spec: StageSpec, source: str):
    """The stage's LightningModule over the model folder ``source`` (seeded, as every stage)."""
    import lightning as L

    L.seed_everything(config.training.trainer.seed, workers=True, verbose=False)
    parts = load_generator(source, config.model, with_controller=True)
    if config.training.trainer.gradient_checkpointing:
        parts.transformer.base.enable_gradient_checkpointing()
    base = config.training.base
    return ControllerModule(spec, getattr(config.training, spec.name), parts.transformer,
                            parts.text_encoder, parts.vae, base.shift, base.caption_dropout,
                            config.training.trainer.seed, config.model.condition_encoding,
                            config.model.sparse_control)


def stage_pictures(module, held_out, curve, reports: Path, key: str, fps: int) -> list[Path]:
    """The loss curve, a held-out sample GIF and the held-out curve (when one was taken)."""

    pictures = [plot_losses(module.losses, reports / f"train_{key}_loss.png",
                            f"stage {key}: training loss")] if module.losses else []
    gif = write_sample_gif(module, held_out, reports / f"train_{key}_sample.gif", fps)
    pictures += [gif] if gif is not None else []
    if curve is not None:
        pictures += write_curve(curve.points, reports / f"train_{key}_curve.png",
                                f"stage {key}: held-out loss while training")[:1]
    return pictures


def _log_outcome(config, logger, spec, report, out_dir, pictures, report_path) -> dict:
    client = logger.experiment
    for name, value in report["heldout"].items():
        if isinstance(value, float):
            client.log_metric(logger.run_id, f"{spec.name}/heldout/{name}", value)
    return log_and_register(config, logger.run_id, out_dir, spec.name, report["steps"], pictures,
                            report_path)

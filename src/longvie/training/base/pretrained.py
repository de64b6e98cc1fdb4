"""``longvie train stage=base`` with ``model.pretrained`` set: load the base, don't train it.

The same path for every profile: ``wan14b`` loads Wan2.1-I2V-14B from its hub id or a local copy,
``tiny`` the shipped ``weights/tiny-base`` made by ``longvie pretrain``. The folder is checked
before anything else (:func:`longvie.model.pretrained.check_pretrained`), every part is loaded
with ``from_pretrained``, the latents of every curated clip and its controls are cached with the
base's VAE, the held-out flow-matching loss is measured, and the base becomes a version of the
registered model with its provenance (source, corpus version, pretraining command and steps).
Loading the same base again registers nothing new.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from longvie.atomic import replace_directory, write_json_atomically
from longvie.config import LongvieConfig
from longvie.errors import LongvieError
from longvie.model.pretrained import (
    architecture_mismatches,
    check_pretrained,
    is_hub_id,
    provenance,
)
from longvie.registry import log_and_register
from longvie.tracking import ensure_experiment, standard_tags, tracking_client

STEP_NAME = "base"


def base_fingerprint(source: str) -> str:
    """md5 over the folder's files (a hub id stands for itself)."""
    import hashlib

    if is_hub_id(source):
        return source
    digest = hashlib.md5()
    for path in sorted(p for p in Path(source).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(source)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def registered_base(config: LongvieConfig, fingerprint: str) -> int | None:
    """The version that already holds this base, if any."""
    from mlflow.exceptions import MlflowException

    client = tracking_client(config)
    try:
        versions = client.search_model_versions(f"name='{config.mlflow.registered_model}'")
    except MlflowException:
        return None
    held = [int(v.version) for v in versions
            if v.tags.get("longvie.stage") == "base"
            and v.tags.get("longvie.pretrained_md5") == fingerprint]
    return max(held, default=None)


def load_base(config: LongvieConfig, progress: bool = True, log_mlflow: bool = True,
              tags: dict[str, str] | None = None) -> dict:
    """Check, load, cache latents, measure and register the pretrained base."""

    source = config.model.pretrained
    check_pretrained(source, config.model)
    started = time.perf_counter()
    from dataclasses import asdict

    from longvie.model.folder import load_generator
    from longvie.training.base.run import heldout_loss
    from longvie.training.clips import clip_records
    from longvie.training.latents import LatentDataset, encode_clips

    generator = load_generator(source, config.model, with_controller=False)
    problems = (architecture_mismatches("transformer", dict(generator.transformer.base.config),
                                        asdict(config.model.transformer))
                + architecture_mismatches("vae", dict(generator.vae.config),
                                          asdict(config.model.vae)))
    if problems:
        raise LongvieError(f"model.pretrained={source!r} is another architecture than the "
                           "profile's config:\n  " + "\n  ".join(problems))
    encoded = encode_clips(config, source, progress)
    held_out = LatentDataset(config, clip_records(config, ("val", "benchmark"), with_controls=True)
                             [: config.training.base.heldout_clips])
    loss = heldout_loss(generator.transformer.base, generator.text_encoder, held_out,
                        config.training.base.shift)
    made = provenance(source)
    report = {
        "steps": 0,
        "pretrained": source,
        "provenance": made,
        "seconds": round(time.perf_counter() - started, 2),
        "latents": encoded,
        "heldout": {"flow_matching_loss": round(loss, 5), "clips": len(held_out)},
        "model": source,
    }
    write_pointer(config, source, made)
    report_path = Path(config.paths.reports) / "train_base.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    if log_mlflow:
        report["mlflow"] = register_base(config, source, made, report, tags,
                                         hub=is_hub_id(source))

    write_json_atomically(report_path, report)
    return report


def write_pointer(config: LongvieConfig, source: str, made: dict) -> Path:
    """``models/base/model/longvie.json`` naming the loaded base: what a from-scratch base
    would put there is the weights; here it records where they are (a folder without its own
    parts loads them from its ``base``, as a stage folder over a hub base does)."""

    folder = Path(config.paths.models) / STEP_NAME / "model"
    staging = folder.with_name(".model.partial")
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "longvie.json").write_text(json.dumps(
        {"stage": "base", "base": str(source), "pretrain": made}, indent=2) + "\n")
    replace_directory(staging, folder)
    return folder


def register_base(config: LongvieConfig, source: str, made: dict, report: dict,
                  tags: dict[str, str] | None, hub: bool) -> dict:
    """One MLflow run for this load; a model version for a base not registered before (a hub
    base is registered as a folder whose ``longvie.json`` names the hub id)."""

    ensure_experiment(config)
    fingerprint = base_fingerprint(source)
    provenance_tags = {
        "longvie.pretrained": source, "longvie.pretrained_md5": fingerprint,
        **{f"longvie.pretrain.{key}": str(made[key]) for key in
           ("command", "corpus_version", "vae_steps", "dit_steps", "train_seconds") if key in made},
    }
    client = tracking_client(config)
    experiment = client.get_experiment_by_name(config.mlflow.experiment)
    run = client.create_run(experiment.experiment_id, run_name="base/pretrained", tags={
        **standard_tags(config), "longvie.step": "base", "longvie.part": "pretrained",
        **provenance_tags, **(tags or {})})
    run_id = run.info.run_id
    try:
        client.log_metric(run_id, "base/heldout/flow_matching_loss",
                          report["heldout"]["flow_matching_loss"])
        existing = registered_base(config, fingerprint)
        if existing is not None:
            result = {"run_id": run_id, "registered_model": config.mlflow.registered_model,
                      "version": existing, "reused": True}
        else:
            with tempfile.TemporaryDirectory(prefix="longvie-base-") as scratch:
                folder = Path(source)
                if hub:
                    folder = Path(scratch) / "model"
                    folder.mkdir()
                    (folder / "longvie.json").write_text(
                        json.dumps({"stage": "base", "base": source}, indent=2) + "\n")
                result = log_and_register(config, run_id, folder, "base", 0,
                                          extra_tags=provenance_tags)
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return result

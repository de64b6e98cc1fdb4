"""``longvie pretrain``: the tiny base, pretrained once and shipped like Wan's weights.

LongVie fine-tunes a pretrained Wan2.1-I2V-14B and never trains its base. The CPU profiles get the
same shape: this command renders a corpus of its own (``paths.pretrain``, tracked by
``pretrain.dvc``), trains the VAE on it, then the I2V DiT with its caption encoder, each a
resumable Lightning run and an MLflow run, and writes a diffusers-format folder
(``pretrain.output``; tiny: ``weights/tiny-base``)::

    transformer/   config.json + diffusion_pytorch_model.safetensors (WanTransformer3DModel)
    vae/           config.json + diffusion_pytorch_model.safetensors (AutoencoderKLWan)
    text_encoder/  config.json + model.safetensors + vocab.json (the caption encoder)
    longvie.json   how it was made: command, corpus version, steps, seconds, held-out figures

that ``model.pretrained`` loads through ``from_pretrained`` exactly as ``wan14b`` loads
``Wan-AI/Wan2.1-I2V-14B-480P-Diffusers``. Killed at any point, the same command continues.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
import time
from pathlib import Path

from longvie.atomic import replace_directory, write_json_atomically
from longvie.config import LongvieConfig
from longvie.data_version import record_data
from longvie.model.pretrained import provenance
from longvie.plots import write_frame_strip, write_gif
from longvie.step_lock import locked_step
from longvie.tracking import tracking_client
from longvie.training.clips import to_frames
from longvie.training.pretrain.corpus_clips import heldout_clips
from longvie.training.sampling import phases_from, total_steps

CORPUS_DVC_FILE = "pretrain.dvc"
META = "longvie.json"


def render_and_record_corpus(config: LongvieConfig, progress: bool = True) -> dict:
    """Render (or reuse) the corpus and record it in ``pretrain.dvc`` when the root is a DVC
    project; the report carries the corpus version (its DVC md5, else the manifest's)."""
    from longvie.synth.corpus import corpus_folder, render_corpus

    report = render_corpus(config.synth, config.pretrain.corpus, config.paths.pretrain, progress)
    root = Path(config.paths.root)
    version = None
    pretrain_dir = Path(config.paths.pretrain).resolve()
    if pretrain_dir == (root / "data" / "pretrain").resolve():
        version = record_data(root, CORPUS_DVC_FILE)
    manifest = json.loads((corpus_folder(config.paths.pretrain) / "manifest.json").read_text())
    report["version"] = version or f"manifest:{manifest['fingerprint'][:16]}"
    report["fingerprint"] = manifest["fingerprint"]
    return report


@locked_step("pretrain", writes=lambda c: [c.paths.pretrain, c.paths.models, c.paths.reports,
                                           str(Path(c.pretrain.output).parent),
                                           str(Path(c.pretrain.control.output).parent)],
             tracked=lambda call: call.arguments.get("log_mlflow", True))
def pretrain(config: LongvieConfig, progress: bool = True, log_mlflow: bool = True,
             tags: dict[str, str] | None = None, command: str | None = None) -> dict:
    """The corpus, then the parts of ``pretrain.parts`` (``base``: VAE + DiT -> ``output``;
    ``control``: DiT + controller over it -> ``control.output``), and ``reports/pretrain.json``."""

    started = time.perf_counter()
    corpus = render_and_record_corpus(config, progress)
    report = {
        "command": command or " ".join(["longvie pretrain", *map(shlex.quote, sys.argv[2:])]),
        "profile": config.profile_name,
        "corpus": {k: corpus[k] for k in ("version", "videos", "frames", "out_dir")},
        "parts": list(config.pretrain.parts),
    }
    if "base" in config.pretrain.parts:
        report |= pretrain_base(config, corpus, report, progress, log_mlflow, tags)
    if "control" in config.pretrain.parts:
        report["control"] = pretrain_controlled(config, corpus, report, progress, log_mlflow,
                                                tags)
    report["seconds_this_run"] = round(time.perf_counter() - started, 2)
    report_path = Path(config.paths.reports) / "pretrain.json"
    write_json_atomically(report_path, report)
    if log_mlflow:
        runs = [report.get("vae", {}).get("l1_vae", {}).get("mlflow_run_id"),
                report.get("vae", {}).get("mlflow_run_id"),
                report.get("dit", {}).get("mlflow_run_id"),
                report.get("control", {}).get("decoder", {}).get("mlflow_run_id"),
                report.get("control", {}).get("mlflow_run_id")]
        pictures = [Path(p) for p in [*report.get("pictures", {}).values(),
                                      *report.get("control", {}).get("pictures", {}).values()]]
        log_artifacts(config, runs, [report_path, *pictures])
    return report


def pretrain_base(config: LongvieConfig, corpus: dict, report: dict, progress: bool,
                  log_mlflow: bool, tags: dict[str, str] | None) -> dict:
    """VAE (+ its adversarial decoder), DiT and caption encoder -> ``pretrain.output``."""
    from longvie.synth.corpus import corpus_folder
    from longvie.training.pretrain.dit import pretrain_dit
    from longvie.training.pretrain.vae import pretrain_vae

    heldout = heldout_clips(config)
    folder = corpus_folder(config.paths.pretrain)
    vae = pretrain_vae(config, folder, corpus["fingerprint"], heldout, progress, log_mlflow, tags)
    if total_steps(phases_from(config.pretrain.vae.adversarial.phases)) > 0:
        from longvie.training.pretrain.vae_gan import pretrain_vae_gan

        l1_vae = vae
        vae = pretrain_vae_gan(config, folder, corpus["fingerprint"], Path(l1_vae["model"]),
                               heldout, progress, log_mlflow, tags)
        vae["l1_vae"] = l1_vae
        vae["steps"] += l1_vae["steps"]
        vae["train_seconds"] = (vae["train_seconds"] or 0) + (l1_vae["train_seconds"] or 0)
    dit = pretrain_dit(config, folder, corpus["fingerprint"], heldout, Path(vae["model"]),
                       progress, log_mlflow, tags)
    samples = dit.pop("_samples")
    pictures = write_pictures(config, heldout, Path(vae["model"]), samples)
    out_dir = Path(config.pretrain.output)
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_vae(config, Path(vae["model"]), staging / "vae")
    for part in ("transformer", "text_encoder"):
        shutil.copytree(Path(dit["model"]) / part, staging / part)
    part = {
        "vae": vae,
        "dit": dit,
        "seconds_training": round((vae["train_seconds"] or 0) + (dit["train_seconds"] or 0), 2),
        "output": str(out_dir),
        "pictures": {name: str(path) for name, path in pictures.items()},
    }
    (staging / META).write_text(json.dumps({"stage": "base", "pretrain": _meta(report | part)},
                                           indent=2) + "\n")
    replace_directory(staging, out_dir)
    return part


def pretrain_controlled(config: LongvieConfig, corpus: dict, report: dict, progress: bool,
                        log_mlflow: bool, tags: dict[str, str] | None) -> dict:
    """DiT + dual controller over the base at ``pretrain.output`` -> ``pretrain.control.output``,
    with its picture and what it records about itself."""
    from longvie.training.pretrain.control import pretrain_control

    decoder = None
    if total_steps(phases_from(config.pretrain.control.decoder.phases)) > 0:
        decoder = pretrain_control_decoder(config, corpus, progress, log_mlflow, tags)
    part = pretrain_control(config, corpus["fingerprint"], progress, log_mlflow, tags,
                            decoder_dir=Path(decoder["model"]) if decoder else None)
    if decoder is not None:
        part["decoder"] = decoder
    samples = part.pop("_samples")
    part["pictures"] = {name: str(path) for name, path in
                        write_control_pictures(config, samples).items()}
    meta_path = Path(part["model"]) / META
    meta = json.loads(meta_path.read_text())
    meta["pretrain"] = {
        "command": report["command"],
        "profile": report["profile"],
        "corpus_version": report["corpus"]["version"],
        "corpus_clips": part["corpus_clips"],
        "base": provenance(config.pretrain.output),
        "steps": part["steps"],
        "train_seconds": part["train_seconds"],
        "sparse_control": part["sparse_control"],
        "heldout": part["heldout"],
    }
    if decoder is not None:
        meta["pretrain"]["decoder"] = {key: decoder[key] for key in
                                       ("steps", "train_seconds", "weight", "heldout")}

    write_json_atomically(meta_path, meta)
    return part


def pretrain_control_decoder(config: LongvieConfig, corpus: dict, progress: bool,
                             log_mlflow: bool, tags: dict[str, str] | None) -> dict:
    """The base VAE's decoder fine-tuned further (``pretrain.control.decoder``), for the control
    weights' ``vae/``: a run of its own, resumable like the others."""
    from longvie.synth.corpus import corpus_folder
    from longvie.training.pretrain.vae_gan import pretrain_vae_gan

    return pretrain_vae_gan(config, corpus_folder(config.paths.pretrain), corpus["fingerprint"],
                            Path(config.pretrain.output) / "vae", heldout_clips(config), progress,
                            log_mlflow, tags, settings=config.pretrain.control.decoder,
                            step_name="pretrain_control_decoder", part="control_decoder")


def save_vae(config: LongvieConfig, source: Path, target: Path) -> None:
    """The VAE with its true spatial factor in its config (diffusers' default says 8: pipelines
    size latents by it)."""
    from diffusers import AutoencoderKLWan

    vae = AutoencoderKLWan.from_pretrained(source)
    settings = config.model.vae
    spatial = (settings.patch_size or 1) * 2 ** (len(settings.dim_mult) - 1)
    vae.register_to_config(scale_factor_spatial=spatial)
    vae.save_pretrained(target)


def write_pictures(config: LongvieConfig, heldout: list[dict], vae_dir: Path,
                   generated: list) -> dict[str, Path]:
    """reference | VAE reconstruction | generated for one held-out clip per benchmark video: a
    PNG of every other frame and an animated GIF."""
    import numpy as np
    from diffusers import AutoencoderKLWan

    from longvie.training.pretrain.vae import reconstruct

    per_video = max(1, config.pretrain.heldout_clips_per_video)
    picks = list(range(0, len(heldout), per_video))
    vae = AutoencoderKLWan.from_pretrained(vae_dir).eval()
    references = [to_frames(heldout[i]["video"].unsqueeze(0)) for i in picks]
    reconstructed = reconstruct(vae, [heldout[i]["video"] for i in picks])
    samples = [generated[i] for i in picks]
    labels, videos = [], []
    for number, (ref, rec, gen) in enumerate(zip(references, reconstructed, samples,
                                                 strict=True)):
        labels += [f"reference {number}", f"VAE {number}", f"generated {number}"]
        videos += [ref, rec, gen]
    reports = Path(config.paths.reports)
    strip = write_frame_strip(reports / "pretrain_samples.png", labels, videos, every=2,
                              columns=9)
    frames = [np.concatenate([np.concatenate([ref[t], rec[t], gen[t]], axis=1)
                              for ref, rec, gen in zip(references, reconstructed, samples,
                                                       strict=True)], axis=0)
              for t in range(len(references[0]))]
    gif = write_gif(reports / "pretrain_sample.gif", frames, config.video.fps)
    return {"strip": strip, "gif": gif}


def write_control_pictures(config: LongvieConfig, shown: dict) -> dict[str, Path]:
    """Three held-out clips (one per benchmark video where there are enough), each as rows of
    reference | depth control | sparse control | static | controls only | generated (the sparse
    control left out where it is the controls-only video): a PNG of every other frame and an
    animated GIF of the rows side by side."""
    import numpy as np

    per_video = max(1, config.pretrain.heldout_clips_per_video)
    count = len(shown["reference"])
    picks = list(range(0, count, per_video))[:3] or [0]
    generated = next(k for k in shown if k.startswith("generated"))
    rows = [("reference", "reference"), ("depth", "depth"), ("sparse", "sparse control"),
            ("static", "static"), ("controls_only", "controls only"), (generated, "generated")]
    if config.model.sparse_control == "first_frame":  # the sparse control is controls-only
        rows.remove(("sparse", "sparse control"))
    labels, videos = [], []
    for number, index in enumerate(picks):
        for key, label in rows:
            labels.append(f"{label} {number}")
            videos.append(shown[key][index])
    reports = Path(config.paths.reports)
    strip = write_frame_strip(reports / "pretrain_control_samples.png", labels, videos, every=2,
                              columns=9)
    frames = [np.concatenate([np.concatenate([shown[key][i][t] for key, _ in rows], axis=1)
                              for i in picks], axis=0)
              for t in range(len(shown["reference"][0]))]
    gif = write_gif(reports / "pretrain_control_sample.gif", frames, config.video.fps)
    return {"strip": strip, "gif": gif}


def log_artifacts(config: LongvieConfig, run_ids: list[str | None], paths: list[Path]) -> None:
    """The report and pictures on every part's MLflow run (each run then tells the whole story)."""

    client = tracking_client(config)
    for run_id in filter(None, run_ids):
        for path in paths:
            client.log_artifact(run_id, str(path), artifact_path="pretrain")


def _meta(report: dict) -> dict:
    """What the shipped folder records about itself (no machine paths)."""
    return {
        "command": report["command"],
        "profile": report["profile"],
        "corpus_version": report["corpus"]["version"],
        "corpus_videos": report["corpus"]["videos"],
        "vae_steps": report["vae"]["steps"],
        "dit_steps": report["dit"]["steps"],
        "train_seconds": report["seconds_training"],
        "heldout": {"vae": report["vae"]["heldout"], "dit": report["dit"]["heldout"]},
    }

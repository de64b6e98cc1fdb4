"""The step functions both entry points call: the CLI (cli.py) and the Dagster assets
(orchestration/), so neither imports the other."""

from __future__ import annotations

import base64
from pathlib import Path

from longvie.config import LongvieConfig
from longvie.data_version import record_raw_data
from longvie.errors import LongvieError
from longvie.step_lock import locked_step
from longvie.training.base.pretrained import load_base


def synth(config: LongvieConfig) -> int:
    from longvie.synth import render_dataset

    report = render_dataset(config)
    state = "already rendered" if report["skipped"] else f"rendered in {report['seconds']:.1f} s"
    print(
        f"synth: {report['videos']} videos, {report['frames']} frames "
        f"({report['video_seconds']:.0f} s of video) {state} -> {report['out_dir']}"
    )
    data_hash = record_raw_data(Path(config.paths.root))
    if data_hash:
        print(f"synth: data.dvc now tracks data/raw at md5 {data_hash}")
    return 0


TRAIN_STAGES = ("base", "1", "2", "3")


@locked_step(lambda call: f"train_{call.arguments['stage']}",
             writes=lambda c: [c.paths.models, c.paths.reports], tracked=True)
def train_report(config: LongvieConfig, stage: str, progress: bool = True,
                 tags: dict[str, str] | None = None) -> dict:
    """Train ``stage`` (base, 1, 2 or 3) and return its report (``reports/train_<stage>.json``)."""
    if stage not in TRAIN_STAGES:
        raise LongvieError(f"stage={stage!r}: choose one of {', '.join(TRAIN_STAGES)}")
    if stage == "base" and config.model.pretrained:

        return load_base(config, progress=progress, tags=tags)
    if stage == "base":
        from longvie.training.base.run import train_base

        return train_base(config, progress=progress, tags=tags)
    from longvie.training.stages.run import train_stage

    return train_stage(config, stage, progress=progress, tags=tags)


def training_metadata(config: LongvieConfig, stage: str, report: dict) -> dict[str, dict]:
    """The Dagster materialisation metadata of a training report, in Dagster Pipes' wire format
    (``{"raw_value": ..., "type": ...}``, plain JSON): a `longvie train` launched through Pipes
    sends it as is, the in-process training asset converts it (orchestration.launch), so both
    paths report the same keys."""

    def typed(kind: str, value) -> dict:
        value = float(value) if kind == "float" else int(value) if kind == "int" else value
        return {"raw_value": value, "type": kind}

    metadata = {"model": typed("path", report["model"])}
    if stage == "base" and "pretrained" in report:
        metadata |= {
            "pretrained": typed("text", report["pretrained"]),
            "heldout_flow_matching_loss":
                typed("float", report["heldout"]["flow_matching_loss"]),
            **{f"pretrain_{key}": typed("text", str(value))
               for key, value in report["provenance"].items() if key != "heldout"},
        }
    elif stage == "base":
        held_out = report["heldout"]
        metadata |= {
            "dit_steps": typed("int", report["steps"]),
            "vae_steps": typed("int", report["vae"]["steps"]),
            "vae_heldout_psnr_db": typed("float", report["vae"]["heldout_psnr_db"]),
            "heldout_flow_matching_loss": typed("float", held_out["flow_matching_loss"]),
            "heldout_flow_matching_loss_at_init":
                typed("float", held_out["flow_matching_loss_at_init"]),
        }
    else:
        table = "\n".join(["| held-out loss | value |", "| --- | --- |"] + [
            f"| {name.removeprefix('loss_')} | {value:.5f} |"
            for name, value in report["heldout"].items() if name.startswith("loss_")
        ])
        metadata |= {
            "steps": typed("int", report["steps"]),
            "train_seconds": typed("float", report["train_seconds"]),
            "final_training_loss": typed("float", report["final_loss"]),
            "heldout": typed("md", table),
        }
        curve = Path(config.paths.reports) / f"train_{stage}_loss.png"
        if curve.is_file():
            encoded = base64.b64encode(curve.read_bytes()).decode()
            metadata["loss_curve"] = typed("md", f"![loss](data:image/png;base64,{encoded})")
    metadata["seconds"] = typed("float", report["seconds"])
    if "mlflow" in report:
        # The Dagster side turns the id into a link to the MLflow UI (MlflowResource.run_link).
        metadata["mlflow_run_id"] = typed("text", report["mlflow"]["run_id"])
        metadata["registered_version"] = typed("int", report["mlflow"]["version"])
    return metadata


def synth_default_data(config: LongvieConfig) -> None:
    """Render the profile's default videos into data/raw, if it has any (`dvc pull`'s stand-in)."""
    if config.synth.train_videos or config.synth.benchmark_videos:
        synth(config)

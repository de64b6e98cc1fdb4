"""``longvie <command> [hydra overrides]``: the thin command-line face of the pipeline steps.

The configuration is composed and validated before any command runs, so a misspelt or ill-typed
override fails at once. Heavy libraries are imported by the command that needs them.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from longvie.config import ConfigError, LongvieConfig, compose
from longvie.errors import LongvieError
from longvie.step_lock import locked_step


def _synth(config: LongvieConfig) -> int:
    from longvie.data_version import record_raw_data
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


def _curate(config: LongvieConfig) -> int:
    from longvie.curation import curate

    print_curation_summary(curate(config))
    return 0


def _depth_estimator(config: LongvieConfig) -> int:
    from longvie.controls.depth_estimator import train_depth_estimator

    report = train_depth_estimator(config)
    if report["skipped"]:
        print(f"depth-estimator: up to date ({config.controls.depth.model})")
    else:
        print(
            f"depth-estimator: {report['steps']} steps on {report['train_frames']} frames, "
            f"loss {report['first_loss']:.3f} -> {report['final_loss']:.3f}, "
            f"{report['seconds']:.1f} s -> {report['model']}"
        )
    return 0


def _controls(config: LongvieConfig) -> int:
    from longvie.controls.report import log_controls_run
    from longvie.controls.run import extract_controls

    report = extract_controls(config)
    log_controls_run(config, report)
    print_controls_summary(report)
    if report["failed"]:
        print(f"longvie controls: {len(report['failed'])} of {report['videos']} videos failed "
              "(above); the others are done", file=sys.stderr)
        return 1
    return 0


def _pretrain(config: LongvieConfig) -> int:
    from longvie.training.pretrain import pretrain

    report = pretrain(config)
    print(f"pretrain: corpus {report['corpus']['videos']} videos (version "
          f"{report['corpus']['version']}), parts: {', '.join(report['parts'])}")
    if "vae" in report:
        vae, dit = report["vae"]["heldout"], report["dit"]["heldout"]
        print(f"  base: VAE {report['vae']['steps']} steps, DiT {report['dit']['steps']} steps, "
              f"{report['seconds_training']:.0f} s of training -> {report['output']}")
        print(f"  VAE on held-out benchmark clips: PSNR {vae['psnr_db']:.2f} dB, SSIM "
              f"{vae['ssim']:.3f}, sharpness ratio {vae['sharpness_ratio']:.2f}")
        print(f"  generated from held-out first frames: sharpness ratio "
              f"{dit['generated']['sharpness_ratio']:.2f}, SSIM {dit['generated']['ssim']:.3f}, "
              f"flow-matching loss {dit['flow_matching_loss']:.4f}")
    if "control" in report:
        _print_control(report["control"])
    return 0


def _print_control(control: dict) -> None:
    heldout = control["heldout"]
    generated = heldout["generated"]
    print(f"  control: DiT + controller {control['steps']} steps, "
          f"{control['train_seconds'] or 0:.0f} s of training -> {control['model']}")
    print(f"  held-out loss with controls / zeroed: "
          f"{heldout['loss_ratio_controls_vs_zeroed']:.3f}")
    if "decoder" in control:
        decoder = control["decoder"]
        print(f"  decoder: {decoder['steps']} adversarial steps (weight {decoder['weight']:g}), "
              f"{decoder['train_seconds'] or 0:.0f} s -> vae/ (round trip sharpness "
              f"{decoder['heldout']['sharpness_ratio']:.2f}, PSNR "
              f"{decoder['heldout']['psnr_db']:.2f} dB on corpus clips)")
    rows = [("static", generated["static"]), ("controls only", generated["controls_only"]),
            ("VAE round trip", generated["vae_reconstruction"])]
    rows += [(name.replace("_", " "), figures) for name, figures in generated.items()
             if name.startswith("guidance_")]
    for name, figures in rows:
        print(f"  {name:>14}: SSIM {figures['ssim']:.3f}, PSNR {figures['psnr_db']:.2f} dB, "
              f"sharpness ratio {figures['sharpness_ratio']:.2f}, track EPE "
              f"{figures['track_epe_px'] or float('nan'):.2f} px")


TRAIN_STAGES = ("base", "1", "2", "3")


@locked_step(lambda call: f"train_{call.arguments['stage']}",
             writes=lambda c: [c.paths.models, c.paths.reports], tracked=True)
def train_report(config: LongvieConfig, stage: str, progress: bool = True,
                 tags: dict[str, str] | None = None) -> dict:
    """Train ``stage`` (base, 1, 2 or 3) and return its report (``reports/train_<stage>.json``)."""
    if stage not in TRAIN_STAGES:
        raise LongvieError(f"stage={stage!r}: choose one of {', '.join(TRAIN_STAGES)}")
    if stage == "base" and config.model.pretrained:
        from longvie.training.base_pretrained import load_base

        return load_base(config, progress=progress, tags=tags)
    if stage == "base":
        from longvie.training.base import train_base

        return train_base(config, progress=progress, tags=tags)
    from longvie.training.stage_run import train_stage

    return train_stage(config, stage, progress=progress, tags=tags)


def _train(config: LongvieConfig, stage: str) -> int:
    report = train_report(config, stage)
    if report.get("rank_zero", True):  # another DDP rank: rank 0 reports
        (print_base_summary if stage == "base" else print_stage_summary)(report)
    return 0


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


# dagster_pipes.DAGSTER_PIPES_CONTEXT_ENV_VAR: set in the environment of a process that a Dagster
# Pipes client launched (checked without importing dagster_pipes).
PIPES_CONTEXT_ENV = "DAGSTER_PIPES_CONTEXT"


def launched_by_pipes() -> bool:
    """True in the one process of a Pipes launch that reports to Dagster: rank 0. The other
    ranks (torchrun's, or those Lightning starts per GPU) inherit the Pipes environment but must
    not write to its message channel."""
    from longvie.ranks import is_rank_zero

    return PIPES_CONTEXT_ENV in os.environ and is_rank_zero()


def _train_through_pipes(overrides: list[str], stage: str) -> int:
    """`longvie train` as the child of a Dagster Pipes launch: the same training, with the
    materialisation (training_metadata), progress and errors reported to the Dagster step. An
    error is also sent as the custom message ``{"error": ...}``, which the launching asset turns
    into its failure (orchestration.launch)."""
    from dagster_pipes import open_dagster_pipes

    with open_dagster_pipes() as pipes:
        pipes.log.info(f"longvie train stage={stage}: started by Dagster Pipes in process "
                       f"{os.getpid()} with overrides {overrides}")
        try:
            config = compose(overrides)
            report = train_report(config, stage, progress=False,
                                  tags=pipes.extras.get("mlflow_tags"))
        except (ConfigError, LongvieError) as error:
            message = f"longvie train: {error}"
            print(message, file=sys.stderr)
            pipes.log.error(message)
            pipes.report_custom_message({"error": message})
            return 2 if isinstance(error, ConfigError) else 1
        except BaseException as error:
            # Unexpected: the traceback goes to stderr and to Pipes (closed with the exception).
            pipes.report_custom_message({"error": f"longvie train: {type(error).__name__}: "
                                                  f"{error}"})
            raise
        pipes.report_asset_materialization(metadata=training_metadata(config, stage, report))
        pipes.log.info(f"longvie train stage={stage}: {report['steps']} steps in "
                       f"{report['seconds']:.1f} s -> {report['model']}")
    return 0


def synth_default_data(config: LongvieConfig) -> None:
    """Render the profile's default videos into data/raw, if it has any (`dvc pull`'s stand-in)."""
    if config.synth.train_videos or config.synth.benchmark_videos:
        _synth(config)


def _pipeline(config: LongvieConfig) -> int:
    """The main job so far: render the default data when the profile has any, curate, controls,
    then train the base and the three controller stages."""
    synth_default_data(config)
    _curate(config)
    if config.controls.depth.kind == "longvie":
        _depth_estimator(config)
    _controls(config)
    for stage in TRAIN_STAGES:
        _train(config, stage)
    _benchmark(config)
    return _promote(config)


def _benchmark(config: LongvieConfig) -> int:
    from longvie.benchmark.run import run_benchmark

    print_benchmark_summary(run_benchmark(config))
    return 0


def _promote(config: LongvieConfig) -> int:
    from longvie.promotion.run import promote_from_benchmark

    print_promotion(promote_from_benchmark(config))
    return 0


def print_promotion(report: dict) -> None:
    previous = report["previous_champion"]
    print(f"promote: version {report['candidate_version']} -> {report['decision']} "
          f"(previous champion: {previous if previous is not None else 'none'})")
    for reason in report["reasons"]:
        print(f"  {reason}")
    if report.get("comparisons"):
        print(f"  wins need more than k = {report['k_standard_errors']:g} standard errors over "
              "seeds:")
    for c in report.get("comparisons", []):
        print(f"    {'win ' if c['won'] else 'no  '} {c['metric']:<20} vs {c['against']:<9} "
              f"{c['difference']:+.4g} (needs > {c['needed']:.3g})")


def _serve(config: LongvieConfig) -> int:
    from longvie.serving.server import serve

    serve(config)  # replaces this process with the MLflow scoring server
    return 0


def _generate(config: LongvieConfig) -> int:
    from longvie.generation.run import generate

    report = generate(config)
    per_clip = report["seconds_per_clip"]
    print(f"generate: {report['frames']} frames in {report['clips']} clips from "
          f"{report['source']} with {report['model']}, {report['seconds']:.1f} s "
          f"({sum(per_clip) / len(per_clip):.2f} s per clip) -> {report['output']}")
    return 0


def _models(config: LongvieConfig) -> int:
    from longvie.catalog import BENCHMARK_FIGURES, format_table, model_rows

    rows = model_rows(config)
    if not rows:
        print(f"models: nothing registered as {config.mlflow.registered_model!r} yet: "
              "`make run` or `longvie pipeline` trains and registers a model")
        return 0
    header = ["version", "stage", "steps", "aliases", "decision",
              *(f"benchmark {f}" for f in BENCHMARK_FIGURES)]
    print(format_table(header, [
        [r.version, r.stage or "-", r.steps or "-", ",".join(r.aliases) or "-", r.decision or "-",
         *(f"{r.benchmark[f]:.4g}" if f in r.benchmark else "-" for f in BENCHMARK_FIGURES)]
        for r in rows]))
    return 0


def _sources(config: LongvieConfig) -> int:
    from longvie.catalog import format_table, source_rows

    rows = source_rows(config)
    print(format_table(["source", "split", "clips", "seconds", "caption"],
                       [[r.source_id, r.split, r.clips, r.seconds,
                         r.caption if len(r.caption) <= 60 else r.caption[:59] + "…"]
                        for r in rows]))
    return 0


def _export_controls(config: LongvieConfig) -> int:
    from longvie.generation.control_export import export_controls

    paths = export_controls(config)
    print(f"export-controls: {config.generation.source} -> "
          + ", ".join(str(p) for p in paths.values()))
    return 0


def _show_config(config: LongvieConfig) -> int:
    from omegaconf import OmegaConf

    print(OmegaConf.to_yaml(OmegaConf.structured(config)))
    return 0


# `train` has no plain runner: it takes its `stage=` from the overrides (see main).
COMMANDS: dict[str, tuple[Callable[[LongvieConfig], int] | None, str]] = {
    "synth": (_synth, "render the default 3D-scene videos with ground truth into paths.raw"),
    "curate": (_curate, "shots -> filtered, resampled fixed-length clips + validated clip table"),
    "depth-estimator": (
        _depth_estimator,
        "train the small depth network of the estimated controls on rendered ground truth",
    ),
    "controls": (_controls, "dense depth + sparse point-map controls for every curated video"),
    "pipeline": (
        _pipeline,
        "the whole graph: synth (if the profile has data), curate, depth-estimator, controls, "
        "train base, 1, 2, 3, benchmark, promote",
    ),
    "pretrain": (
        _pretrain,
        "one-off, like downloading Wan weights: render the pretraining corpus, train the tiny "
        "VAE, then the I2V DiT + caption encoder; write pretrain.output (tiny: weights/tiny-base)",
    ),
    "train": (None, "train a stage: `longvie train stage=base|1|2|3` (base: VAE + DiT on tiny; "
              "1-3: the dual controller)"),
    "generate": (
        _generate,
        "a long video clip by clip: generation.source=<curated source> (or depth_video + "
        "point_map_video + first_frame), generation.model=champion|<version>|<folder>",
    ),
    "serve": (
        _serve,
        "the registered model (serving.model=champion|<version>) over REST with MLflow's "
        "scoring server on serving.host:serving.port (POST /invocations)",
    ),
    "benchmark": (
        _benchmark,
        "regenerate the held-out long videos with the candidate (benchmark.candidate, default the "
        "newest stage-3 version), the static and naive baselines and the champion; score them",
    ),
    "promote": (
        _promote,
        "the gate: the benchmarked candidate becomes champion or challenger (MLflow aliases, "
        "reports/promotion.json)",
    ),
    "models": (_models, "the registered model versions: stage, aliases (champion, challenger), "
               "the gate's decision and the benchmark figures"),
    "sources": (_sources, "the curated source ids (for generation.source=), their split, "
                "length and caption"),
    "export-controls": (
        _export_controls,
        "a source's depth and point-map controls as MP4 files (and side by side with the real "
        "frames) in outputs/controls/<source>/",
    ),
    "config": (_show_config, "print the composed, validated configuration"),
}

# Shown under each command's --help.
EXAMPLES: dict[str, list[str]] = {
    "synth": ["longvie synth", "longvie synth profile=smoke"],
    "curate": ["longvie curate", "longvie curate video.fps=4 profile=smoke"],
    "depth-estimator": ["longvie depth-estimator"],
    "controls": ["longvie controls", "longvie controls controls.depth_method=estimated"],
    "pipeline": ["longvie pipeline", "longvie pipeline profile=smoke paths.root=/tmp/try"],
    "pretrain": ["longvie pretrain"],
    "train": ["longvie train stage=base", "longvie train stage=1 training.stage1.steps=300"],
    "generate": ["longvie generate generation.source=<id from `longvie sources`>",
                 "longvie generate generation.model=2 generation.source=<id> "
                 "generation.output=outputs/mine.mp4",
                 "longvie generate generation.first_frame=frame.png "
                 "generation.depth_video=depth.mp4 generation.point_map_video=points.mp4"],
    "serve": ["longvie serve", "longvie serve serving.model=3 serving.port=5002"],
    "benchmark": ["longvie benchmark", "longvie benchmark benchmark.candidate=4 benchmark.seeds=1"],
    "promote": ["longvie promote"],
    "models": ["longvie models"],
    "sources": ["longvie sources"],
    "export-controls": ["longvie export-controls generation.source=<id from `longvie sources`>"],
    "config": ["longvie config", "longvie config profile=wan14b"],
}


def print_base_summary(report: dict) -> None:
    held_out = report["heldout"]
    if "pretrained" in report:
        made = report["provenance"]
        version = report.get("mlflow", {}).get("version")
        print(f"train base: loaded the pretrained base {report['pretrained']}"
              + (f" (made by `{made['command']}`, corpus {made['corpus_version']}, VAE "
                 f"{made['vae_steps']} + DiT {made['dit_steps']} steps)" if made else "")
              + f"; held-out flow-matching loss {held_out['flow_matching_loss']:.4f}"
              + (f"; longvie version {version}" if version else "")
              + f", {report['seconds']:.0f} s")
        return
    print(
        f"train base: VAE {report['vae']['steps']} steps (held-out PSNR "
        f"{report['vae']['heldout_psnr_db']} dB), DiT {report['steps']} steps, held-out "
        f"flow-matching loss {held_out['flow_matching_loss_at_init']:.4f} at init -> "
        f"{held_out['flow_matching_loss']:.4f}, {report['seconds']:.0f} s -> {report['model']}"
    )


def print_stage_summary(report: dict) -> None:
    """The stage's held-out comparison: each figure after training, and before (in brackets)."""
    held_out = report["heldout"]
    previous = report["stage"].replace("stage", "")
    figures = ", ".join(
        f"{name.removeprefix('loss_')} {value:.4f}"
        for name, value in held_out.items()
        if name.startswith("loss_") and isinstance(value, float)
    )
    version = report.get("mlflow", {}).get("version")
    print(f"train stage {previous}: {report['steps']} steps in {report['train_seconds']:.0f} s "
          f"(all {report['seconds']:.0f} s); held-out flow-matching loss: {figures}"
          + (f"; registered as longvie version {version}" if version else "")
          + f" -> {report['model']}")


# Rejected files listed by name under the curate summary (the rest are in rejected.parquet).
REJECTED_SHOWN = 10


def print_curation_summary(report: dict) -> None:
    print(
        f"curate: {report['videos_in']} videos in, {report['videos_curated']} curated, "
        f"{report['clips']} clips {json.dumps(report['clips_by_split'])}, "
        f"{len(report['rejected'])} rejected, {report['seconds']:.1f} s"
    )
    for reason, count in report["reasons_histogram"].items():
        print(f"  rejected {count:>3} x {reason}")
    shown = report["rejected"][:REJECTED_SHOWN]
    for row in shown:
        segment = f" {row['segment']}" if row.get("segment") else ""
        print(f"    {row['path']}{segment}: {row['reason']}")
    if len(report["rejected"]) > len(shown):
        print(f"    ... {len(report['rejected']) - len(shown)} more in "
              f"{report.get('rejected_table', 'rejected.parquet')}")


def print_controls_summary(report: dict) -> None:
    tracking, depth = report["tracking"], report["depth"]
    print(
        f"controls: {report['videos']} videos, {report['extracted']} extracted "
        f"({report['computed']} computed, {report['up_to_date']} up to date) "
        f"{json.dumps(report['by_kind'])}, {len(report['failed'])} failed, "
        f"{report['seconds']:.1f} s"
    )
    if tracking["points"]:
        print(
            f"  KLT vs ground truth on {tracking['videos']} held-out videos: median EPE "
            f"{tracking['median_epe_px']:.2f} px (zero motion {tracking['zero_motion_median_epe_px']:.2f}"
            f" px), visibility accuracy {tracking['visibility_accuracy']:.3f} "
            f"(always-visible {tracking['always_visible_accuracy']:.3f})"
        )
    if depth["pixels"]:
        print(
            f"  depth model vs ground truth: AbsRel {depth['abs_rel']:.3f}, delta1 "
            f"{depth['delta1']:.3f} (constant: {depth['constant_abs_rel']:.3f}, "
            f"{depth['constant_delta1']:.3f})"
        )
    for failure in report["failed"]:
        print(f"  failed {failure['path']}: {failure['reason']}")


BENCHMARK_ROWS = ("ssim", "psnr_db", "seam_discontinuity", "ssim_drift_slope", "ssim_vde",
                  "flicker", "dynamic", "sharpness_ratio", "track_epe_px", "depth_pearson")


def print_benchmark_summary(report: dict) -> None:
    models = report["models"]
    names = list(models)
    state = " (up to date: reused)" if report.get("up_to_date") else ""
    seeds = report.get("seeds", [0])
    spread = report.get("seed_sd", {})
    print(f"benchmark: candidate version {report['candidate_version']}, "
          f"{len(report['videos'])} videos, {len(seeds)} sampler seed(s), "
          f"{report['seconds']:.0f} s{state}")
    if len(seeds) > 1:
        print("  (frame-quality figures: mean ± standard deviation over the seeds)")
    print(f"  {'metric':<20}" + "".join(f"{name:>20}" for name in names))
    for metric in BENCHMARK_ROWS:
        cells = []
        for name in names:
            value, sd = models[name].get(metric), spread.get(name, {}).get(metric)
            text = "-" if value is None else format(value, ".5g")
            cells.append(text if sd is None else f"{text} ± {sd:.1g}")
        print(f"  {metric:<20}" + "".join(f"{cell:>20}" for cell in cells))
    for metric, reason in report["skipped"].items():
        print(f"  skipped {metric}: {reason}")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("longvie")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="longvie",
        description="Train, benchmark and ship a LongVie-2-style long-video generator.",
        epilog="Overrides are Hydra syntax, e.g. `longvie curate profile=smoke video.fps=4`.",
    )
    parser.add_argument("--version", action="version", version=f"longvie {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for name, (_, help_text) in COMMANDS.items():
        examples = "\n".join(f"  {line}" for line in EXAMPLES[name])
        sub = commands.add_parser(name, help=help_text, description=help_text,
                                  epilog=f"examples:\n{examples}",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("overrides", nargs="*", help="Hydra overrides key=value")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = list(args.overrides)
    stage = None
    if args.command == "train":
        stages = [o for o in overrides if o.startswith("stage=")]
        if len(stages) != 1:
            print("longvie train: give exactly one stage=base|1|2|3", file=sys.stderr)
            return 2
        overrides.remove(stages[0])
        stage = stages[0].split("=", 1)[1]
        if stage not in TRAIN_STAGES:
            print(f"longvie train: stage={stage!r}: choose one of {', '.join(TRAIN_STAGES)}",
                  file=sys.stderr)
            return 2
        if launched_by_pipes():
            return _train_through_pipes(overrides, stage)
    try:
        config = compose(overrides)
    except ConfigError as error:
        print(f"longvie {args.command}: {error}", file=sys.stderr)
        return 2
    run, _ = COMMANDS[args.command]
    try:
        return _train(config, stage) if stage is not None else run(config)
    except LongvieError as error:
        print(f"longvie {args.command}: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        from longvie.preflight import is_out_of_space, out_of_space

        if not is_out_of_space(error):  # a bug: its traceback is what a report needs
            raise
        print(f"longvie {args.command}: {out_of_space(args.command, error, {})}", file=sys.stderr)
        return 1

"""``longvie <command> [hydra overrides]``: the thin command-line face of the pipeline steps.

The configuration is composed and validated before any command runs, so a misspelt or ill-typed
override fails at once. Heavy libraries are imported by the command that needs them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from longvie.benchmark.run import run_benchmark
from longvie.catalog import BENCHMARK_FIGURES, format_table, model_rows, source_rows
from longvie.config import ConfigError, LongvieConfig, compose
from longvie.controls.depth_estimator import train_depth_estimator
from longvie.errors import LongvieError
from longvie.generation.control_export import export_controls
from longvie.generation.run import generate
from longvie.preflight import is_out_of_space, out_of_space
from longvie.promotion.run import promote_from_benchmark
from longvie.ranks import is_rank_zero
from longvie.serving.server import serve
from longvie.steps import TRAIN_STAGES, synth, synth_default_data, train_report, training_metadata
from longvie.summaries import (
    print_base_summary,
    print_benchmark_summary,
    print_control,
    print_controls_summary,
    print_curation_summary,
    print_promotion,
    print_stage_summary,
)


def _curate(config: LongvieConfig) -> int:
    from longvie.curation import curate

    print_curation_summary(curate(config))
    return 0


def _depth_estimator(config: LongvieConfig) -> int:
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
    from longvie.training.pretrain.run import pretrain

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
        print_control(report["control"])
    return 0


def _train(config: LongvieConfig, stage: str) -> int:
    report = train_report(config, stage)
    if report.get("rank_zero", True):  # another DDP rank: rank 0 reports
        (print_base_summary if stage == "base" else print_stage_summary)(report)
    return 0


# dagster_pipes.DAGSTER_PIPES_CONTEXT_ENV_VAR: set in the environment of a process that a Dagster
# Pipes client launched (checked without importing dagster_pipes).
PIPES_CONTEXT_ENV = "DAGSTER_PIPES_CONTEXT"


def launched_by_pipes() -> bool:
    """True in the one process of a Pipes launch that reports to Dagster: rank 0. The other
    ranks (torchrun's, or those Lightning starts per GPU) inherit the Pipes environment but must
    not write to its message channel."""

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
    print_benchmark_summary(run_benchmark(config))
    return 0


def _promote(config: LongvieConfig) -> int:
    print_promotion(promote_from_benchmark(config))
    return 0


def _serve(config: LongvieConfig) -> int:
    serve(config)  # replaces this process with the MLflow scoring server
    return 0


def _generate(config: LongvieConfig) -> int:
    report = generate(config)
    per_clip = report["seconds_per_clip"]
    print(f"generate: {report['frames']} frames in {report['clips']} clips from "
          f"{report['source']} with {report['model']}, {report['seconds']:.1f} s "
          f"({sum(per_clip) / len(per_clip):.2f} s per clip) -> {report['output']}")
    return 0


def _models(config: LongvieConfig) -> int:
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
    rows = source_rows(config)
    print(format_table(["source", "split", "clips", "seconds", "caption"],
                       [[r.source_id, r.split, r.clips, r.seconds,
                         r.caption if len(r.caption) <= 60 else r.caption[:59] + "…"]
                        for r in rows]))
    return 0


def _export_controls(config: LongvieConfig) -> int:
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
    "synth": (synth, "render the default 3D-scene videos with ground truth into paths.raw"),
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

        if not is_out_of_space(error):  # a bug: its traceback is what a report needs
            raise
        print(f"longvie {args.command}: {out_of_space(args.command, error, {})}", file=sys.stderr)
        return 1

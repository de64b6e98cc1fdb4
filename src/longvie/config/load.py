"""Compose ``conf/`` with command-line overrides into a validated :class:`LongvieConfig`.

All entry points (CLI, DVC stages, Dagster resources, tests) load configuration here, so a bad
override fails the same way everywhere: at once, with the offending key in the message.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from longvie.config.schema import LongvieConfig

SCHEMA_NAME = "longvie_schema"
CHECKOUT_ROOT = Path(__file__).resolve().parents[3]
# A YAML file of overrides to apply before the command line's: DVC's params.yaml (dvc.yaml sets it).
PARAMS_ENV = "LONGVIE_PARAMS"


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the key(s) at fault."""


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) that holds ``conf/config.yaml``.

    ``LONGVIE_ROOT`` wins when set; the source checkout is the fallback, so the CLI works from
    any directory.
    """
    if env_root := os.environ.get("LONGVIE_ROOT"):
        return Path(env_root).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "conf" / "config.yaml").is_file():
            return folder
    return CHECKOUT_ROOT


def _register_schema() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NAME, node=LongvieConfig, replace=True)


def compose(overrides: Sequence[str] = (), config_dir: Path | None = None) -> LongvieConfig:
    """Compose the config tree, check types and rules, and return the typed object."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    project_root = find_project_root()
    if params_file := os.environ.get(PARAMS_ENV):
        overrides = [*params_overrides(Path(params_file), overrides), *overrides]
    conf_dir = (config_dir or project_root / "conf").resolve()
    if not (conf_dir / "config.yaml").is_file():
        raise ConfigError(f"no config.yaml in {conf_dir}")
    _register_schema()
    try:
        with initialize_config_dir(config_dir=str(conf_dir)):
            raw = hydra_compose(config_name="config", overrides=list(overrides))
        if not os.path.isabs(raw.paths.root):
            raw.paths.root = str((project_root / raw.paths.root).resolve())
        config: LongvieConfig = OmegaConf.to_object(raw)  # type: ignore[assignment]
    except (HydraException, OmegaConfBaseException) as error:
        raise ConfigError(_one_paragraph(error)) from error
    problems = validate(config)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return config


def params_overrides(path: Path, given: Sequence[str] = ()) -> list[str]:
    """A params file as Hydra overrides: each leaf ``a: {b: v}`` becomes ``a.b=v`` (empty groups
    add nothing); keys that ``given`` (the command line) sets are left to it."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{PARAMS_ENV}={path}: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{PARAMS_ENV}={path}: expected a mapping of config keys")
    taken = {o.split("=", 1)[0].lstrip("+~") for o in given}

    def leaves(node: dict, prefix: str):
        for key, value in node.items():
            if isinstance(value, dict):
                yield from leaves(value, f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    return [f"{key}={_hydra_value(value)}" for key, value in leaves(data, "")
            if key not in taken]


def _hydra_value(value) -> str:
    """``value`` in Hydra's override grammar (strings quoted, so their type is the schema's)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def _one_paragraph(error: BaseException) -> str:
    """Hydra's top message names the key (``full_key``); add the cause only when it says more."""
    text = str(error).strip()
    cause = error.__cause__ or error.__context__
    if cause is not None and str(cause).strip() not in text:
        text += "\n" + str(cause).strip()
    return "invalid configuration: " + text


def validate(config: LongvieConfig) -> list[str]:
    """Rules that types cannot express; each problem names its key."""
    problems: list[str] = []
    video, synth, curation = config.video, config.synth, config.curation

    def need(ok: bool, message: str) -> None:
        if not ok:
            problems.append(message)

    need(video.fps > 0, f"video.fps={video.fps} must be positive")
    need(
        video.clip_frames >= 5 and video.clip_frames % 4 == 1,
        f"video.clip_frames={video.clip_frames} must be 4k+1 (5, 9, 17, 33, 81, ...): "
        "the VAE compresses time 4x after the first frame",
    )
    for key in ("width", "height"):
        value = getattr(video, key)
        need(
            value > 0 and value % 16 == 0,
            f"video.{key}={value} must be a positive multiple of 16 (VAE 8x, patch 2)",
        )
    need(synth.fps > 0, f"synth.fps={synth.fps} must be positive")
    for key in ("width", "height"):
        value = getattr(synth, key)
        need(value >= 16 and value % 2 == 0, f"synth.{key}={value} must be even and >= 16")
    need(synth.supersample >= 1, f"synth.supersample={synth.supersample} must be >= 1")
    need(
        1 <= synth.min_objects <= synth.max_objects,
        f"synth.min_objects={synth.min_objects} must be >= 1 and <= synth.max_objects="
        f"{synth.max_objects}",
    )
    need(0.0 <= synth.moving_fraction <= 1.0, "synth.moving_fraction must lie in [0, 1]")
    need(synth.train_videos >= 0, "synth.train_videos must be >= 0")
    need(synth.benchmark_videos >= 0, "synth.benchmark_videos must be >= 0")
    need(synth.train_seconds > 0, "synth.train_seconds must be positive")
    need(synth.benchmark_seconds > 0, "synth.benchmark_seconds must be positive")
    need(synth.track_grid >= 2, "synth.track_grid must be >= 2")
    need(0 <= synth.crf <= 51, f"synth.crf={synth.crf} must lie in [0, 51]")
    need(synth.workers >= 1, "synth.workers must be >= 1")
    need(
        0 <= curation.clip_overlap < video.clip_frames,
        f"curation.clip_overlap={curation.clip_overlap} must lie in [0, video.clip_frames)",
    )
    need(0.0 <= curation.val_fraction < 1.0, "curation.val_fraction must lie in [0, 1)")
    need(curation.max_aspect_ratio >= 1.0, "curation.max_aspect_ratio must be >= 1")
    need(curation.workers >= 1, "curation.workers must be >= 1")
    need(
        all(ext.startswith(".") for ext in curation.video_extensions),
        "curation.video_extensions must start with a dot, e.g. '.mp4'",
    )
    _validate_controls(config, need)
    _validate_model(config, need)
    benchmark = config.benchmark
    for key in ("videos", "frames", "steps"):
        value = getattr(benchmark, key)
        need(value >= 0, f"benchmark.{key}={value} must be >= 0 (0 = all / the default)")
    need(benchmark.seeds >= 1, f"benchmark.seeds={benchmark.seeds} must be >= 1")
    serving = config.serving
    need(1 <= serving.port <= 65535, f"serving.port={serving.port} must lie in [1, 65535]")
    need(serving.max_frames >= config.video.clip_frames,
         f"serving.max_frames={serving.max_frames} must hold one clip "
         f"({config.video.clip_frames} frames)")
    need(serving.timeout_s >= 1, f"serving.timeout_s={serving.timeout_s} must be >= 1")
    need(config.generation.solver in ("euler", "unipc"),
         f"generation.solver={config.generation.solver!r} must be 'euler' or 'unipc'")
    need(not config.generation.frame_memory or config.model.sparse_control == "first_frame",
         "generation.frame_memory=true colours a sparse control made of frame colours: it needs "
         f"model.sparse_control=first_frame, not {config.model.sparse_control!r}")
    from longvie.config.promotion_rules import config_problems

    problems.extend(config_problems(config.promotion))
    return problems


def _validate_model(config: LongvieConfig, need) -> None:
    model = config.model
    blocks = model.transformer
    need(
        model.condition_encoding in ("joint", "first_frame"),
        f"model.condition_encoding={model.condition_encoding!r} must be 'joint' or 'first_frame'",
    )
    need(model.sparse_control in ("point_map", "first_frame"),
         f"model.sparse_control={model.sparse_control!r} must be 'point_map' or 'first_frame'")
    parts = config.pretrain.parts
    need(bool(parts) and set(parts) <= {"base", "control"},
         f"pretrain.parts={list(parts)!r} must name 'base' and/or 'control'")
    need(0 <= config.pretrain.control.control_dropout < 1,
         f"pretrain.control.control_dropout={config.pretrain.control.control_dropout} must "
         "lie in [0, 1)")
    need(model.dtype in ("float32", "bfloat16", "float16"),
         f"model.dtype={model.dtype!r} must be float32, bfloat16 or float16")
    need(model.text.kind in ("captions", "umt5"),
         f"model.text.kind={model.text.kind!r} must be 'captions' or 'umt5'")
    need(
        blocks.num_attention_heads % 2 == 0,
        f"model.transformer.num_attention_heads={blocks.num_attention_heads} must be even: the "
        "controller splits every block into two half-width blocks",
    )
    need(blocks.ffn_dim % 2 == 0, f"model.transformer.ffn_dim={blocks.ffn_dim} must be even")
    need(
        1 <= model.controller.num_layers <= blocks.num_layers,
        f"model.controller.num_layers={model.controller.num_layers} must lie in "
        f"[1, model.transformer.num_layers={blocks.num_layers}]",
    )
    schedules = {f"training.{name}": getattr(config.training, name) for name in ("vae", "base")}
    schedules |= {f"pretrain.{name}": getattr(config.pretrain, name) for name in ("vae", "dit")}
    schedules["pretrain.vae.adversarial"] = config.pretrain.vae.adversarial
    for key, schedule in schedules.items():
        for index, phase in enumerate(schedule.phases):
            need(
                phase.frames <= config.video.clip_frames and (phase.frames - 1) % 4 == 0,
                f"{key}.phases[{index}].frames={phase.frames} must be 4k+1 and at "
                f"most video.clip_frames={config.video.clip_frames}",
            )
            need(phase.steps >= 0 and phase.batch_size >= 1,
                 f"{key}.phases[{index}] needs steps >= 0 and batch_size >= 1")
    vae = model.vae
    patch = vae.patch_size or 1
    spatial = patch * 2 ** (len(vae.dim_mult) - 1)
    temporal = 2 ** sum(vae.temperal_downsample)
    need(
        len(vae.temperal_downsample) == len(vae.dim_mult) - 1 and spatial in (4, 8)
        and temporal == 4,
        f"model.vae: patch_size {patch} x 2^(len(dim_mult) - 1) must be 4 or 8 (got {spatial}) "
        f"and temperal_downsample must halve time twice in len(dim_mult) - 1 steps (got "
        f"{vae.temperal_downsample}): the pipeline's latents are 4x or 8x smaller in space (Wan: "
        "8x), 4x in time",
    )
    need(vae.in_channels == vae.out_channels == 3 * patch**2,
         f"model.vae.in_channels/out_channels must be 3 x patch_size^2 = {3 * patch**2}")
    z = vae.z_dim
    need(blocks.in_channels == 2 * z + 4 and blocks.out_channels == z,
         f"model.transformer: the I2V layout [noisy | mask 4 | condition] on model.vae.z_dim={z} "
         f"latent channels needs in_channels={2 * z + 4} and out_channels={z} (Wan 2.1: 36/16)")
    _validate_stages(config, need)


def _validate_stages(config: LongvieConfig, need) -> None:
    training = config.training
    for name in ("stage1", "stage2", "stage3"):
        stage = getattr(training, name)
        need(stage.steps >= 1 and stage.batch_size >= 1,
             f"training.{name} needs steps >= 1 and batch_size >= 1")
        need(stage.learning_rate > 0, f"training.{name}.learning_rate must be positive")
    stage1, stage3 = training.stage1, training.stage3
    need(0.0 <= stage1.degrade_from_fraction <= 1.0,
         "training.stage1.degrade_from_fraction must lie in [0, 1]")
    need(0.0 <= stage1.feature_low <= stage1.feature_high,
         "training.stage1 needs 0 <= feature_low <= feature_high")
    for name in ("stage2", "stage3"):
        stage = getattr(training, name)
        for key in ("first_frame_p", "encoding_share", "drift_p"):
            need(0.0 <= getattr(stage, key) <= 1.0, f"training.{name}.{key} must lie in [0, 1]")
        need(stage.sampling_steps >= 12,
             f"training.{name}.sampling_steps must be >= 12 (the deepest generation degradation)")
    # N_H frames are the preceding clip's last j latent frames, each 4 pixel frames (its first
    # latent holds one frame only), so N_H = 4j with j < that clip's latent frame count.
    most = config.video.clip_frames - 1
    for frames in stage3.history_frames:
        need(0 < frames <= most and frames % 4 == 0,
             f"training.stage3.history_frames: {frames} must be a positive multiple of 4 and at "
             f"most {most} (video.clip_frames={config.video.clip_frames})")
    need(bool(stage3.history_frames), "training.stage3.history_frames must not be empty")
    need(0.0 <= stage3.no_history_p <= 1.0, "training.stage3.no_history_p must lie in [0, 1]")
    need(0 <= stage3.history_encoding_rounds <= 10,
         "training.stage3.history_encoding_rounds must lie in [0, 10]")


CONTROL_SOURCES = ("engine", "estimated")
DEPTH_MODEL_KINDS = ("longvie", "transformers")
DEPTH_OUTPUTS = ("disparity", "depth")


def _validate_controls(config: LongvieConfig, need) -> None:
    controls = config.controls
    for folder, source in controls.source_by_dir.items():
        need(
            source in CONTROL_SOURCES,
            f"controls.source_by_dir.{folder}={source!r} must be one of {CONTROL_SOURCES}",
        )
    need(
        controls.default_source in CONTROL_SOURCES,
        f"controls.default_source={controls.default_source!r} must be one of {CONTROL_SOURCES}",
    )
    need(controls.track_grid >= 2, f"controls.track_grid={controls.track_grid} must be >= 2")
    for low, high in (("depth_low_percentile", "depth_high_percentile"),
                      ("colour_low_percentile", "colour_high_percentile")):
        low_value, high_value = getattr(controls, low), getattr(controls, high)
        need(
            0.0 <= low_value < high_value <= 100.0,
            f"controls.{low}={low_value} and controls.{high}={high_value} must satisfy "
            "0 <= low < high <= 100",
        )
    need(controls.histogram_bins >= 256, "controls.histogram_bins must be >= 256")
    need(controls.workers >= 1, "controls.workers must be >= 1")
    need(
        controls.depth.kind in DEPTH_MODEL_KINDS,
        f"controls.depth.kind={controls.depth.kind!r} must be one of {DEPTH_MODEL_KINDS}",
    )
    need(
        controls.depth.output in DEPTH_OUTPUTS,
        f"controls.depth.output={controls.depth.output!r} must be one of {DEPTH_OUTPUTS}",
    )
    need(controls.tracker.window >= 3, "controls.tracker.window must be >= 3")
    need(controls.tracker.fb_threshold_px > 0, "controls.tracker.fb_threshold_px must be > 0")
    need(controls.depth_training.steps >= 1, "controls.depth_training.steps must be >= 1")

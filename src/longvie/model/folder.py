"""The LongVie model folder: what each training stage writes and every later step loads.

A folder holds the parts a stage trained or changed, plus ``longvie.json`` naming the stage and
the base the other parts come from::

    longvie.json      {"stage": "stage2", "base": "<folder or hub id>", ...}
    controller/       config.json + model.safetensors (DualController)
    transformer/      the Wan DiT (diffusers folder), when the stage changed it or the base is local
    vae/, text_encoder/   copied when the base is a local folder

On the CPU profiles the base is a local folder, so every stage folder is self-contained (a
registered MLflow version can be downloaded and used alone). With a hub-id base (Wan2.1-I2V-14B)
a stage folder stores only what it trained and reads the rest from the hub id: nobody wants a
28 GB copy of a frozen base per stage. A base folder without ``longvie.json`` (``models/base/model``
or a Wan diffusers folder) loads as a generator without controller.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from longvie.atomic import replace_directory
from longvie.config.schema import ModelConfig
from longvie.errors import LongvieError
from longvie.model.backbone import load_part, torch_dtype
from longvie.model.text import CaptionTextEncoder, UMT5TextEncoder

META = "longvie.json"
CONTROLLER = "controller"
COPIED_PARTS = ("vae", "text_encoder", "tokenizer")


@dataclass
class Generator:
    """The parts of a LongVie generator, loaded and in eval mode."""

    transformer: torch.nn.Module  # LongVieTransformer
    text_encoder: torch.nn.Module
    vae: torch.nn.Module
    stage: str
    source: str


def save_controller(controller, folder: Path) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(controller.config_dict(), indent=2) + "\n")
    save_file({k: v.contiguous() for k, v in controller.state_dict().items()},
              folder / "model.safetensors")
    return folder


def load_controller(base, folder: Path):
    """A ``DualController`` over ``base`` with the saved weights (safetensors, no pickle)."""
    from safetensors.torch import load_file

    from longvie.model.controller import DualController

    config_path, weights = folder / "config.json", folder / "model.safetensors"
    if not config_path.is_file() or not weights.is_file():
        raise LongvieError(f"{folder}: a controller needs config.json and model.safetensors")
    config = json.loads(config_path.read_text())
    controller = DualController(base, config["num_layers"])
    if controller.config_dict() != config:
        raise LongvieError(f"{folder}: controller {config} does not fit the base "
                           f"({controller.config_dict()})")
    controller.load_state_dict(load_file(weights))
    return controller


def is_local(source: str) -> bool:
    return Path(source).is_dir()


def read_meta(source: str) -> dict:
    path = Path(source) / META
    return json.loads(path.read_text()) if is_local(source) and path.is_file() else {}


def save_stage_model(folder: Path, stage: str, transformer, base_source: str,
                     base_changed: bool, extra: dict | None = None) -> Path:
    """Write ``transformer`` (a LongVieTransformer) as a stage folder, atomically."""
    staging = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    started_from, base_source = base_source, resolve_base(base_source)
    local = is_local(base_source)
    if transformer.controller is not None:
        save_controller(transformer.controller, staging / CONTROLLER)
    if base_changed or local:
        transformer.base.save_pretrained(staging / "transformer")
    if local:
        for part in COPIED_PARTS:  # a folder's own part (the control weights' vae/) first
            where = next((Path(folder) / part for folder in (started_from, base_source)
                          if (Path(folder) / part).is_dir()), None)
            if where is not None:
                shutil.copytree(where, staging / part)
    meta = {"stage": stage, "base": None if local else base_source, **(extra or {})}
    (staging / META).write_text(json.dumps(meta, indent=2) + "\n")
    replace_directory(staging, folder)
    return folder


def recorded_base(source: str) -> str | None:
    """The base a folder names in ``longvie.json``: a hub id, an absolute path, or a path
    relative to the folder itself (the shipped control weights name ``../tiny-base``)."""
    base = read_meta(source).get("base")
    if base and not Path(base).is_absolute() and (Path(source) / base).is_dir():
        return str((Path(source) / base).resolve())
    return base


def resolve_base(source: str) -> str:
    """Where the parts a folder does not hold live: the folder itself or its recorded base."""
    return recorded_base(source) or source


def part_source(source: str, part: str) -> str:
    """``source`` when it holds ``part``, else the base it records."""
    if is_local(source) and (Path(source) / part).is_dir():
        return source
    base = recorded_base(source)
    if base is None:
        raise LongvieError(f"{source}: no {part}/ and no base recorded in {META}")
    return base


def load_text_encoder(source: str, model: ModelConfig):
    where = part_source(source, "text_encoder")
    if is_local(where) and (Path(where) / "text_encoder" / "vocab.json").is_file():
        return CaptionTextEncoder.from_pretrained(Path(where) / "text_encoder")
    return UMT5TextEncoder(where, model.text.max_tokens, torch_dtype(model))


def load_generator(source: str, model: ModelConfig, with_controller: bool = True) -> Generator:
    """Every part of the generator at ``source`` (stage folder, base folder or hub id).

    ``with_controller`` and a folder without one: a fresh zero-initialised controller of
    ``model.controller.num_layers`` (how stage 1 starts from the base).
    """
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    from longvie.model.controller import DualController, LongVieTransformer

    if not is_local(source) and source.startswith(("/", ".")):
        raise LongvieError(f"{source}: no such model folder")
    meta = read_meta(source)
    dtype = torch_dtype(model)
    base = load_part(WanTransformer3DModel, part_source(source, "transformer"), "transformer",
                     dtype)
    controller = None
    if is_local(source) and (Path(source) / CONTROLLER).is_dir():
        controller = load_controller(base, Path(source) / CONTROLLER)
    elif with_controller:
        controller = DualController(base, model.controller.num_layers)
    vae = load_part(AutoencoderKLWan, part_source(source, "vae"), "vae", dtype)
    transformer = LongVieTransformer(base, controller).eval()
    text_encoder = load_text_encoder(source, model).eval()
    text_encoder.requires_grad_(False)
    vae.eval().requires_grad_(False)
    return Generator(transformer, text_encoder, vae, meta.get("stage", "base"), source)

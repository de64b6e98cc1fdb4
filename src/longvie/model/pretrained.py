"""Checks of a pretrained base (``model.pretrained``) before any work starts.

The base is either a local diffusers folder (tiny: the shipped ``weights/tiny-base``) or a hub id
(``wan14b``: ``Wan-AI/Wan2.1-I2V-14B-480P-Diffusers``). A local folder is checked file by file: each
part has its ``config.json`` and complete safetensors weights (the header's byte ranges must end
exactly at the file's end, which catches a truncated copy), and the architecture in each
``config.json`` equals the profile's ``model.transformer`` / ``model.vae``. A hub id's configs are
compared after loading (:func:`architecture_mismatches` on the loaded models' configs).
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict
from pathlib import Path

from longvie.config.schema import ModelConfig
from longvie.errors import LongvieError

WEIGHTS = {"transformer": "diffusion_pytorch_model.safetensors",
           "vae": "diffusion_pytorch_model.safetensors"}
CAPTION_ENCODER_FILES = ("config.json", "model.safetensors", "vocab.json")


def is_hub_id(source: str) -> bool:
    """``owner/name`` that is not a local path: resolved by ``from_pretrained`` (hub cache)."""
    return not Path(source).exists() and not source.startswith(("/", ".", "~"))


def check_safetensors(path: Path) -> None:
    """A complete safetensors file: a readable header whose tensors end at the file's end."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length <= 0 or 8 + length > size:
                raise ValueError(f"header of {length} bytes in a file of {size}")
            header = json.loads(handle.read(length))
    except (struct.error, ValueError, UnicodeDecodeError) as error:
        raise LongvieError(f"{path}: not a readable safetensors file ({error})") from error
    end = max((entry["data_offsets"][1] for key, entry in header.items()
               if key != "__metadata__"), default=0)
    if 8 + length + end != size:
        raise LongvieError(f"{path}: truncated or padded: its tensors need "
                           f"{8 + length + end} bytes, the file has {size}")


def _weights_files(part_dir: Path, name: str) -> list[Path]:
    """The part's safetensors file, or the shards its index names (Wan 14B is sharded)."""
    single = part_dir / name
    index = part_dir / f"{name}.index.json"
    if single.is_file():
        return [single]
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [s for s in shards if not (part_dir / s).is_file()]
        if missing:
            raise LongvieError(f"{index}: shard {missing[0]} is missing")
        return [part_dir / s for s in shards]
    raise LongvieError(f"{single}: missing (no weights for {part_dir.name}/)")


def architecture_mismatches(part: str, found: dict, expected: dict) -> list[str]:
    """``part: key found X, config Y`` for every key both name with different values."""
    def norm(value):
        return list(value) if isinstance(value, tuple) else value

    return [f"{part}: {key} is {norm(found[key])!r} in the folder, {norm(value)!r} in "
            f"model.{part}" for key, value in expected.items()
            if key in found and norm(found[key]) != norm(value)]


def check_pretrained(source: str, model: ModelConfig) -> None:
    """Fail with the file and the mismatch when the base at ``source`` is missing, truncated or
    of another architecture than ``model``; hub ids are left to ``from_pretrained``."""
    if is_hub_id(source):
        return
    folder = Path(source)
    if not folder.is_dir():
        raise LongvieError(f"model.pretrained={source!r}: no such folder (run `longvie pretrain` "
                           "to make the tiny base, or give a diffusers Wan folder or hub id)")
    problems: list[str] = []
    expected = {"transformer": asdict(model.transformer), "vae": asdict(model.vae)}
    for part, weights in WEIGHTS.items():
        config_path = folder / part / "config.json"
        if not config_path.is_file():
            raise LongvieError(f"{config_path}: missing (model.pretrained={source!r})")
        try:
            found = json.loads(config_path.read_text())
        except json.JSONDecodeError as error:
            raise LongvieError(f"{config_path}: not valid JSON ({error})") from error
        for path in _weights_files(folder / part, weights):
            check_safetensors(path)
        problems += architecture_mismatches(part, found, expected[part])
    if model.text.kind == "captions":
        for name in CAPTION_ENCODER_FILES:
            if not (folder / "text_encoder" / name).is_file():
                raise LongvieError(f"{folder / 'text_encoder' / name}: missing (the caption "
                                   "encoder of model.text.kind=captions)")
        check_safetensors(folder / "text_encoder" / "model.safetensors")
    if problems:
        raise LongvieError(f"model.pretrained={source!r} is another architecture than the "
                           "profile's config:\n  " + "\n  ".join(problems))


def provenance(source: str) -> dict:
    """What the folder records about how it was made (``longvie.json``'s ``pretrain``)."""
    meta = Path(source) / "longvie.json"
    if is_hub_id(source) or not meta.is_file():
        return {}
    return json.loads(meta.read_text()).get("pretrain", {})


def check_controlled(source: str, model: ModelConfig) -> None:
    """Fail with the file when the control weights at ``source`` (``model.controlled``) are
    missing, truncated, of another architecture, or name a base that is not there."""
    from longvie.model.folder import META, recorded_base

    folder = Path(source)
    if not folder.is_dir():
        raise LongvieError(f"model.controlled={source!r}: no such folder (run `longvie pretrain "
                           "pretrain.parts=[control]`, or set model.controlled='' to start "
                           "stage 1 with a fresh controller)")
    base = recorded_base(source)
    if not base:
        raise LongvieError(f"{folder / META}: names no base (\"base\": the folder its VAE and "
                           "caption encoder come from)")
    check_pretrained(base, model)
    found = {}
    parts = [("transformer", WEIGHTS["transformer"]), ("controller", "model.safetensors")]
    if (folder / "vae").is_dir():  # its own decoder (``pretrain.control.decoder``)
        parts.append(("vae", WEIGHTS["vae"]))
    for part, weights in parts:
        config_path = folder / part / "config.json"
        if not config_path.is_file():
            raise LongvieError(f"{config_path}: missing (model.controlled={source!r})")
        found[part] = json.loads(config_path.read_text())
        for path in _weights_files(folder / part, weights):
            check_safetensors(path)
    problems = architecture_mismatches("transformer", found["transformer"],
                                       asdict(model.transformer))
    if "vae" in found:
        problems += architecture_mismatches("vae", found["vae"], asdict(model.vae))
    if found["controller"].get("num_layers") != model.controller.num_layers:
        problems.append(f"controller: num_layers is {found['controller'].get('num_layers')} in "
                        f"the folder, {model.controller.num_layers} in model.controller")
    if problems:
        raise LongvieError(f"model.controlled={source!r} is another architecture than the "
                           "profile's config:\n  " + "\n  ".join(problems))

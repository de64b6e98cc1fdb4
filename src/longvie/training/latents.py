"""The latent cache: every clip, its dense and its sparse control encoded once by the VAE.

On a CPU the VAE is the expensive part (measured here: a clip encode costs ~20 DiT forwards), so
the DiT stages train on cached latents. The cache is keyed by content: the VAE's weights for the
whole cache (a retrained VAE, or another colouring of the sparse control, re-encodes everything) and, per clip, the md5 of the bytes it was
encoded from (the clip's video and its controls file), never by clip id alone: a video changed
in place re-encodes exactly its clips, and latents of clips that no longer exist are deleted.
Each clip is one safetensors file ``<latents>/<clip_id>.safetensors`` with ``video``, ``dense``
and ``sparse`` (16, F, h, w); ``manifest.json`` maps each clip id to its content key.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from longvie.atomic import write_json_atomically
from longvie.config import LongvieConfig
from longvie.errors import LongvieError
from longvie.model.backbone import LatentCodec
from longvie.training.clips import ClipDataset, ClipRecord, clip_records

MANIFEST = "manifest.json"
SPLITS = ("train", "val", "benchmark")


def latents_dir(config: LongvieConfig) -> Path:
    return Path(config.paths.models) / "latents"


def latent_file(config: LongvieConfig, clip_id: str) -> Path:
    return latents_dir(config) / f"{clip_id}.safetensors"


def content_key(record: ClipRecord) -> str:
    """md5 of what the clip's latents are computed from: its video and its controls file."""
    digest = hashlib.md5()
    for path in (record.video, record.controls):
        if path is not None:
            digest.update(path.read_bytes())
    return digest.hexdigest()


def read_manifest(config: LongvieConfig) -> dict:
    """``{"vae": fingerprint, "clips": {clip_id: content key}}`` (empty when absent or from
    the id-keyed format, whose files are then re-encoded)."""
    path = latents_dir(config) / MANIFEST
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    if not isinstance(manifest.get("clips"), dict):
        return {"vae": None, "clips": {}}
    return manifest


def write_manifest(config: LongvieConfig, manifest: dict) -> None:
    write_json_atomically(latents_dir(config) / MANIFEST, manifest)


def vae_fingerprint(vae_dir: Path) -> str:
    digest = hashlib.md5()
    for path in sorted(p for p in vae_dir.rglob("*") if p.is_file()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def encoder_fingerprint(vae_dir: Path) -> str:
    """md5 of what a latent depends on: the encoder's weights and the latent statistics, not the
    decoder (a decoder fine-tuned alone, as the adversarial pretraining does, leaves every
    latent as it was)."""
    from safetensors import safe_open

    config = json.loads((vae_dir / "config.json").read_text())
    digest = hashlib.md5(json.dumps({k: v for k, v in config.items() if not k.startswith("_")},
                                    sort_keys=True).encode())
    for path in sorted(vae_dir.glob("*.safetensors")):
        with safe_open(path, "pt") as handle:
            for key in sorted(handle.keys()):
                if key.startswith(("encoder.", "quant_conv.")):
                    digest.update(key.encode())
                    digest.update(handle.get_tensor(key).numpy().tobytes())
    return digest.hexdigest()


def vae_folder(source: str | Path) -> Path:
    """The VAE folder of a model folder (``<source>/vae``) or ``source`` itself."""
    source = Path(source)
    return source / "vae" if (source / "vae" / "config.json").is_file() else source


def encode_clips(config: LongvieConfig, vae_dir: str | Path, progress: bool = True,
                 batch_size: int = 8) -> dict:
    """Encode every clip with controls (all splits); skip files made by the same VAE.

    ``vae_dir``: a VAE folder, or a base folder holding ``vae/`` (a pretrained base)."""
    from diffusers import AutoencoderKLWan
    from safetensors.torch import save_file
    from tqdm import tqdm

    started = time.perf_counter()
    vae_dir = vae_folder(vae_dir)
    if not (vae_dir / "config.json").is_file():
        raise LongvieError(f"{vae_dir}: no trained VAE (run `longvie train stage=base`)")
    # The sparse control's colouring changes its latents as a new VAE would.
    stamp = f"{vae_fingerprint(vae_dir)}:{config.model.sparse_control}"
    folder = latents_dir(config)
    manifest = read_manifest(config)
    if manifest.get("vae") != stamp:
        manifest = {"vae": stamp, "clips": {}}
    records = clip_records(config, SPLITS, with_controls=True)
    keys = {r.clip_id: content_key(r) for r in records}
    removed = _remove_deleted(config, manifest, set(keys))
    todo = [r for r in records if manifest["clips"].get(r.clip_id) != keys[r.clip_id]
            or not latent_file(config, r.clip_id).is_file()]
    codec = LatentCodec(AutoencoderKLWan.from_pretrained(vae_dir).eval())
    dataset = ClipDataset(todo, preload=False, sparse_control=config.model.sparse_control)
    bar = tqdm(total=len(todo), desc="encode latents", unit="clip", disable=not progress)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        for start in range(0, len(todo), batch_size):
            items = [dataset[i] for i in range(start, min(start + batch_size, len(todo)))]
            encoded = {key: codec.encode(torch.stack([item[key] for item in items]))
                       for key in ("video", "dense", "sparse")}
            for row, item in enumerate(items):
                target = latent_file(config, item["clip_id"])
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.partial")
                save_file({key: value[row].contiguous() for key, value in encoded.items()},
                          partial)
                partial.replace(target)
                manifest["clips"][item["clip_id"]] = keys[item["clip_id"]]
            # Recorded per batch: a killed run keeps what it finished.
            write_manifest(config, manifest)
            bar.update(len(items))
    bar.close()
    write_manifest(config, manifest)
    return {"clips": len(records), "encoded": len(todo), "removed": removed,
            "seconds": round(time.perf_counter() - started, 2)}


def _remove_deleted(config: LongvieConfig, manifest: dict, current: set[str]) -> int:
    """Delete the latents of clips that are no longer curated; the number deleted."""
    folder = latents_dir(config)
    on_disk = {p.relative_to(folder).as_posix().removesuffix(".safetensors")
               for p in folder.rglob("*.safetensors")}
    gone = {clip_id for clip_id in set(manifest["clips"]) | on_disk if clip_id not in current}
    for clip_id in gone:
        latent_file(config, clip_id).unlink(missing_ok=True)
        manifest["clips"].pop(clip_id, None)
    return len(gone)


class LatentDataset(torch.utils.data.Dataset):
    """Cached latents + caption per clip (loaded into memory once: they are small)."""

    def __init__(self, config: LongvieConfig, records: list[ClipRecord]) -> None:
        from safetensors.torch import load_file

        self.records = records
        missing = [r.clip_id for r in records if not latent_file(config, r.clip_id).is_file()]
        if missing:
            raise LongvieError(f"{len(missing)} clips have no cached latents (e.g. {missing[0]}): "
                               "encode them first (`longvie train stage=base`)")
        manifest = read_manifest(config)
        known = manifest["clips"]
        colouring = str(manifest.get("vae") or "").rpartition(":")[2]
        if known and colouring != config.model.sparse_control:
            raise LongvieError(
                f"{latents_dir(config) / MANIFEST}: the sparse controls were encoded in the "
                f"{colouring or 'point_map'!r} colouring, model.sparse_control is "
                f"{config.model.sparse_control!r}: re-encode them (`longvie train stage=base`)")
        if not known:
            raise LongvieError(
                f"{latents_dir(config) / MANIFEST} holds no content keys (missing, or written "
                "by an older version that keyed latents by clip id): re-encode them (`longvie "
                "train stage=base`)")
        stale = [r for r in records if known.get(r.clip_id) != content_key(r)]
        if stale:
            raise LongvieError(
                f"{len(stale)} clips changed since their latents were encoded (e.g. "
                f"{stale[0].clip_id}: {stale[0].video}): re-encode them (`longvie train "
                "stage=base`)")
        self.latents = [load_file(latent_file(config, r.clip_id)) for r in records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return {"index": index, "clip_id": self.records[index].clip_id,
                "caption": self.records[index].caption, **self.latents[index]}

"""The latent cache: every clip, its dense and its sparse control encoded once by the VAE.

On a CPU the VAE is the expensive part (DESIGN.md §6: a clip encode costs ~20 DiT forwards), so
the DiT stages train on cached latents. The cache is keyed by the VAE's weights: a retrained VAE
re-encodes everything, an unchanged one reuses the files. Each clip is one safetensors file
``<latents>/<clip_id>.safetensors`` with ``video``, ``dense`` and ``sparse`` (16, F, h, w).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from longvie.config import LongvieConfig
from longvie.errors import LongvieError
from longvie.training.clips import ClipDataset, ClipRecord, clip_records

MANIFEST = "manifest.json"
SPLITS = ("train", "val", "benchmark")


def latents_dir(config: LongvieConfig) -> Path:
    return Path(config.paths.models) / "latents"


def latent_file(config: LongvieConfig, clip_id: str) -> Path:
    return latents_dir(config) / f"{clip_id}.safetensors"


def vae_fingerprint(vae_dir: Path) -> str:
    digest = hashlib.md5()
    for path in sorted(p for p in vae_dir.rglob("*") if p.is_file()):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
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

    from longvie.model.backbone import LatentCodec

    started = time.perf_counter()
    vae_dir = vae_folder(vae_dir)
    if not (vae_dir / "config.json").is_file():
        raise LongvieError(f"{vae_dir}: no trained VAE (run `longvie train stage=base`)")
    stamp = vae_fingerprint(vae_dir)
    folder = latents_dir(config)
    manifest_path = folder / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    if manifest.get("vae") != stamp:
        manifest = {"vae": stamp, "clips": []}
    records = clip_records(config, SPLITS, with_controls=True)
    done = set(manifest["clips"])
    todo = [r for r in records if r.clip_id not in done or not latent_file(config, r.clip_id).is_file()]
    codec = LatentCodec(AutoencoderKLWan.from_pretrained(vae_dir).eval())
    dataset = ClipDataset(todo, preload=False)
    bar = tqdm(total=len(todo), desc="encode latents", unit="clip", disable=not progress)
    with torch.no_grad():
        for start in range(0, len(todo), batch_size):
            items = [dataset[i] for i in range(start, min(start + batch_size, len(todo)))]
            encoded = {key: codec.encode(torch.stack([item[key] for item in items]))
                       for key in ("video", "dense", "sparse")}
            for row, item in enumerate(items):
                target = latent_file(config, item["clip_id"])
                target.parent.mkdir(parents=True, exist_ok=True)
                save_file({key: value[row].contiguous() for key, value in encoded.items()},
                          target)
                done.add(item["clip_id"])
            bar.update(len(items))
    bar.close()
    manifest["clips"] = sorted(done)
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest) + "\n")
    return {"clips": len(records), "encoded": len(todo),
            "seconds": round(time.perf_counter() - started, 2)}


class LatentDataset(torch.utils.data.Dataset):
    """Cached latents + caption per clip (loaded into memory once: they are small)."""

    def __init__(self, config: LongvieConfig, records: list[ClipRecord]) -> None:
        from safetensors.torch import load_file

        self.records = records
        missing = [r.clip_id for r in records if not latent_file(config, r.clip_id).is_file()]
        if missing:
            raise LongvieError(f"{len(missing)} clips have no cached latents (e.g. {missing[0]}): "
                               "encode them first")
        self.latents = [load_file(latent_file(config, r.clip_id)) for r in records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        return {"index": index, "clip_id": self.records[index].clip_id,
                "caption": self.records[index].caption, **self.latents[index]}

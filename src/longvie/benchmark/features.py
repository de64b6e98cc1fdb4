"""VBench's feature-consistency dimensions, run only when their weights are configured.

Subject consistency compares DINO features of each frame with the first and the previous frame;
background consistency does the same with CLIP image features. Both are
mean over frames t >= 1 of (max(0, cos(f_t, f_0)) + max(0, cos(f_t, f_{t-1}))) / 2, in [0, 1].
No weights can be downloaded here, so an empty setting is listed as skipped with the reason; a
configured model that cannot be loaded is an error naming the key.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from longvie.config.schema import BenchmarkConfig
from longvie.errors import LongvieError

DIMENSIONS = {
    "subject_consistency": ("subject_consistency_model", "DINO"),
    "background_consistency": ("background_consistency_model", "CLIP"),
}
BATCH = 32


def consistency(features: np.ndarray) -> float:
    """VBench's consistency of per-frame features (T, D), T >= 2."""
    if len(features) < 2:
        raise ValueError(f"consistency needs at least 2 frames, got {len(features)}")
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    to_first = np.clip(unit[1:] @ unit[0], 0, None)
    to_previous = np.clip(np.sum(unit[1:] * unit[:-1], axis=1), 0, None)
    return float(np.mean((to_first + to_previous) / 2))


@lru_cache(maxsize=4)
def _extractor(source: str, key: str):
    """(image processor, model) from a folder or an offline hub id."""
    from transformers import AutoImageProcessor, AutoModel

    try:
        return AutoImageProcessor.from_pretrained(source), AutoModel.from_pretrained(source).eval()
    except (OSError, ValueError) as error:
        raise LongvieError(f"benchmark.{key}={source!r} could not be loaded: {error}") from error


def image_features(source: str, key: str, frames: np.ndarray) -> np.ndarray:
    """(T, D) features of uint8 frames: CLIP's image embedding, else the CLS token (DINO, ViT)."""
    import torch

    processor, model = _extractor(source, key)
    chunks = []
    with torch.no_grad():
        for start in range(0, len(frames), BATCH):
            pixels = processor(images=list(frames[start:start + BATCH]),
                               return_tensors="pt")["pixel_values"]
            if hasattr(model, "get_image_features"):
                output = model.get_image_features(pixel_values=pixels)
                output = output if torch.is_tensor(output) else output.pooler_output
            else:
                output = model(pixel_values=pixels).last_hidden_state[:, 0]
            chunks.append(output.float().numpy())
    return np.concatenate(chunks)


def feature_metrics(benchmark: BenchmarkConfig, frames: np.ndarray,
                    skipped: dict[str, str]) -> dict[str, float]:
    """The configured consistency dimensions of ``frames``; the others go to ``skipped``."""
    values = {}
    for dimension, (key, family) in DIMENSIONS.items():
        source = getattr(benchmark, key)
        if not source:
            skipped[dimension] = f"benchmark.{key} is empty: no {family} weights configured"
            continue
        values[dimension] = consistency(image_features(source, key, frames))
    return values

"""The pictures the pipeline leaves for people: loss curves (PNG) and small clips (GIF)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_losses(losses: Sequence[float], path: Path, title: str,
                ylabel: str = "training loss") -> Path:
    """Per-step losses (faint) and their running mean, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.asarray(losses, dtype=np.float64)
    figure, axis = plt.subplots(figsize=(5, 3), dpi=100)
    axis.plot(np.arange(1, len(values) + 1), values, linewidth=0.6, alpha=0.4, label="step")
    window = max(1, len(values) // 50)
    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
    axis.plot(np.arange(window, len(values) + 1), smooth, label=f"mean of {window}")
    axis.set_xlabel("step")
    axis.set_ylabel(ylabel)
    axis.set_yscale("log")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def write_gif(path: Path, frames: Sequence[np.ndarray], fps: float) -> Path | None:
    """An endlessly looping GIF of rgb uint8 frames; tiny frames are enlarged to ~128 px high."""
    from PIL import Image

    if not frames:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    zoom = max(1, 128 // frames[0].shape[0])
    images = [
        Image.fromarray(np.repeat(np.repeat(f, zoom, axis=0), zoom, axis=1)) for f in frames
    ]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps),
                   loop=0)
    return path

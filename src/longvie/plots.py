"""The pictures the pipeline leaves for people: loss curves (PNG) and small clips (GIF).

Every curve's numbers also go to a CSV beside its PNG (same name), which dvc.yaml declares as
DVC plots.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from itertools import zip_longest
from pathlib import Path

import numpy as np

from longvie.atomic import write_atomically


def plot_losses(losses: Sequence[float], path: Path, title: str,
                ylabel: str = "training loss") -> Path:
    """Per-step losses (faint) and their running mean, log scale; ``step,loss`` CSV beside."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.asarray(losses, dtype=np.float64)
    write_columns(path.with_suffix(".csv"), {"step": range(1, len(values) + 1), "loss": values})
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
    save_figure(figure, path)
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
    write_atomically(path, lambda temporary: images[0].save(
        temporary, format="GIF", save_all=True, append_images=images[1:],
        duration=int(1000 / fps), loop=0))
    return path


def plot_series(per_model: dict[str, dict[str, Sequence[float]]], path: Path, title: str,
                first_clip: dict[str, int] | None = None) -> Path:
    """One panel per figure name, one line per model, against clip index; CSV beside with the
    columns ``clip`` and ``<model>_<figure>``. A figure named in ``first_clip`` starts at that
    clip (a seam series starts at clip 1; its CSV column is blank above)."""
    first_clip = first_clip or {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(next(iter(per_model.values())))
    longest = max(first_clip.get(name, 0) + len(series[name])
                  for series in per_model.values() for name in names)
    write_columns(path.with_suffix(".csv"), {"clip": range(longest)} | {
        f"{model}_{name}": [None] * first_clip.get(name, 0) + list(series[name])
        for model, series in per_model.items() for name in names})
    figure, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3), dpi=100,
                                squeeze=False)
    for axis, name in zip(axes[0], names, strict=True):
        for model, series in per_model.items():
            start = first_clip.get(name, 0)
            axis.plot(range(start, start + len(series[name])), series[name], marker=".",
                      label=model)
        axis.set_xlabel("clip index")
        axis.set_title(name)
    axes[0][0].legend()
    figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path)
    plt.close(figure)
    return path


def save_figure(figure, path: Path) -> None:
    """``figure.savefig`` written beside and renamed in (a kill leaves no half picture)."""
    write_atomically(path, lambda temporary: figure.savefig(temporary,
                                                            format=path.suffix.lstrip(".")))


def write_columns(path: Path, columns: dict[str, Sequence[float]]) -> Path:
    """A CSV with one column per entry (header = the keys); shorter columns end in blanks."""

    def write(temporary: Path) -> None:
        with temporary.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in zip_longest(*columns.values(), fillvalue=""):
                writer.writerow([_cell(v) for v in row])

    write_atomically(path, write)
    return path


def _cell(value) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    return str(value) if isinstance(value, int) else str(float(value))


def write_frame_strip(path: Path, labels: Sequence[str], videos: Sequence[np.ndarray],
                      every: int, columns: int = 8) -> Path:
    """A PNG grid: one row per video (labelled), frames 0, every, 2 every, ... as columns."""
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    picks = list(range(0, len(videos[0]), every))[:columns]
    height, width = videos[0].shape[1:3]
    zoom = max(1, 96 // height)
    label_width = 80
    canvas = Image.new("RGB", (label_width + len(picks) * width * zoom,
                               len(videos) * height * zoom), "white")
    draw = ImageDraw.Draw(canvas)
    for row, (label, video) in enumerate(zip(labels, videos, strict=True)):
        draw.text((4, row * height * zoom + height * zoom // 2 - 6), label, fill="black")
        for column, index in enumerate(picks):
            tile = np.repeat(np.repeat(video[index], zoom, axis=0), zoom, axis=1)
            canvas.paste(Image.fromarray(tile), (label_width + column * width * zoom,
                                                 row * height * zoom))
    write_atomically(path, lambda temporary: canvas.save(temporary, format="PNG"))
    return path

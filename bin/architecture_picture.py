"""Draw docs/architecture_layers.png from the code itself: the rooms (packages) in the layers
tests/project/test_import_direction.py enforces, and an arrow for every room that imports another.

    .venv/bin/python bin/architecture_picture.py

Read from the same import graph as the test (lazy imports included), so the picture cannot
disagree with the code the test passes on.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "architecture_layers.png"


def room_edges() -> tuple[list[set[str]], Counter]:
    sys.path.insert(0, str(ROOT))
    from tests.project.test_import_direction import LAYERS, imported_modules, module_files, room_of

    edges: Counter = Counter()
    rooms = set()
    for module, path in module_files().items():
        source = room_of(module)
        rooms.add(source)
        for target in imported_modules(path):
            if room_of(target) != source:
                edges[(source, room_of(target))] += 1
    return [sorted(layer & rooms) for layer in LAYERS], edges


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers, edges = room_edges()
    layers = [layer for layer in layers if layer]
    width = max(len(layer) for layer in layers)
    position = {}
    for row, layer in enumerate(layers):
        for column, room in enumerate(layer):
            position[room] = ((column + 0.5) * width / len(layer), row)
    figure, axes = plt.subplots(figsize=(12, 0.75 * len(layers) + 1))
    for (source, target), count in edges.items():
        (x0, y0), (x1, y1) = position[source], position[target]
        axes.annotate("", xy=(x1, y1 + 0.18), xytext=(x0, y0 - 0.18),
                      arrowprops={"arrowstyle": "->", "color": "#4477aa", "alpha": 0.35,
                                  "lw": 0.6 + 0.25 * min(count, 8),
                                  "connectionstyle": "arc3,rad=0.08"})
    for room, (x, y) in position.items():
        axes.text(x, y, room, ha="center", va="center", fontsize=9,
                  bbox={"boxstyle": "round,pad=0.3", "facecolor": "#f2f2f2",
                        "edgecolor": "#555555"})
    axes.set_xlim(-0.3, width + 0.3)
    axes.set_ylim(-0.7, len(layers) - 0.3)
    axes.set_yticks(range(len(layers)), [f"layer {i}" for i in range(len(layers))], fontsize=8)
    axes.set_xticks([])
    for side in ("top", "right", "bottom"):
        axes.spines[side].set_visible(False)
    axes.set_title("rooms of src/longvie and orchestration/, bottom to top; an arrow is an "
                   "import (width: how many)", fontsize=10)
    figure.tight_layout()
    figure.savefig(OUT, dpi=110)
    print(f"{len(position)} rooms, {len(edges)} arrows -> {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The stages' held-out curves side by side: the evidence their step counts come from.

Each controller stage run with ``training.stage<N>.curve_every=50`` writes
``reports/train_<N>_curve.csv`` (held-out flow-matching loss per variant against steps). This
script gathers such CSVs, each under a label (for example the learning rate it was trained at),
into ``bench/results/stage_curves.json`` and draws one panel per stage into
``docs/stage_curves.png``.

    .venv/bin/python bench/stage_curves.py \
        "stage 1, lr 5e-4=/tmp/s1_lr5e-4.csv" "stage 1, lr 1e-4=reports/train_1_curve.csv" ...

A label starts with ``stage <N>``; curves of one stage share a panel.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "stage_curves.json"
PICTURE = ROOT / "docs" / "stage_curves.png"


def read_curve(path: Path) -> dict[str, list[float]]:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise SystemExit(f"{path}: no rows")
    return {name: [float(row[name]) for row in rows] for name in rows[0]}


def plot(curves: dict[str, dict[str, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = sorted({label.split(",")[0] for label in curves})
    figure, axes = plt.subplots(1, len(stages), figsize=(5 * len(stages), 3.6), dpi=100,
                                squeeze=False)
    for axis, stage in zip(axes[0], stages, strict=True):
        for label, curve in curves.items():
            if label.split(",")[0] != stage:
                continue
            suffix = label.partition(",")[2].strip()
            for name, values in curve.items():
                if name in ("step", "no_controls"):
                    continue
                axis.plot(curve["step"], values, marker=".",
                          label=f"{name} ({suffix})" if suffix else name)
        axis.set_title(f"{stage}: held-out loss while training")
        axis.set_xlabel("training step")
        axis.set_ylabel("held-out flow-matching loss")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main(arguments: list[str]) -> int:
    if not arguments:
        print(__doc__)
        return 2
    curves = {}
    for argument in arguments:
        label, _, file = argument.rpartition("=")
        if not label.startswith("stage "):
            raise SystemExit(f"{argument!r}: expected 'stage <N>[, note]=<csv>'")
        curves[label] = read_curve(Path(file))
    RESULTS.write_text(json.dumps(curves, indent=1) + "\n")
    plot(curves, PICTURE)
    print(f"wrote {RESULTS.relative_to(ROOT)} and {PICTURE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

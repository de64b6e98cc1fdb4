"""The held-out comparison of a stage measured while it trains: the curve its steps come from.

A stage's step count should be the fewest steps after which its held-out figure stops improving
beyond its scatter, which takes the figure at several points of one run, not one run per count.
With ``curve_every`` > 0 the stage measures its comparison (:func:`heldout.measure`: the same
clips, noise draws and variants as its report) every that many steps and writes them beside the
report, as a CSV and a plot, and to MLflow as step-indexed metrics. The points are kept in the
checkpoints, so a resumed stage keeps the curve it had.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L

from longvie.plots import save_figure, write_columns
from longvie.training.stages.heldout import measure


class HeldoutCurve(L.Callback):
    """Measure ``held_out`` every ``every`` training steps; ``points`` holds the curve."""

    def __init__(self, held_out, conditions, every: int, start: dict[str, float],
                 metric_prefix: str) -> None:
        self.held_out, self.conditions, self.every = held_out, conditions, every
        self.metric_prefix = metric_prefix
        self.points: list[dict[str, float]] = [{"step": 0, **start}]

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index) -> None:
        step = trainer.global_step
        if step % self.every or any(point["step"] == step for point in self.points):
            return
        losses = measure(module, self.held_out, self.conditions, detailed=False)
        self.points.append({"step": step, **losses})
        if trainer.logger is not None:
            trainer.logger.log_metrics({f"{self.metric_prefix}/heldout_curve/{name}": value
                                        for name, value in losses.items()}, step=step)

    def state_dict(self) -> dict:
        return {"points": self.points}

    def load_state_dict(self, state_dict: dict) -> None:
        self.points = list(state_dict["points"])


def write_curve(points: list[dict[str, float]], path: Path, title: str) -> list[Path]:
    """``path`` (PNG, one line per variant against steps) and its CSV."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name in points[0] if name != "step"]
    steps = [point["step"] for point in points]
    csv = write_columns(path.with_suffix(".csv"), {"step": steps} | {
        name: [point[name] for point in points] for name in names})
    figure, axis = plt.subplots(figsize=(6, 3.5), dpi=100)
    for name in names:
        axis.plot(steps, [point[name] for point in points], marker=".", label=name)
    axis.set_xlabel("training step")
    axis.set_ylabel("held-out flow-matching loss")
    axis.set_title(title)
    axis.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(figure, path)
    plt.close(figure)
    return [path, csv]

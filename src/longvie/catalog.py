"""What a user picks from: the registered model versions and the curated sources.

``longvie models`` and ``longvie sources`` print these tables. Each row is read from where the
pipeline wrote it: the MLflow registry with the benchmark runs that judged each version, and the
curated clip table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from longvie.config import LongvieConfig
from longvie.errors import LongvieError
from longvie.promotion.registry_aliases import TAG
from longvie.tracking import tracking_client

BENCHMARK_FIGURES = ("ssim", "psnr_db")


@dataclass(frozen=True)
class ModelRow:
    version: int
    stage: str
    steps: str
    aliases: tuple[str, ...]
    decision: str  # the promotion gate's, "" when never judged
    benchmark: dict[str, float]  # the candidate's figures in its newest benchmark run


@dataclass(frozen=True)
class SourceRow:
    source_id: str
    split: str
    clips: int
    seconds: float
    caption: str


def model_rows(config: LongvieConfig) -> list[ModelRow]:
    """Every version of ``mlflow.registered_model``, newest first; none when nothing is
    registered yet."""
    from mlflow.exceptions import MlflowException

    client = tracking_client(config)
    name = config.mlflow.registered_model
    try:
        versions = client.search_model_versions(f"name='{name}'")
        aliases = client.get_registered_model(name).aliases
    except MlflowException:
        return []
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    figures = benchmark_figures(client, config.mlflow.experiment)
    return sorted((ModelRow(int(v.version), v.tags.get("longvie.stage", ""),
                            v.tags.get("longvie.steps", ""),
                            tuple(sorted(by_version.get(str(v.version), []))),
                            v.tags.get(TAG + "decision", ""),
                            figures.get(int(v.version), {}))
                   for v in versions), key=lambda row: -row.version)


def benchmark_figures(client, experiment_name: str) -> dict[int, dict[str, float]]:
    """The candidate's :data:`BENCHMARK_FIGURES` from the newest benchmark run of each version."""
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return {}
    runs = client.search_runs([experiment.experiment_id], "tags.`longvie.step` = 'benchmark'",
                              order_by=["attributes.start_time ASC"])
    figures: dict[int, dict[str, float]] = {}
    for run in runs:  # oldest first: a newer run of the same version overwrites
        version = run.data.params.get("candidate_version", "")
        if version.isdigit():
            metrics = run.data.metrics
            figures[int(version)] = {f: metrics[f"candidate.{f}"] for f in BENCHMARK_FIGURES
                                     if f"candidate.{f}" in metrics}
    return figures


def source_rows(config: LongvieConfig) -> list[SourceRow]:
    """One row per curated source (its longest shot), by split then id."""
    import pandas as pd

    table = Path(config.paths.curated) / "clips.parquet"
    if not table.is_file():
        raise LongvieError(f"{table} does not exist: run `longvie curate` first")
    clips = pd.read_parquet(table, columns=["source_id", "split", "segment_index", "clip_index",
                                            "frame_start", "frame_end", "fps", "caption"])
    rows = []
    for (source, split), group in clips.groupby(["source_id", "split"], sort=False):
        segment = group.groupby("segment_index").size().idxmax()
        shot = group[group["segment_index"] == segment].sort_values("clip_index")
        frames = int(shot["frame_end"].iloc[-1] - shot["frame_start"].iloc[0])
        rows.append(SourceRow(str(source), str(split), len(shot),
                              round(frames / float(shot["fps"].iloc[0]), 1),
                              str(shot["caption"].iloc[0])))
    order = {"benchmark": 0, "val": 1, "train": 2}
    return sorted(rows, key=lambda row: (order.get(row.split, 3), row.source_id))


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns as wide as their longest cell."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)

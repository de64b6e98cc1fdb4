"""The Great Expectations suite every clip table must pass before anything trains on it.

Used inside curation (the step fails when the suite fails) and as a blocking Dagster asset check.
GX is imported only when a table is validated: it costs seconds of start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from longvie.config.schema import VideoConfig

REQUIRED_COLUMNS = (
    "clip_id",
    "source_id",
    "source_path",
    "split",
    "caption",
    "segment_index",
    "clip_index",
    "frame_start",
    "frame_end",
    "num_frames",
    "fps",
    "width",
    "height",
    "duration_seconds",
    "path",
)
SPLITS = ("train", "val", "benchmark")


@dataclass(frozen=True)
class ValidationOutcome:
    success: bool
    evaluated: int
    failures: list[str]

    def summary(self) -> str:
        if self.success:
            return f"all {self.evaluated} expectations passed"
        return f"{len(self.failures)} of {self.evaluated} expectations failed:\n  " + "\n  ".join(
            self.failures
        )


def _expectations(video: VideoConfig) -> list:
    import great_expectations as gx

    E = gx.expectations
    expectations = [
        E.ExpectTableRowCountToBeBetween(min_value=1),
        E.ExpectTableColumnsToMatchSet(column_set=list(REQUIRED_COLUMNS), exact_match=False),
        E.ExpectColumnValuesToBeUnique(column="clip_id"),
        E.ExpectColumnValuesToBeInSet(column="num_frames", value_set=[video.clip_frames]),
        E.ExpectColumnValuesToBeInSet(column="clip_span", value_set=[video.clip_frames]),
        E.ExpectColumnValuesToBeInSet(column="fps", value_set=[video.fps]),
        E.ExpectColumnValuesToBeInSet(column="width", value_set=[video.width]),
        E.ExpectColumnValuesToBeInSet(column="height", value_set=[video.height]),
        E.ExpectColumnValuesToBeBetween(column="duration_seconds", min_value=0, strict_min=True),
        E.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        E.ExpectColumnValuesToBeInSet(column="path_exists", value_set=[True]),
    ]
    expectations += [E.ExpectColumnValuesToNotBeNull(column=c) for c in REQUIRED_COLUMNS]
    return expectations


def validate_clip_table(
    clips: pd.DataFrame, curated_dir: Path, video: VideoConfig
) -> ValidationOutcome:
    """Run the suite on ``clips`` whose ``path`` column is relative to ``curated_dir``."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    frame = clips.copy()
    # Derived columns: GX checks values, these turn file existence and span into values.
    paths = frame["path"] if "path" in frame else pd.Series([None] * len(frame))
    frame["path_exists"] = [isinstance(p, str) and (curated_dir / p).is_file() for p in paths]
    if {"frame_start", "frame_end"} <= set(frame.columns):
        frame["clip_span"] = frame["frame_end"] - frame["frame_start"]
    else:
        frame["clip_span"] = pd.Series([None] * len(frame), dtype="float64")

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("curated")
        .add_dataframe_asset("clips")
        .add_batch_definition_whole_dataframe("all_clips")
    )
    suite = context.suites.add(gx.ExpectationSuite(name="clip_table"))
    for expectation in _expectations(video):
        suite.add_expectation(expectation)
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name="clip_table", data=batch, suite=suite)
    )
    result = validation.run(batch_parameters={"dataframe": frame})
    failures = [_describe(r) for r in result.results if not r.success]
    return ValidationOutcome(success=result.success, evaluated=len(result.results), failures=failures)


def _describe(result) -> str:
    config = result.expectation_config
    column = config.kwargs.get("column")
    where = f" on column '{column}'" if column else ""
    details = result.result or {}
    unexpected = details.get("partial_unexpected_list")
    if unexpected:
        shown = ", ".join(map(str, unexpected[:5]))
        return f"{config.type}{where}: {details.get('unexpected_count')} unexpected, e.g. {shown}"
    observed = details.get("observed_value")
    suffix = f" (observed {observed})" if observed is not None else ""
    return f"{config.type}{where}{suffix}"

"""The data group: the DVC-tracked raw folder and the curated clips built from it."""

import base64
from pathlib import Path

import dagster as dg

from orchestration.partitions import SOURCE_DIGESTS, source_videos
from orchestration.resources import DvcResource, LongvieConfigResource


@dg.asset(
    group_name="data",
    description="The DVC-tracked raw video folder (data.dvc): any container, never modified.",
)
def raw_videos(longvie: LongvieConfigResource, dvc: DvcResource) -> dg.MaterializeResult:
    config = longvie.compose()
    raw = Path(config.paths.raw)
    if not raw.is_dir():
        raise dg.Failure(
            allow_retries=False,
            description=f"raw folder {raw} does not exist: run `longvie synth` or `dvc pull`"
        )
    files = [p for p in raw.rglob("*") if p.is_file()]
    root = Path(config.paths.root)
    md5 = dvc.data_version(root)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(raw)),
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files),
            "dvc_md5": md5 or "not tracked by data.dvc",
            "dvc_status": dvc.workspace_status(root),
        },
        data_version=dg.DataVersion(md5) if md5 else None,
    )


@dg.asset(
    group_name="data",
    deps=[raw_videos],
    description="Shots cut, filtered and resampled into fixed-length clips (clips.parquet).",
)
def curated_clips(
    context: dg.AssetExecutionContext, longvie: LongvieConfigResource
) -> dg.MaterializeResult:
    import pandas as pd

    from longvie.controls.extract import clips_digest
    from longvie.controls.run import source_plans
    from longvie.curation import curate
    from longvie.curation.run import PREVIEW_NAME

    config = longvie.compose()
    report = curate(config, progress=longvie.progress)
    source_ids = sorted(
        set(pd.read_parquet(Path(config.paths.curated) / "clips.parquet")["source_id"])
    )
    digests = {plan.source_id: clips_digest(plan, Path(config.paths.curated))
               for plan in source_plans(config)}
    added, removed = _sync_partitions(context.instance, source_ids)
    metadata: dict[str, object] = {
        "clips": report["clips"],
        "videos_in": report["videos_in"],
        "videos_curated": report["videos_curated"],
        "rejected": len(report["rejected"]),
        "clips_by_split": dg.MetadataValue.json(report["clips_by_split"]),
        "curated_seconds": report["curated_seconds"],
        "seconds": report["seconds"],
        "rejection_reasons": dg.MetadataValue.md(_reasons_table(report["rejected"])),
        "table": dg.MetadataValue.path(str(Path(config.paths.curated) / "clips.parquet")),
        "partitions_added": dg.MetadataValue.json(added),
        "partitions_removed": dg.MetadataValue.json(removed),
        # Per source video, the md5 of its clips: a video changed in place changes its digest.
        SOURCE_DIGESTS: dg.MetadataValue.json(digests),
    }
    preview = Path(config.paths.reports) / PREVIEW_NAME
    if preview.is_file():
        encoded = base64.b64encode(preview.read_bytes()).decode()
        metadata["preview"] = dg.MetadataValue.md(f"![clips](data:image/png;base64,{encoded})")
    return dg.MaterializeResult(metadata=metadata)


def _sync_partitions(instance: dg.DagsterInstance, source_ids: list[str]) -> tuple[list, list]:
    """Make the ``source_videos`` partitions equal the curated source videos."""
    name = source_videos.name
    existing = set(instance.get_dynamic_partitions(name))
    added = [key for key in source_ids if key not in existing]
    removed = sorted(existing - set(source_ids))
    if added:
        instance.add_dynamic_partitions(name, added)
    for key in removed:
        instance.delete_dynamic_partition(name, key)
    return added, removed


def _reasons_table(rejected: list[dict]) -> str:
    if not rejected:
        return "nothing rejected"
    rows = [f"| {r['path']} | {r['segment'] or 'whole file'} | {r['reason']} |" for r in rejected]
    return "\n".join(["| file | segment | reason |", "| --- | --- | --- |", *rows])


@dg.asset_check(
    asset=curated_clips,
    blocking=True,
    description="Great Expectations suite over clips.parquet: ids, frame counts, fps, size, "
    "durations, existing files, no nulls. Blocks everything downstream when it fails.",
)
def clip_table_is_valid(longvie: LongvieConfigResource) -> dg.AssetCheckResult:
    import pandas as pd

    from longvie.validation.clip_table import validate_clip_table

    config = longvie.compose()
    curated = Path(config.paths.curated)
    outcome = validate_clip_table(pd.read_parquet(curated / "clips.parquet"), curated, config.video)
    return dg.AssetCheckResult(
        passed=outcome.success,
        metadata={
            "expectations": outcome.evaluated,
            "failed": dg.MetadataValue.md(outcome.summary()),
        },
    )

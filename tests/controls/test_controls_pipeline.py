"""`longvie controls` end to end on the smoke profile: every video extracted and checked, global
normalisation in the stored output, accuracy measured, only new videos recomputed, one failing
video reported while the others complete, and the same through Dagster's partitions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from longvie.config import compose
from longvie.controls.checks import check_source_controls
from longvie.controls.depth_estimator import train_depth_estimator
from longvie.controls.extract import read_meta
from longvie.controls.run import expected_frames, extract_controls, source_plans
from longvie.curation import curate
from longvie.synth import render_dataset
from tests.helpers.project import resources_with

pytestmark = pytest.mark.slow  # controls of real and rendered videos


def smoke(root: Path, *overrides: str):
    return compose(["profile=smoke", f"paths.root={root}", *overrides])


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """Rendered smoke data, curated, depth network trained, controls extracted once."""
    root = tmp_path_factory.mktemp("controls")
    config = smoke(root)
    render_dataset(config)
    curate(config, progress=False)
    train_depth_estimator(config, progress=False)
    extract_controls(config, progress=False)
    return root


def copy_of(project: Path, tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(project, root)
    return root


def add_a_rendered_video(root: Path) -> None:
    """One more training video; the renderer is seeded per video, so the others stay identical."""
    config = smoke(root, "synth.train_videos=4", "synth.force=true")
    render_dataset(config)
    curate(config, progress=False)


def test_every_curated_video_gets_checked_controls_and_a_report(project):
    config = smoke(project)
    report = json.loads((project / "reports" / "controls.json").read_text())
    plans = source_plans(config)
    assert report["videos"] == report["extracted"] == len(plans) == 4
    assert report["failed"] == []
    assert report["by_kind"] == {"engine": 4, "estimated": 0}
    for plan in plans:
        assert check_source_controls(project / "data" / "controls" / plan.source_id,
                                     expected_frames(plan)) == []
        assert (project / "data" / "controls" / plan.source_id / "preview.gif").is_file()
    assert report["seconds"] > 0


def test_accuracy_is_measured_on_the_held_out_video_against_ground_truth(project):
    report = json.loads((project / "reports" / "controls.json").read_text())
    tracking, depth = report["tracking"], report["depth"]
    assert tracking["videos"] == depth["videos"] == 1  # the smoke benchmark video
    assert tracking["points"] > 1000
    assert tracking["median_epe_px"] < tracking["zero_motion_median_epe_px"] / 2
    assert 0.5 < tracking["visibility_accuracy"] <= 1.0
    assert 0.0 < depth["abs_rel"] < 1.0 and 0.0 < depth["delta1"] <= 1.0
    assert depth["pixels"] > 10_000


def test_stored_depth_is_normalised_over_the_whole_video_not_per_clip(project):
    config = smoke(project)
    [plan] = [p for p in source_plans(config) if p.split == "benchmark"]
    folder = project / "data" / "controls" / plan.source_id
    meta = read_meta(folder)
    depths = [np.load(folder / clip["file"])["depth"] for clip in meta["clips"]]
    assert len(depths) >= 3
    for first, second in zip(depths, depths[1:], strict=False):
        assert np.array_equal(first[-1], second[0])  # the shared frame, identical in both
    everything = np.concatenate(depths)
    # Global p5/p95 clipping: about 5 % of the values at each end, not per clip.
    assert 0.02 < (everything == 0).mean() < 0.08
    assert 0.02 < (everything == 65535).mean() < 0.08
    assert meta["bounds"]["far"] < meta["bounds"]["near"]


def test_a_second_run_recomputes_nothing_and_a_new_video_only_itself(project, tmp_path):
    root = copy_of(project, tmp_path)
    config = smoke(root)
    again = extract_controls(config, progress=False)
    assert (again["computed"], again["up_to_date"]) == (0, 4)

    add_a_rendered_video(root)
    after = extract_controls(smoke(root), progress=False)
    assert (after["computed"], after["up_to_date"], after["extracted"]) == (1, 4, 5)


def test_one_failing_video_is_reported_and_the_others_complete(project, tmp_path):
    root = copy_of(project, tmp_path)
    config = smoke(root)
    victim = next(p for p in source_plans(config) if p.split == "train")
    (root / "data" / "raw" / victim.source_path).with_suffix(".gt.npz").unlink()

    report = extract_controls(config, progress=False)

    [failure] = report["failed"]
    assert failure["source_id"] == victim.source_id
    assert "no ground-truth sidecar" in failure["reason"] and ".gt.npz" in failure["reason"]
    assert report["extracted"] == 3
    assert not (root / "data" / "controls" / victim.source_id).exists()
    import pandas as pd

    index = pd.read_parquet(root / "data" / "controls" / "controls.parquet")
    assert victim.source_id not in set(index["source_id"])


def test_the_check_catches_broken_controls(project, tmp_path):
    root = copy_of(project, tmp_path)
    config = smoke(root)
    plan = source_plans(config)[0]
    folder = root / "data" / "controls" / plan.source_id
    clip = read_meta(folder)["clips"][0]
    with np.load(folder / clip["file"]) as data:
        arrays = dict(data)
    arrays["tracks_xy"][3, 0] = np.nan
    arrays["depth"] = arrays["depth"][:-1]
    np.savez_compressed(folder / clip["file"], **arrays)

    problems = check_source_controls(folder, expected_frames(plan))

    assert any("NaN" in p for p in problems)
    assert any("depth has" in p and "frames" in p for p in problems)


def test_dagster_partitions_follow_the_videos_and_only_new_ones_are_missing(project, tmp_path):
    from orchestration.assets.controls import control_signals, controls_report, depth_estimator
    from orchestration.assets.data import curated_clips, raw_videos
    from orchestration.partitions import source_videos
    from orchestration.resources import LongvieConfigResource

    root = copy_of(project, tmp_path)
    resources = resources_with(LongvieConfigResource(overrides=["profile=smoke",
                                                                f"paths.root={root}"]))
    instance = dg.DagsterInstance.ephemeral()
    upstream = [raw_videos, curated_clips, depth_estimator]
    assert dg.materialize(upstream, resources=resources, instance=instance).success
    keys = instance.get_dynamic_partitions(source_videos.name)
    assert len(keys) == 4
    partitioned = [curated_clips.to_source_asset(), depth_estimator.to_source_asset(),
                   control_signals]
    for key in keys:
        result = dg.materialize(partitioned, partition_key=key, resources=resources,
                                instance=instance)
        assert result.success
        [event] = result.asset_materializations_for_node("control_signals")
        assert event.metadata["recomputed"].value is False  # the CLI already made them
        assert event.metadata["preview"].value.startswith("![RGB | depth | point map]")
        [check] = result.get_asset_check_evaluations()
        assert check.passed

    add_a_rendered_video(root)
    assert dg.materialize([raw_videos, curated_clips], resources=resources,
                          instance=instance).success
    done = instance.get_materialized_partitions(dg.AssetKey("control_signals"))
    missing = set(instance.get_dynamic_partitions(source_videos.name)) - done
    assert len(missing) == 1
    [new] = missing
    result = dg.materialize(partitioned, partition_key=new, resources=resources,
                            instance=instance)
    [event] = result.asset_materializations_for_node("control_signals")
    assert event.metadata["recomputed"].value is True
    report = dg.materialize([control_signals.to_source_asset(), controls_report],
                            resources=resources, instance=instance)
    [event] = report.asset_materializations_for_node("controls_report")
    assert event.metadata["extracted"].value == 5
    assert "KLT median EPE" in event.metadata["accuracy"].value

    # One run over every partition, as a backfill runs it (the single-run policy): a video
    # whose extraction fails is named, one whose stored controls break the check fails it on its
    # own partition, and every other video is materialised and passes.
    everything = instance.get_dynamic_partitions(source_videos.name)
    broken, tampered, healthy = sorted(keys)[:3]
    [plan] = [p for p in source_plans(smoke(root)) if p.source_id == broken]
    (root / "data" / "raw" / plan.source_path).with_suffix(".gt.npz").unlink()
    folder = root / "data" / "controls" / tampered
    clip = read_meta(folder)["clips"][0]
    with np.load(folder / clip["file"]) as data:
        arrays = dict(data)
    arrays["tracks_xy"][3, 0] = np.nan  # the inputs are unchanged: the output counts as current
    np.savez_compressed(folder / clip["file"], **arrays)

    failed = dg.materialize(partitioned, resources=resources, instance=instance,
                            raise_on_error=False,
                            tags={"dagster/asset_partition_range_start": everything[0],
                                  "dagster/asset_partition_range_end": everything[-1]})

    assert not failed.success
    [failure] = [e for e in failed.all_events if e.is_step_failure]
    assert "no ground-truth sidecar" in failure.step_failure_data.error.message
    assert plan.source_path in failure.step_failure_data.error.message
    materialised = {e.partition for e in failed.asset_materializations_for_node("control_signals")}
    assert materialised == set(everything) - {broken}
    checks = {c.partition: c for c in failed.get_asset_check_evaluations()}
    assert set(checks) == materialised
    assert not checks[tampered].passed and "NaN" in checks[tampered].metadata["problems"].value
    assert all(c.passed for key, c in checks.items() if key != tampered)
    assert dg.materialize(partitioned, partition_key=healthy, resources=resources,
                          instance=instance).success


def test_a_real_video_gets_estimated_controls(project, tmp_path, opencv_samples):
    """A user video (no ground truth) goes through the depth network and KLT."""
    root = copy_of(project, tmp_path)
    user = root / "data" / "raw" / "user"
    user.mkdir()
    shutil.copy(opencv_samples / "vtest.avi", user / "vtest.avi")
    config = smoke(root)
    curate(config, progress=False)

    report = extract_controls(config, progress=False)

    assert report["failed"] == []
    assert report["by_kind"] == {"engine": 4, "estimated": 1}
    [plan] = [p for p in source_plans(config) if p.kind == "estimated"]
    folder = root / "data" / "controls" / plan.source_id
    assert check_source_controls(folder, expected_frames(plan)) == []
    meta = read_meta(folder)
    assert meta["depth_model"]["kind"] == "longvie"
    with np.load(folder / meta["clips"][0]["file"]) as clip:
        # People walk through vtest.avi: tracks move and some are lost, the depth varies.
        assert clip["tracks_visible"].mean() < 1.0
        assert np.abs(clip["tracks_xy"][-1] - clip["tracks_xy"][0]).max() > 0.5
        assert clip["depth"].std() > 1000

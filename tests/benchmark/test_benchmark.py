"""The benchmark and the gate end to end on the smoke data, with random-weight models.

Random weights only exercise the plumbing: what is generated, scored, written and logged, and
that a model which cannot beat the static baseline never becomes champion. The learning claims
live in the README's figures from trained models.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from longvie.config import compose
from longvie.errors import LongvieError
from tests.helpers.project import copy_project, random_stage3, resources_with

CONTENDERS = {"candidate", "naive", "static", "controls_only"}


def register(config, folder: Path) -> int:
    import mlflow

    from longvie.registry import log_and_register
    from longvie.tracking import mlflow_run

    with mlflow_run(config, "test-stage3") as run:
        mlflow.log_param("seed", folder.parent.name)
    return log_and_register(config, run.info.run_id, folder, "stage3", steps=1)["version"]


@pytest.fixture(scope="module")
def project(curated, tmp_path_factory) -> Path:
    """The smoke data with two registered random-weight stage-3 versions (1 and 2)."""
    root = copy_project(curated, tmp_path_factory.mktemp("benchmark"))
    config = smoke(root)
    for seed, name in enumerate(("first", "second")):
        register(config, random_stage3(root, config, name, seed))
    return root


def smoke(root: Path, *overrides: str):
    return compose(["profile=smoke", f"paths.root={root}", "benchmark.frames=17",
                    "benchmark.steps=2", "controls.depth.model=/nonexistent", *overrides])


def aliases(config) -> dict[str, int]:
    from mlflow import MlflowClient

    from longvie.tracking import tracking_uri

    model = MlflowClient(tracking_uri(config)).get_registered_model("longvie")
    return {alias: int(version) for alias, version in model.aliases.items()}


def test_every_contender_is_scored_on_every_held_out_video_and_pictures_are_left(project):
    from longvie.benchmark.run import run_benchmark
    from longvie.video.io import read_video

    config = smoke(project, "benchmark.candidate=1")
    report = run_benchmark(config, progress=False)
    assert report["candidate_version"] == 1 and report["champion_version"] is None
    assert set(report["models"]) == CONTENDERS
    for name in CONTENDERS:
        row = report["models"][name]
        assert 0 < row["ssim"] <= 1 and np.isfinite(row["psnr_db"])
        assert row["seam_discontinuity"] is not None and row["track_epe_px"] is not None
        assert len(report["per_clip"][name]["ssim"]) == 2  # 17 frames = 2 clips of 9
        assert len(report["per_clip"][name]["seam_discontinuity"]) == 1  # the seam into clip 1
    assert report["models"]["static"]["flicker"] == 1.0  # nothing ever changes
    # The configured depth model does not exist: the dense fidelity is skipped, with why.
    assert "/nonexistent" in report["skipped"]["depth_fidelity"]
    assert report["models"]["candidate"]["depth_pearson"] is None
    assert {"lpips", "subject_consistency", "background_consistency"} <= set(report["skipped"])
    saved = json.loads((project / "reports" / "benchmark.json").read_text())
    assert saved["models"] == report["models"] and saved["mlflow_run_id"]
    movie, _ = read_video(Path(report["side_by_side"][0]))
    assert movie.shape == (17, 32, 5 * 32, 3)  # reference | candidate | naive | static | controls_only
    assert all(Path(p).stat().st_size > 0 for p in report["pictures"])


def test_a_second_run_with_the_same_inputs_reuses_the_report(project, monkeypatch):
    from longvie.benchmark import run

    config = smoke(project, "benchmark.candidate=1")
    first = run.run_benchmark(config, progress=False, log_mlflow=False)
    monkeypatch.setattr(run, "regenerate", lambda *a, **k: pytest.fail("regenerated"))
    again = run.run_benchmark(config, progress=False, log_mlflow=False)
    assert again["up_to_date"] and again["models"] == first["models"]


def test_files_a_killed_run_left_beside_the_report_are_rewritten_not_trusted(project):
    """A run killed after it rewrote its plots left them beside the older report; the next run
    with the report's inputs must not vouch for them."""
    import hashlib

    from longvie.benchmark import run

    config = smoke(project, "benchmark.candidate=1", f"paths.reports={project}/leftovers")
    first = run.run_benchmark(config, progress=False, log_mlflow=False)
    plot = Path(first["pictures"][0])
    assert str(plot) in first["artifacts"] and str(plot.with_suffix(".csv")) in first["artifacts"]
    plot.write_bytes(b"a half-written picture from a killed run")
    again = run.run_benchmark(config, progress=False, log_mlflow=False)
    assert not again.get("up_to_date")
    assert hashlib.md5(plot.read_bytes()).hexdigest() == again["artifacts"][str(plot)]
    assert run.run_benchmark(config, progress=False, log_mlflow=False)["up_to_date"]


def test_the_gate_figures_are_means_over_sampler_seeds_with_their_spread(project):
    from longvie.benchmark.run import run_benchmark
    from longvie.benchmark.scoring import QUALITY_METRICS

    one = run_benchmark(smoke(project, "benchmark.candidate=1"), progress=False,
                        log_mlflow=False)
    two = run_benchmark(smoke(project, "benchmark.candidate=1", "benchmark.seeds=2"),
                        progress=False, log_mlflow=False)
    assert two["seeds"] == [0, 1] and one["seeds"] == [0]
    assert set(two["per_seed"]["candidate"]) == {"0", "1"}
    assert set(two["per_seed"]["static"]) == {"0"}  # nothing random to repeat
    for name in ("candidate", "naive"):
        seeds = two["per_seed"][name]
        # Seed 0 is the single-seed run's figure; seed 1 samples other noise.
        assert seeds["0"]["ssim"] == pytest.approx(one["models"][name]["ssim"])
        assert seeds["1"]["ssim"] != pytest.approx(seeds["0"]["ssim"])
        for metric in QUALITY_METRICS:
            mean = (seeds["0"][metric] + seeds["1"][metric]) / 2
            assert two["models"][name][metric] == pytest.approx(mean)
        assert two["seed_sd"][name]["ssim"] == pytest.approx(
            abs(seeds["0"]["ssim"] - seeds["1"]["ssim"]) / 2 ** 0.5)
        # Control fidelity is measured on the first seed's video only.
        assert two["models"][name]["track_epe_px"] == one["models"][name]["track_epe_px"]
    assert two["seed_sd"]["static"]["ssim"] is None
    assert two["models"]["static"] == one["models"]["static"]


def test_a_random_weight_candidate_is_rejected_and_the_champion_alias_stays(project):
    from mlflow import MlflowClient

    from longvie.benchmark.run import run_benchmark
    from longvie.promotion.run import promote_from_benchmark
    from longvie.tracking import tracking_uri

    config = smoke(project, "benchmark.candidate=2")
    client = MlflowClient(tracking_uri(config))
    client.set_registered_model_alias("longvie", "champion", "1")
    try:
        report = run_benchmark(config, progress=False, log_mlflow=False)
        assert set(report["models"]) == CONTENDERS | {"champion"}
        assert report["champion_version"] == 1
        decision = promote_from_benchmark(config)
        assert decision["decision"] == "challenger"
        assert any("static" in reason for reason in decision["reasons"])
        assert aliases(config) == {"champion": 1, "challenger": 2}
        saved = json.loads((project / "reports" / "promotion.json").read_text())
        assert saved["decision"] == "challenger" and saved["previous_champion"] == 1
    finally:
        client.delete_registered_model_alias("longvie", "champion")
        client.delete_registered_model_alias("longvie", "challenger")


def test_a_crash_mid_benchmark_moves_no_alias_and_leaves_no_report(project, monkeypatch):
    from longvie.benchmark import run

    config = smoke(project, "benchmark.candidate=2", f"paths.reports={project}/crashed")
    calls = []

    def crash_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed mid-benchmark")
        return original(*args, **kwargs)

    original = run.regenerate
    monkeypatch.setattr(run, "regenerate", crash_on_second)
    before = aliases(config)
    with pytest.raises(RuntimeError, match="killed"):
        run.run_benchmark(config, progress=False, log_mlflow=False)
    assert aliases(config) == before
    assert not (project / "crashed" / "benchmark.json").exists()
    from longvie.promotion.run import promote_from_benchmark

    with pytest.raises(LongvieError, match="run `longvie benchmark` first"):
        promote_from_benchmark(config)


def test_an_unknown_candidate_fails_before_anything_is_generated(project, monkeypatch):
    from longvie.benchmark import run

    monkeypatch.setattr(run, "regenerate", lambda *a, **k: pytest.fail("generated"))
    with pytest.raises(LongvieError, match="no such version"):
        run.run_benchmark(smoke(project, "benchmark.candidate=99"), progress=False)


def test_the_dagster_assets_benchmark_then_record_the_decision(project):
    import dagster as dg

    from orchestration.assets.evaluation import benchmark, promotion
    from orchestration.resources import LongvieConfigResource

    overrides = ["profile=smoke", f"paths.root={project}", "benchmark.frames=17",
                 "benchmark.steps=2", "benchmark.candidate=1", "controls.depth.model=/none",
                 f"paths.reports={project}/dagster_reports"]
    result = dg.materialize([benchmark, promotion],
                            resources=resources_with(LongvieConfigResource(overrides=overrides)))
    assert result.success
    [scored] = result.asset_materializations_for_node("benchmark")
    assert scored.metadata["candidate_version"].value == 1
    assert "| ssim |" in scored.metadata["metrics"].value
    [decided] = result.asset_materializations_for_node("promotion")
    assert decided.metadata["decision"].value in {"champion", "challenger"}
    saved = json.loads((project / "dagster_reports" / "promotion.json").read_text())
    assert saved["decision"] == decided.metadata["decision"].value
    config = smoke(project)
    expected = {"champion": 1} if saved["decision"] == "champion" else {"challenger": 1}
    assert aliases(config) == expected


@pytest.mark.parametrize("frames, clip_frames, every", [
    (465, 17, 64),  # tiny's minute: 29 clips, 8 columns from frame 0 to 448
    (129, 17, 16),  # 8 clips: one column per clip start
    (17, 9, 8),     # shorter than the columns: every clip start
])
def test_the_frame_strip_spreads_its_columns_over_the_whole_video(frames, clip_frames, every):
    from longvie.benchmark.run import strip_every

    assert strip_every(frames, clip_frames) == every


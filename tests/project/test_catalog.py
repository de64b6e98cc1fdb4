"""What a user picks from on the command line: versions, sources, control videos, --version."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from longvie.cli import main
from longvie.config import compose


def test_version_prints_the_installed_package_version(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip() == f"longvie {version('longvie')}"


def test_every_command_help_shows_examples(capsys):
    from longvie.cli import COMMANDS

    for name in COMMANDS:
        with pytest.raises(SystemExit):
            main([name, "--help"])
        text = capsys.readouterr().out
        assert "examples:" in text and f"longvie {name}" in text, name


def test_sources_lists_each_curated_source_with_its_split(curated, capsys):
    import pandas as pd

    assert main(["sources", "profile=smoke", f"paths.root={curated}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["source", "split", "clips", "seconds"]
    clips = pd.read_parquet(curated / "data" / "curated" / "clips.parquet")
    listed = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert listed == dict(clips.groupby("source_id")["split"].first())
    assert lines[1].split()[1] == "benchmark"  # what a user tries first


def test_sources_before_curation_says_which_step_to_run(tmp_path, capsys):
    assert main(["sources", "profile=smoke", f"paths.root={tmp_path}"]) == 1
    assert "run `longvie curate` first" in capsys.readouterr().err


def test_exported_controls_are_videos_generate_reads_back(curated, tmp_path, capsys):
    from longvie.generation.files import FileControls
    from longvie.generation.sources import stored_video
    from tests.helpers.project import copy_project

    root = copy_project(curated, tmp_path / "project")
    config = compose(["profile=smoke", f"paths.root={root}"])
    source = stored_video(config, min((root / "data" / "controls").glob("scene_*")).name)
    assert main(["export-controls", "profile=smoke", f"paths.root={root}",
                 f"generation.source={source.source_id}"]) == 0
    folder = root / "outputs" / "controls" / source.source_id
    assert str(folder / "side_by_side.mp4") in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir()) == ["depth.mp4", "point_map.mp4",
                                                        "side_by_side.mp4"]  # no temporaries
    files = FileControls(folder / "depth.mp4", folder / "point_map.mp4")
    assert files.num_frames == source.num_frames
    depth, points = files.span(0, source.num_frames)
    stored_depth, stored_points = source.span(0, source.num_frames)
    assert np.corrcoef(depth.ravel(), stored_depth.ravel())[0, 1] > 0.95
    assert np.abs(points.astype(int) - stored_points).mean() < 8  # H.264 at crf 12
    from longvie.video.io import probe

    assert probe(folder / "side_by_side.mp4").width == 3 * probe(folder / "depth.mp4").width


def test_export_controls_needs_a_source(smoke_config, capsys):
    config = smoke_config()
    assert main(["export-controls", "profile=smoke", f"paths.root={config.paths.root}"]) == 1
    assert "generation.source" in capsys.readouterr().err


@pytest.fixture
def store(tmp_path, monkeypatch):
    from longvie import tracking
    from longvie.tracking import tracking_client

    monkeypatch.setattr(tracking, "USER_TRACKING_URI", None)
    config = compose(["profile=smoke", f"paths.root={tmp_path}"])
    return config, tracking_client(config)


def test_models_lists_versions_with_aliases_decisions_and_benchmark_figures(store, capsys):
    import mlflow

    from longvie.registry import ensure_registered_model
    from longvie.tracking import mlflow_run

    config, client = store
    overrides = ["profile=smoke", f"paths.root={config.paths.root}"]
    assert main(["models", *overrides]) == 0
    assert "nothing registered" in capsys.readouterr().out
    name = config.mlflow.registered_model
    ensure_registered_model(client, name)
    source = Path(config.paths.root) / "model_source"
    source.mkdir()
    for stage in ("stage1", "stage3", "stage3"):
        created = client.create_model_version(name, str(source))
        client.set_model_version_tag(name, created.version, "longvie.stage", stage)
    client.set_registered_model_alias(name, "champion", "2")
    client.set_registered_model_alias(name, "challenger", "3")
    client.set_model_version_tag(name, "3", "longvie.promotion.decision", "challenger")
    for ssim in (0.10, 0.25):  # the newer benchmark run of version 3 is the one shown
        with mlflow_run(config, "benchmark", {"longvie.step": "benchmark"}):
            mlflow.log_params({"candidate_version": 3})
            mlflow.log_metrics({"candidate.ssim": ssim, "candidate.psnr_db": 14.5})
    assert main(["models", *overrides]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0][:5] == ["version", "stage", "steps", "aliases", "decision"]
    by_version = {row[0]: row[1:] for row in rows[1:]}
    assert list(by_version) == ["3", "2", "1"]  # newest first
    assert by_version["3"] == ["stage3", "-", "challenger", "challenger", "0.25", "14.5"]
    assert by_version["2"] == ["stage3", "-", "champion", "-", "-", "-"]
    assert by_version["1"] == ["stage1", "-", "-", "-", "-", "-"]

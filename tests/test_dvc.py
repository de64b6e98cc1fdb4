"""DVC: data.dvc versions data/raw, push/pull round-trips it, `dvc repro` runs the stages
(curate, depth_estimator, controls, the base, the three controller stages, the benchmark and the
promotion), then no-ops."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

BIN = Path(sys.executable).parent


def run(cwd: Path, *command: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    env.pop("LONGVIE_ROOT", None)
    env.pop("MLFLOW_TRACKING_URI", None)  # set by mlflow itself in this process: not the user's
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh git + DVC project holding this repository's pipeline files and smoke raw data."""
    root = tmp_path_factory.mktemp("project")
    for name in ("conf", "src", "dvc.yaml", "data.dvc", ".dvcignore"):
        source = REPO / name
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, root / name)
    (root / "params.yaml").write_text("profile: smoke\n")
    run(root, "git", "init", "-q")
    run(root, "dvc", "init", "-q")
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
    out = run(root, "longvie", "synth", "profile=smoke")
    assert "data.dvc now tracks data/raw" in out
    return root


def test_synth_records_the_raw_data_in_data_dvc(project):
    outs = yaml.safe_load((project / "data.dvc").read_text())["outs"][0]
    assert outs["path"] == "data/raw"
    assert outs["md5"].endswith(".dir") and outs["nfiles"] >= 12  # 4 videos x 3 files + manifest


def test_push_and_pull_round_trip_the_raw_data(project):
    before = digest(project / "data" / "raw")
    shutil.rmtree(project / "data" / "raw")
    shutil.rmtree(project / ".dvc" / "cache")
    run(project, "dvc", "pull", "-q", "data.dvc")
    assert digest(project / "data" / "raw") == before


def test_repro_runs_the_pipeline_and_a_second_repro_does_nothing(project):
    first = run(project, "dvc", "repro")
    for stage in ("curate", "depth_estimator", "controls", "train_base", "train_stage1",
                  "train_stage2", "train_stage3", "benchmark", "promote"):
        assert f"Running stage '{stage}'" in first
    assert (project / "reports" / "curation.json").is_file()
    assert (project / "data" / "curated" / "clips.parquet").is_file()
    assert (project / "data" / "controls" / "controls.parquet").is_file()
    second = run(project, "dvc", "repro")
    assert "Running stage" not in second
    assert "didn't change" in second or "up to date" in second
    metrics = run(project, "dvc", "metrics", "show")
    assert "videos_curated" in metrics
    assert "median_epe_px" in metrics and "abs_rel" in metrics
    assert "loss_with_controls" in metrics and "loss_with_history" in metrics
    assert "seam_discontinuity" in metrics and "candidate_version" in metrics
    assert (project / "models" / "stage3" / "model" / "longvie.json").is_file()

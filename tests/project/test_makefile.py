"""The Makefile's housekeeping targets: help lists the commands, clean keeps what is not its."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def make(folder: Path, target: str) -> str:
    done = subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), target], cwd=folder,
                          capture_output=True, text=True, check=True)
    return done.stdout


def test_help_names_the_two_set_up_commands_first():
    lines = make(ROOT, "help").splitlines()
    assert lines[0].startswith("make run") and lines[1].startswith("make test")
    assert any(line.startswith("make clean") for line in lines)


def test_clean_removes_run_outputs_and_says_so_but_keeps_inputs_weights_and_reports(tmp_path):
    produced = ["data/curated/clips.parquet", "data/controls/a.npz", "models/stage1/x",
                "mlflow.db", "outputs/generated.mp4", ".dagster_home/runs.db",
                "reports/train_1_loss.png", "reports/train_1_sample.gif"]
    kept = ["data/raw/synth/a.mp4", "weights/tiny-base/model.safetensors", "reports/train_1.json",
            ".dvc-remote/files/md5/ab/cdef", ".venv/bin/python", "README.md"]
    for name in produced + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    said = make(tmp_path, "clean")
    assert not [name for name in produced if (tmp_path / name).exists()]
    assert [name for name in kept if (tmp_path / name).exists()] == kept
    for top in ("data/curated", "models", "mlflow.db", "reports/train_1_loss.png"):
        assert f"removing {top}" in said
    assert make(tmp_path, "clean") == ""  # nothing left to remove: nothing said

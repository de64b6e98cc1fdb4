"""The prepared GPU check runs end to end at toy sizes on the CPU, so it is ready when a GPU is."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu_check") / "dry.json"
    assert gpu_check.main(["--dry-run", f"--out={out}"]) == 0
    return json.loads(out.read_text())


def test_the_dry_run_measures_every_part(dry_run):
    assert {"dit", "batch", "sampling", "vae", "tiny_training"} <= set(dry_run)
    assert dry_run["command"] == "bench/gpu_check.py --dry-run"
    assert set(dry_run["dit"]["runs"]) == {"2+1", "4+1", "4+2"}
    assert dry_run["batch"]["largest"] >= 1
    assert dry_run["sampling"]["steps"] == gpu_check.DRY.sample_steps
    assert dry_run["vae"]["latents"][2] == (gpu_check.DRY.frames - 1) // 4 + 1
    assert dry_run["tiny_training"]["steps_per_s"]["cpu"] > 0
    full = dry_run["full_model_flops"]  # the full depth counted on the meta device
    assert full["forward"] == pytest.approx(dry_run["dit"]["extrapolated"]["forward_flops"],
                                            rel=1e-6)


def test_flops_are_counted_and_extrapolate_block_by_block(dry_run):
    runs = dry_run["dit"]["runs"]
    flops = dry_run["dit"]["extrapolated"]["train_flops"]
    assert runs["2+1"]["train_flops"] < runs["4+1"]["train_flops"] < runs["4+2"]["train_flops"]
    assert 0 < flops["per_controller_layer"] < flops["per_block"]  # two half-width blocks
    assert flops["full"] == pytest.approx(flops["outside_blocks"] + 40 * flops["per_block"]
                                          + 12 * flops["per_controller_layer"])
    for run in runs.values():  # the base is frozen (stages 1-2): weight gradients of the
        assert 1.2 < run["train_flops"] / run["forward_flops"] < 3.5  # controller only


def test_depths_are_solved_exactly():
    measured = {(2, 1): 2 * 3.0 + 1.0 + 0.5, (4, 1): 4 * 3.0 + 1.0 + 0.5,
                (4, 2): 4 * 3.0 + 2 * 1.0 + 0.5}
    solved = gpu_check.solve_depths(measured, (40, 12))
    assert solved["per_block"] == pytest.approx(3.0)
    assert solved["per_controller_layer"] == pytest.approx(1.0)
    assert solved["outside_blocks"] == pytest.approx(0.5)
    assert solved["full"] == pytest.approx(0.5 + 120 + 12)


def test_without_a_gpu_the_real_check_refuses_and_says_how_to_dry_run(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a GPU machine
    assert gpu_check.main([]) == 2
    assert "--dry-run" in capsys.readouterr().err

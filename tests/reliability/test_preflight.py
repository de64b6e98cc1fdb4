"""Checked before work: a step whose output folder cannot be written refuses at once, naming
the folder, instead of failing with a traceback after all its work."""

from __future__ import annotations

import importlib

import pytest

from longvie.preflight import OutputNotWritableError, require_writable

STEPS = [  # (module, function, extra arguments, the paths key made unwritable)
    ("longvie.synth", "render_dataset", (), "raw"),
    ("longvie.curation", "curate", (), "reports"),
    ("longvie.controls.depth_estimator", "train_depth_estimator", (), "reports"),
    ("longvie.controls.run", "extract_controls", (), "reports"),
    ("longvie.steps", "train_report", ("1",), "models"),
    ("longvie.benchmark.run", "run_benchmark", (), "reports"),
    ("longvie.promotion.run", "promote_from_benchmark", (), "reports"),
    ("longvie.training.pretrain.run", "pretrain", (), "reports"),
]


@pytest.mark.parametrize(("module", "function", "args", "key"), STEPS,
                         ids=[step[1] for step in STEPS])
def test_every_step_refuses_an_unwritable_output_folder_before_any_work(
        smoke_config, tmp_path, module, function, args, key):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a folder should be\n")
    config = smoke_config(f"paths.{key}={blocked}/{key}")
    step = getattr(importlib.import_module(module), function)
    with pytest.raises(OutputNotWritableError, match=f"cannot write to {blocked}"):
        step(config, *args)
    # Nothing was written: at most the other (empty) output folders were created.
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [blocked]


def test_too_little_free_space_is_refused_with_the_setting_to_change(tmp_path):
    with pytest.raises(OutputNotWritableError, match="orchestration.min_free_mb"):
        require_writable("curate", [tmp_path], min_free_mb=1e12)

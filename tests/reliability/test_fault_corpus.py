"""Fault corpus, data steps: synth, curate, the depth estimator and the controls SIGKILLed at
their write points leave whole files, and the same command again leaves exactly what an
uninterrupted run leaves (which points, and the check: ``tests/helpers/fault_corpus.py``)."""

from __future__ import annotations

import pytest

from tests.helpers.fault_corpus import (
    assert_full_disk_anywhere_keeps_outputs_and_a_rerun_finishes,
    assert_killed_anywhere_then_rerun_finishes,
    remove,
)

pytestmark = pytest.mark.slow  # each step run seven times, killed and again

# step: (its command, how the project is set up before it: so that it has work to do)
STEPS = {
    "synth": (["synth"], remove("data/raw/benchmark")),
    "curate": (["curate"], remove("data/curated", "reports/curation.json")),
    "depth-estimator": (["depth-estimator"], remove("models/depth_estimator",
                                                     "reports/depth_estimator.json")),
    "controls": (["controls"], remove("data/controls", "reports/controls.json")),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_data_step_killed_at_any_write_point_leaves_whole_files_and_a_rerun_finishes_it(
        harness, curated, tmp_path, step):
    command, prepare = STEPS[step]
    assert_killed_anywhere_then_rerun_finishes(harness, curated, tmp_path, command, prepare)


@pytest.mark.parametrize("step", list(STEPS))
def test_a_data_step_on_a_full_disk_exits_1_keeping_its_outputs_and_a_rerun_finishes_it(
        harness, curated, tmp_path, step):
    command, prepare = STEPS[step]
    assert_full_disk_anywhere_keeps_outputs_and_a_rerun_finishes(harness, curated, tmp_path,
                                                                 command, prepare)

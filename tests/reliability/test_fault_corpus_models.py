"""Fault corpus, model steps: the base, stages 1-3, the benchmark and the promotion SIGKILLed at
their write points leave whole files, and the same command again leaves exactly the files and
the registry an uninterrupted run leaves (which points, and the check: ``tests/helpers/fault_corpus.py``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from longvie.config import compose
from tests.helpers.project import copy_project, random_stage3
from tests.helpers.fault_corpus import (
    REGISTRY,
    assert_full_disk_anywhere_keeps_outputs_and_a_rerun_finishes,
    assert_killed_anywhere_then_rerun_finishes,
    remove,
)

pytestmark = pytest.mark.slow  # each step run seven times, killed and again

SMOKE = ["profile=smoke"]
# The benchmark at the size of tests/benchmark/test_benchmark.py: two clips of the smoke video, 2 steps.
BENCHMARK = ["benchmark.candidate=1", "benchmark.frames=17", "benchmark.steps=2"]
# A gate that only the SSIM drift slope decides, against the static video only: the random
# candidate drifts far less than a frozen frame (about -0.005 against -0.58 per frame), so it
# becomes champion and the promotion moves the alias (the path a kill can leave half done).
PROMOTE_AS_CHAMPION = [
    "promotion.baselines=[static]", "promotion.must_beat_baselines=[ssim_drift_slope]",
    *(f"promotion.metrics.{metric}.weight=0"
      for metric in ("ssim", "psnr_db", "seam_discontinuity", "flicker")),
]


def config(root: Path, *overrides: str):
    return compose([*SMOKE, f"paths.root={root}", *overrides])


@pytest.fixture(scope="module")
def with_base(curated, tmp_path_factory) -> Path:
    """The smoke data curated with controls, and a trained base (what stage 1 starts from)."""
    from longvie.training.base.run import train_base

    root = copy_project(curated, tmp_path_factory.mktemp("with_base"), ("data", "models"))
    train_base(config(root), progress=False, log_mlflow=False)
    shutil.rmtree(root / "models" / ".locks", ignore_errors=True)
    return root


@pytest.fixture(scope="module")
def with_stages(with_base, tmp_path_factory) -> Path:
    """... and stages 1 and 2 trained on it (what stages 2 and 3 start from)."""
    from longvie.training.stages.run import train_stage

    root = copy_project(with_base, tmp_path_factory.mktemp("with_stages"), ("data", "models"))
    for key in ("1", "2"):
        train_stage(config(root), key, progress=False, log_mlflow=False)
    shutil.rmtree(root / "models" / ".locks", ignore_errors=True)
    return root


def registered_candidate(root: Path) -> None:
    """A random-weight stage-3 model registered as version 1 of ``longvie`` in the root's own
    MLflow store: the benchmark's candidate (the same weights in every copy)."""
    import mlflow

    from longvie.registry import log_and_register
    from longvie.tracking import mlflow_run

    with mlflow_run(config(root), "corpus-stage3") as run:
        mlflow.log_param("seed", 0)
    log_and_register(config(root), run.info.run_id,
                     random_stage3(root, config(root), "candidate", 0), "stage3", steps=1)


@pytest.fixture(scope="module")
def benchmarked(with_base, tmp_path_factory) -> Path:
    """... and a registered candidate with its benchmark report: what a promotion reads. The
    registry travels with the copies: a promotion reads versions, tags and aliases, never the
    artifacts whose locations name this root."""
    from longvie.benchmark.run import run_benchmark

    root = copy_project(with_base, tmp_path_factory.mktemp("benchmarked"), ("data", "models"))
    registered_candidate(root)
    run_benchmark(config(root, *BENCHMARK), progress=False, log_mlflow=False)
    shutil.rmtree(root / "models" / ".locks", ignore_errors=True)
    return root


# step: (the project it starts from, its command, what is removed or added so it has work to do,
#        the registry an uninterrupted run leaves: stage tag per version, aliases)
STEPS = {
    "base": ("with_base", ["train", "stage=base"], remove("models/base"), (["base"], {})),
    "train stage 1": ("with_base", ["train", "stage=1"], remove("models/stage1"),
                      (["stage1"], {})),
    "train stage 2": ("with_stages", ["train", "stage=2"], remove("models/stage2"),
                      (["stage2"], {})),
    "train stage 3": ("with_stages", ["train", "stage=3"], remove("models/stage3"),
                      (["stage3"], {})),
    "benchmark": ("with_base", ["benchmark", *BENCHMARK], registered_candidate,
                  (["stage3"], {})),
    "promote": ("benchmarked", ["promote", *PROMOTE_AS_CHAMPION], remove(),
                (["stage3"], {"champion": "1"})),
}
CARRIED = {"benchmarked": ("data", "models", "reports", "mlruns", "mlflow.db")}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_model_step_killed_at_any_write_point_leaves_whole_files_and_a_rerun_finishes_it(
        harness, request, tmp_path, step):
    source, command, prepare, (stages, aliases) = STEPS[step]
    reference = assert_killed_anywhere_then_rerun_finishes(
        harness, request.getfixturevalue(source), tmp_path, command, prepare,
        CARRIED.get(source, ("data", "models")))
    registry = reference[REGISTRY]  # ... and the reruns left it exactly so: one version each
    assert [tags["longvie.stage"] for tags in registry["versions"].values()] == stages
    assert registry["aliases"] == aliases


@pytest.mark.parametrize("step", list(STEPS))
def test_a_model_step_on_a_full_disk_exits_1_keeping_its_outputs_and_a_rerun_finishes_it(
        harness, request, tmp_path, step):
    source, command, prepare, _ = STEPS[step]
    assert_full_disk_anywhere_keeps_outputs_and_a_rerun_finishes(
        harness, request.getfixturevalue(source), tmp_path, command, prepare,
        CARRIED.get(source, ("data", "models")))

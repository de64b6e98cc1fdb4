"""Training on more than one process: Lightning DDP with 2 CPU ranks (gloo) on the smoke data.

Rank 0 is the only writer (checkpoints, model folder, report, MLflow run, registry version); the
batch sampler gives each rank its slice of the step's global batch and every sample draws its
noise and degradations from its own generator, so 2 ranks x 1 sample train what 1 process x 2
samples trains, to float tolerance. A rank killed mid-run fails the run; the same command again
resumes from rank 0's last checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from longvie.config import compose
from tests.helpers.project import copy_project

pytestmark = pytest.mark.slow  # 2-process trainings

DDP = ["training.trainer.devices=2", "training.trainer.strategy=ddp_find_unused_parameters_true"]
STAGE1_STEPS = ["training.stage1.steps=6"]  # smoke: global batch 2, a checkpoint every 2 steps
TIMEOUT_S = 600


def run(command: list[str]) -> subprocess.CompletedProcess:
    # MLflow exports the last tracking URI set in this process; each root has its own store.
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S,
                          check=False, env=env)


def longvie(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "longvie", *args, "profile=smoke", f"paths.root={root}",
                *DDP])


def weights(root: Path, step: str, part: str) -> dict[str, torch.Tensor]:
    folder = root / "models" / step / "model" / part
    return {name: tensor for path in sorted(folder.glob("*.safetensors"))
            for name, tensor in load_file(path).items()}


def assert_close(ddp: dict, single: dict, what: str) -> None:
    assert ddp.keys() == single.keys(), what
    for name in single:
        assert torch.allclose(ddp[name], single[name], atol=1e-4, rtol=0), f"{what}: {name}"


def runs_and_versions(root: Path, step: str) -> tuple[list, list]:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{root}/mlflow.db")
    experiment = client.get_experiment_by_name("longvie")
    runs = client.search_runs([experiment.experiment_id], f"tags.`longvie.step` = '{step}'")
    stage = "base" if step == "base" else step
    versions = [v for v in client.search_model_versions("name='longvie'")
                if v.tags.get("longvie.stage") == stage]
    return runs, versions


@pytest.fixture(scope="module")
def single_base(curated, tmp_path_factory) -> Path:
    """The base trained by one process: the reference, and the start of the stage runs."""
    from longvie.training.base.run import train_base

    root = copy_project(curated, tmp_path_factory.mktemp("single_base"))
    train_base(compose(["profile=smoke", f"paths.root={root}"]), progress=False)
    return root


@pytest.fixture(scope="module")
def single_stage1(single_base, tmp_path_factory) -> Path:
    from longvie.training.stages.run import train_stage

    root = copy_project(single_base, tmp_path_factory.mktemp("single_stage1"), ("data", "models"))
    train_stage(compose(["profile=smoke", f"paths.root={root}", *STAGE1_STEPS]), "1",
                progress=False, log_mlflow=False)
    return root


def test_a_two_process_base_trains_what_one_process_trains_and_is_recorded_once(
        curated, single_base, tmp_path):
    root = copy_project(curated, tmp_path / "ddp")
    done = longvie(root, "train", "stage=base")
    assert done.returncode == 0, done.stderr[-3000:]
    for part in ("vae", "transformer", "text_encoder"):
        assert_close(weights(root, "base", part), weights(single_base, "base", part), part)
    runs, versions = runs_and_versions(root, "base")
    assert sorted(r.data.tags["longvie.part"] for r in runs) == ["dit", "vae"]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert len(versions) == 1
    report = json.loads((root / "reports" / "train_base.json").read_text())
    assert report["steps"] == 8 and "rank_zero" not in report
    single = json.loads((single_base / "reports" / "train_base.json").read_text())
    assert report["heldout"]["flow_matching_loss"] == pytest.approx(
        single["heldout"]["flow_matching_loss"], abs=1e-3)


def test_a_two_process_stage_trains_what_one_process_trains_and_is_recorded_once(
        single_base, single_stage1, tmp_path):
    root = copy_project(single_base, tmp_path / "ddp", ("data", "models"))
    done = longvie(root, "train", "stage=1", *STAGE1_STEPS)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_close(weights(root, "stage1", "controller"), weights(single_stage1, "stage1",
                                                                 "controller"), "controller")
    runs, versions = runs_and_versions(root, "stage1")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert len(versions) == 1 and versions[0].run_id == runs[0].info.run_id
    assert json.loads((root / "reports" / "train_1.json").read_text())["steps"] == 6


KILL_RANK_1 = textwrap.dedent(
    """
    import os, signal, sys
    import lightning as L
    from longvie.config import compose
    from longvie.training.stages.run import train_stage

    class KillRank1At(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_rank == 1 and trainer.global_step == int(sys.argv[2]):
                os.kill(os.getpid(), signal.SIGKILL)

    config = compose(["profile=smoke", f"paths.root={sys.argv[1]}", *sys.argv[3:]])
    train_stage(config, "1", progress=False, callbacks=(KillRank1At(),))
    """
)


def test_a_killed_rank_fails_the_run_and_the_same_command_resumes_it(
        single_base, single_stage1, tmp_path):
    root = copy_project(single_base, tmp_path / "killed", ("data", "models"))
    script = tmp_path / "kill_rank_1.py"  # a file: Lightning starts rank 1 with the same argv
    script.write_text(KILL_RANK_1)
    killed = run([sys.executable, str(script), str(root), "3", *STAGE1_STEPS, *DDP])
    assert killed.returncode != 0, killed.stderr[-3000:]
    checkpoints = root / "models" / "stage1" / "checkpoints"
    interrupted = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)
    assert 2 <= interrupted["global_step"] < 6  # it stopped mid-run, after a checkpoint
    assert not (root / "models" / "stage1" / "model").exists()  # nothing half-finished shown
    resumed = longvie(root, "train", "stage=1", *STAGE1_STEPS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_close(weights(root, "stage1", "controller"), weights(single_stage1, "stage1",
                                                                 "controller"), "controller")
    runs, versions = runs_and_versions(root, "stage1")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # the killed run, resumed
    assert len(versions) == 1

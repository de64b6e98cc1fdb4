"""A fault corpus built by the tests: steps SIGKILLed at their write points, then run again.

Each step runs once uninterrupted in a child process that counts its write points under the
project root (``tests/kill_at_write.py``: files opened for writing, renames onto the root), and
that run's outputs are the reference. Then, from a fresh copy of the same project, the step is
killed at its first, middle and last write point. After the kill every output file that is
visible (staging folders and hidden files aside) must be whole: byte for byte (JSON: value for value, timings aside) either what was
there before the step or what the uninterrupted run wrote; a file opened for writing and left
truncated fails this. Then the same command runs again and must leave exactly the reference's
files: none missing, none stale, no staging leftovers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from longvie.config import compose
from tests.conftest import REPO, copy_project, random_stage3

HARNESS = REPO / "tests" / "kill_at_write.py"
# Not compared: the MLflow store, checkpoints and locks (their content carries times and ids).
SKIPPED = ("mlruns", "mlflow.db", ".locks", "checkpoints", "mlflow_run_id", ".dvc")
# Report keys that describe the run rather than its result: timings, ids, and how much of the
# work this run did itself (a rerun after a kill finds part of it done).
VOLATILE = ("second", "mlflow", "run_id", "since", "created", "time", "computed", "up_to_date",
            "skipped",
            # the benchmark's hash of its inputs covers the registered model's MLmodel file,
            # which names the MLflow run that registered it: every copy registers its own
            "stamp")
# ... and a path into that run's artifacts carries the run's id.
RUN_FOLDER = re.compile(r"mlruns/[0-9a-f]{32}/")


def smoke(root: Path, *args: str) -> list[str]:
    return [*args, "profile=smoke", f"paths.root={root}"]


def run_step(root: Path, command: list[str], kill_at: int = 0,
             count: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run(
        [sys.executable, str(HARNESS), str(root), str(kill_at), str(count or os.devnull), "--",
         *command], capture_output=True, text=True, timeout=600, check=False, env=env)


def normalised(value, root: str):
    if isinstance(value, dict):
        return {k.replace(root, "<root>"): normalised(v, root) for k, v in value.items()
                if not any(word in k for word in VOLATILE)}
    if isinstance(value, list):
        return [normalised(v, root) for v in value]
    if isinstance(value, str):
        return RUN_FOLDER.sub("mlruns/<run>/", value.replace(root, "<root>"))
    return value


def content(path: Path, root: Path):
    """What a file holds, for comparing two runs: JSON by value without timings, else md5."""
    data = path.read_bytes()
    if path.suffix == ".json":
        try:
            return normalised(json.loads(data), str(root))
        except ValueError:
            return "unparsable JSON"
    return hashlib.md5(data).hexdigest()


def snapshot(root: Path) -> dict[str, object]:
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part in SKIPPED for part in relative.parts):
            files[str(relative)] = content(path, root)
    return files


def differences(expected, actual, path: str = ""):
    """Where two parsed files differ: key paths with both values (for the failure message)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in sorted(set(expected) | set(actual)):
            yield from differences(expected.get(key), actual.get(key), f"{path}.{key}")
    elif isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        for index, (a, b) in enumerate(zip(expected, actual, strict=True)):
            yield from differences(a, b, f"{path}[{index}]")
    elif expected != actual:
        yield path, expected, actual


STAGING = (".staging", ".partial", ".tmp")


def visible(name: str) -> bool:
    """Outputs as readers see them: staging folders and hidden files are the writer's own."""
    return not any(part.startswith(".") or part.endswith(STAGING) for part in Path(name).parts)


def changed(before: dict, after: dict) -> dict:
    return {k: v for k, v in after.items() if before.get(k) != v}


@pytest.fixture(scope="module")
def project(curated, tmp_path_factory) -> Path:
    """The smoke data curated with controls, and a trained base (what stage 1 starts from)."""
    from longvie.training.base import train_base

    root = copy_project(curated, tmp_path_factory.mktemp("corpus"), ("data", "models"))
    train_base(compose(["profile=smoke", f"paths.root={root}"]), progress=False,
               log_mlflow=False)
    shutil.rmtree(root / "models" / ".locks", ignore_errors=True)
    return root


def remove(*parts: str) -> Callable[[Path], None]:
    def prepare(root: Path) -> None:
        for part in parts:
            target = root / part
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    return prepare


def registered_candidate(root: Path) -> None:
    """A random-weight stage-3 model registered as version 1 of ``longvie`` in the root's own
    MLflow store: the benchmark's candidate (the same weights in every copy)."""
    import mlflow

    from longvie.registry import log_and_register
    from longvie.tracking import mlflow_run

    config = compose(["profile=smoke", f"paths.root={root}"])
    with mlflow_run(config, "corpus-stage3") as run:
        mlflow.log_param("seed", 0)
    log_and_register(config, run.info.run_id, random_stage3(root, config, "candidate", 0),
                     "stage3", steps=1)


# The benchmark at the size of tests/test_benchmark.py: two clips of the smoke video, 2 steps.
BENCHMARK = ["benchmark", "benchmark.candidate=1", "benchmark.frames=17", "benchmark.steps=2"]

# step: (its command, how the project is set up before it: so that it has work to do)
STEPS = {
    "synth": (["synth"], remove("data/raw/benchmark")),
    "curate": (["curate"], remove("data/curated", "reports/curation.json")),
    "depth-estimator": (["depth-estimator"], remove("models/depth_estimator",
                                                     "reports/depth_estimator.json")),
    "controls": (["controls"], remove("data/controls", "reports/controls.json")),
    "train stage 1": (["train", "stage=1"], remove("models/stage1")),
    "benchmark": (BENCHMARK, registered_candidate),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_step_killed_at_any_write_point_leaves_whole_files_and_a_rerun_finishes_it(
        project, tmp_path, step):
    command, prepare = STEPS[step]

    def fresh(name: str) -> Path:
        root = copy_project(project, tmp_path / name, ("data", "models"))
        prepare(root)
        return root

    reference_root, counted = fresh("reference"), tmp_path / "writes.txt"
    done = run_step(reference_root, smoke(reference_root, *command), count=counted)
    assert done.returncode == 0, done.stderr[-3000:]
    writes = int(counted.read_text())
    assert writes > 0
    reference = snapshot(reference_root)
    for kill_at in sorted({1, (writes + 1) // 2, writes}):
        root = fresh(f"killed_at_{kill_at}")
        before = snapshot(root)
        killed = run_step(root, smoke(root, *command), kill_at=kill_at)
        assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stderr[-3000:])
        half_written = {name for name, value in changed(before, snapshot(root)).items()
                        if visible(name) and reference.get(name) != value}
        assert not half_written, f"{step} killed at write {kill_at}/{writes}: {half_written}"
        again = run_step(root, smoke(root, *command))
        assert again.returncode == 0, (kill_at, again.stderr[-3000:])
        after = snapshot(root)
        assert sorted(after) == sorted(reference), f"killed at {kill_at}: other files"
        differing = {name: list(differences(reference.get(name), value))[:5]
                     for name, value in changed(reference, after).items()}
        assert not differing, f"killed at {kill_at}: other content: {differing}"

"""The fault corpus' check: a step SIGKILLed at its write points, then run again.

The step runs once uninterrupted in a child process that counts its write points under the
project root (``tests/helpers/kill_at_write.py``: files opened for writing, renames onto the root), and
that run's outputs are the reference. Then, from a fresh copy of the same project, the step is
killed at its first, middle and last write point and at every point where a compared output is
opened for writing in place (``LONGVIE_FAULT_CORPUS_KILLS=all``: at every one). After the kill
every output file that is visible (staging folders and hidden files aside) must be whole: byte
for byte (JSON: value for value, timings aside) either what was there before the step or what the
uninterrupted run wrote; a file opened for writing and left truncated fails this. Then the same
command runs again and must leave exactly the reference's files (none missing, none stale, no
staging leftovers) and the same model registry: the same versions with the same promotion tags,
the same aliases.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Self

from tests.helpers.project import REPO, copy_project

HARNESS = REPO / "tests" / "helpers" / "kill_at_write.py"
# Not compared as files: the MLflow store (compared as the registry it holds, below),
# checkpoints and locks (their content carries times and ids).
SKIPPED = ("mlruns", "mlflow.db", ".locks", "checkpoints", "mlflow_run_id", ".dvc")
# Report keys that describe the run rather than its result: timings, ids, and how much of the
# work this run did itself (a rerun after a kill finds part of it done).
VOLATILE = ("second", "mlflow", "run_id", "since", "created", "time", "computed", "up_to_date",
            "skipped", "decided_at",
            # the benchmark's hash of its inputs covers the registered model's MLmodel file,
            # which names the MLflow run that registered it: every copy registers its own
            "stamp")
# ... and a path into that run's artifacts carries the run's id.
RUN_FOLDER = re.compile(r"mlruns/[0-9a-f]{32}/")
REGISTRY = "<model registry>"
STAGING = (".staging", ".partial", ".tmp")
Prepare = Callable[[Path], None]


def smoke(root: Path, *args: str) -> list[str]:
    return [*args, "profile=smoke", f"paths.root={root}"]


class Harness:
    """``tests/helpers/kill_at_write.py --serve``: runs each step in a child forked from one process
    that imported the heavy libraries once (a step's process is still its own to kill)."""

    TIMEOUT_S = 600

    def __enter__(self) -> Self:
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        self.server = subprocess.Popen([sys.executable, str(HARNESS), "--serve"], env=env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                       start_new_session=True)
        self.runs = 0
        assert json.loads(self._answer()) == {"ready": True}
        return self

    def __exit__(self, *exc) -> None:
        self.server.stdin.close()
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()

    def _answer(self) -> str:
        ready, _, _ = select.select([self.server.stdout], [], [], self.TIMEOUT_S)
        if not ready:
            os.killpg(self.server.pid, signal.SIGKILL)
            raise TimeoutError(f"the harness did not answer in {self.TIMEOUT_S} s")
        line = self.server.stdout.readline()
        assert line, f"the harness exited with {self.server.wait()}"
        return line

    def run(self, root: Path, command: list[str], kill_at: int = 0,
            count: Path | None = None, fault: str = "kill") -> subprocess.CompletedProcess:
        self.runs += 1  # the command's output, kept beside its root
        out, err = (root.parent / f"{root.name}.run{self.runs}.{name}" for name in ("out", "err"))
        request = {"root": str(root), "kill_at": kill_at, "count": str(count or os.devnull),
                   "args": command, "stdout": str(out), "stderr": str(err), "fault": fault}
        self.server.stdin.write(json.dumps(request) + "\n")
        self.server.stdin.flush()
        returncode = json.loads(self._answer())["returncode"]
        return subprocess.CompletedProcess(command, returncode, out.read_text(), err.read_text())


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


def registry(root: Path) -> dict:
    """The registered model as readers see it: versions with their stage and promotion tags,
    and the aliases (the root's own MLflow store)."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    versions = {
        str(v.version): {k: t for k, t in v.tags.items()
                    if k == "longvie.stage" or k.startswith("longvie.promotion.")}
        for v in client.search_model_versions("name='longvie'")}
    aliases = client.get_registered_model("longvie").aliases if versions else {}
    return normalised({"versions": versions,
                       "aliases": {alias: str(v) for alias, v in aliases.items()}}, str(root))


def snapshot(root: Path) -> dict[str, object]:
    files = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if path.is_file() and not any(part in SKIPPED for part in relative.parts):
            files[str(relative)] = content(path, root)
    if (root / "mlflow.db").is_file():
        files[REGISTRY] = registry(root)
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


def visible(name: str) -> bool:
    """Outputs as readers see them: staging folders and hidden files are the writer's own (the
    registry is what the rerun must repair, not what a kill must leave whole)."""
    return name != REGISTRY and not any(part.startswith(".") or part.endswith(STAGING)
                                        for part in Path(name).parts)


def changed(before: dict, after: dict) -> dict:
    return {k: v for k, v in after.items() if before.get(k) != v}


def remove(*parts: str) -> Prepare:
    def prepare(root: Path) -> None:
        for part in parts:
            target = root / part
            if target.is_dir():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
    return prepare


# ``all`` kills the step at every one of its write points (`make fault-corpus` runs the corpus
# that way: too long for CI); by default the first, middle and last, and every point where a
# compared output is opened for writing in place instead of written beside and renamed in (the
# points where a non-atomic write shows; a step that writes atomically has none).
KILLS_ENV = "LONGVIE_FAULT_CORPUS_KILLS"


def compared(name: str) -> bool:
    """A file the corpus compares whole: visible, and not in the skipped stores."""
    return visible(name) and not any(part in SKIPPED for part in Path(name).parts)


def kill_points(points: list[tuple[str, str]]) -> list[int]:
    """The write points at which a step is killed (1-based), from its counted ``(how, path)``
    write points."""
    writes = len(points)
    if os.environ.get(KILLS_ENV, "") == "all":
        return list(range(1, writes + 1))
    in_place = {index for index, (how, name) in enumerate(points, 1)
                if how == "open" and compared(name)}
    return sorted({1, (writes + 1) // 2, writes} | in_place)


def _reference(harness: Harness, source: Path, tmp_path: Path, command: list[str],
               prepare: Prepare, parts: tuple[str, ...]
               ) -> tuple[Callable[[str], Path], dict[str, object], list[tuple[str, str]]]:
    """Fresh copies of the project, the uninterrupted run's outputs and its write points."""
    def fresh(name: str) -> Path:
        root = copy_project(source, tmp_path / name, parts)
        prepare(root)
        return root

    reference_root, counted = fresh("reference"), tmp_path / "writes.txt"
    done = harness.run(reference_root, smoke(reference_root, *command), count=counted)
    assert done.returncode == 0, done.stderr[-3000:]
    points = [tuple(line.split("\t", 1)) for line in counted.read_text().splitlines()]
    assert points
    return fresh, snapshot(reference_root), points


def _rerun_finishes(harness: Harness, root: Path, command: list[str],
                    reference: dict[str, object], where: str) -> None:
    again = harness.run(root, smoke(root, *command))
    assert again.returncode == 0, (where, again.stderr[-3000:])
    after = snapshot(root)
    assert sorted(after) == sorted(reference), f"{where}: other files"
    differing = {name: list(differences(reference.get(name), value))[:5]
                 for name, value in changed(reference, after).items()}
    assert not differing, f"{where}: other content: {differing}"


def assert_killed_anywhere_then_rerun_finishes(harness: Harness, source: Path, tmp_path: Path,
                                               command: list[str], prepare: Prepare,
                                               parts: tuple[str, ...] = ("data", "models")
                                               ) -> dict[str, object]:
    """The corpus check for one step (module docstring), on copies of ``source``'s ``parts``
    that ``prepare`` gives work to do; returns what the uninterrupted run left."""
    fresh, reference, points = _reference(harness, source, tmp_path, command, prepare, parts)
    writes = len(points)
    kills = kill_points(points)
    print(f"{' '.join(command)}: {writes} write points, killed at {len(kills)}")
    for kill_at in kills:
        root = fresh(f"killed_at_{kill_at}")
        before = snapshot(root)
        killed = harness.run(root, smoke(root, *command), kill_at=kill_at)
        assert killed.returncode == -signal.SIGKILL, (kill_at, killed.stderr[-3000:])
        half_written = {name for name, value in changed(before, snapshot(root)).items()
                        if visible(name) and reference.get(name) != value}
        assert not half_written, (f"{command} killed at write {kill_at}/{writes} "
                                  f"({' '.join(points[kill_at - 1])}): {half_written}")
        _rerun_finishes(harness, root, command, reference, f"killed at {kill_at}")
    return reference


def staging_leftovers(root: Path) -> list[str]:
    """Writers' temporary files and folders still under ``root`` (locks and stores aside)."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")
                  if path.name.endswith(STAGING) or ".creating-" in path.name
                  and not any(part in SKIPPED for part in path.relative_to(root).parts))


def assert_full_disk_anywhere_keeps_outputs_and_a_rerun_finishes(
        harness: Harness, source: Path, tmp_path: Path, command: list[str], prepare: Prepare,
        parts: tuple[str, ...] = ("data", "models")) -> None:
    """The disk fills at the step's first, middle and last write point (``OSError(ENOSPC)``
    there): the step exits 1 with one message and no traceback, every visible file is what was
    there before or what an uninterrupted run writes, nothing an uninterrupted run keeps has
    been deleted, no staging is left; then the same command finishes as the reference."""
    fresh, reference, points = _reference(harness, source, tmp_path, command, prepare, parts)
    writes = len(points)
    for fail_at in sorted({1, (writes + 1) // 2, writes}):
        where = f"{' '.join(command)} with the disk full at write {fail_at}/{writes} " \
                f"({' '.join(points[fail_at - 1])})"
        root = fresh(f"full_at_{fail_at}")
        before = snapshot(root)
        failed = harness.run(root, smoke(root, *command), kill_at=fail_at, fault="enospc")
        assert failed.returncode == 1, (where, failed.returncode, failed.stderr[-3000:])
        assert "out of disk space" in failed.stderr, (where, failed.stderr[-3000:])
        assert "Traceback" not in failed.stderr, (where, failed.stderr[-3000:])
        after = snapshot(root)
        half_written = {name for name, value in changed(before, after).items()
                        if visible(name) and reference.get(name) != value}
        lost = {name for name in before if visible(name) and name not in after
                and name in reference}
        assert not half_written, f"{where}: half-written {half_written}"
        assert not lost, f"{where}: deleted {lost}"
        assert not staging_leftovers(root), f"{where}: left {staging_leftovers(root)}"
        _rerun_finishes(harness, root, command, reference, where)

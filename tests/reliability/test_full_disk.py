"""A disk that fills during a run, on a real file system (a small tmpfs): native writers (FFmpeg,
numpy's zip, SQLite) hit ENOSPC mid-write. The step exits 1 with one message, never a segfault or
a traceback, keeps its previous outputs and leaves no staging behind. The fault corpus raises
ENOSPC at every step's write points (tests/helpers/fault_corpus.py); this is the real thing."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.project import REPO, copy_project
from tests.helpers.fault_corpus import staging_leftovers

BIN = REPO / ".venv" / "bin"


@pytest.fixture
def small_disk(tmp_path):
    """``make(kilobytes)``: a tmpfs of that size mounted in the test's folder (unmounted after)."""
    mounted: list[Path] = []

    def make(kilobytes: int) -> Path:
        target = tmp_path / f"disk{len(mounted)}"
        target.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kilobytes}k", "tmpfs",
                               str(target)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"cannot mount a tmpfs for the full-disk tests ({done.stderr.strip()}): "
                        "they need root with CAP_SYS_ADMIN, as `make test` has on this project's "
                        "machines")
        mounted.append(target)
        return target

    yield make
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], check=False)


def longvie(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "PYTHONFAULTHANDLER": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(["longvie", *args, "profile=smoke", f"paths.root={root}",
                           "orchestration.min_free_mb=0"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)


def files(root: Path, under: str) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted((root / under).rglob("*")) if p.is_file()}


PARTS = ("data", "models", "reports", "mlflow.db", "mlruns")


def kilobytes_used(root: Path) -> int:
    """What ``PARTS`` of ``root`` take on a tmpfs: whole 4 KB pages per file."""
    paths = [p for part in PARTS for p in [root / part, *(root / part).rglob("*")]]
    return sum(-(-p.stat().st_size // 4096) * 4 for p in paths if p.is_file())


def assert_one_message(done: subprocess.CompletedProcess, command: str) -> None:
    assert done.returncode == 1, (done.returncode, done.stderr[-3000:])
    assert f"longvie {command}: " in done.stderr and "out of disk space" in done.stderr
    assert "Traceback" not in done.stderr and "Fatal Python error" not in done.stderr


def test_synth_on_a_disk_too_small_for_its_videos_exits_1_and_leaves_no_half_folder(small_disk):
    """It segfaulted (rc 139) in FFmpeg's mp4 muxer, or printed a raw OSError."""
    for kilobytes in (150, 200, 300):  # the disk fills in the npz, the mp4 and the trailer
        root = small_disk(kilobytes)
        done = longvie(root, "synth")
        assert_one_message(done, "synth")
        assert files(root, "data") == {}, f"{kilobytes} KB: synth left files"
        assert not staging_leftovers(root)


def test_controls_on_a_full_disk_keep_every_source_whole_and_the_report_as_it_was(
        curated, tmp_path, small_disk):
    """A controls run that hit the full disk exited 0 with "2 failed: OSError: [Errno 28]" and
    had deleted those sources' previous controls."""
    recompute = "controls.track_grid=4"  # new settings: every source is computed again
    reference = copy_project(curated, tmp_path / "reference", ("data", "models", "reports"))
    assert longvie(reference, "controls", recompute).returncode == 0
    after_reference = files(reference, "data/controls")
    for headroom in (60, 200):
        root = small_disk(kilobytes_used(curated) + headroom)
        for part in PARTS:
            source = curated / part
            if not source.exists():
                continue
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, root / part)
        before = files(root, "data/controls")
        report = files(root, "reports")
        done = longvie(root, "controls", recompute)
        assert_one_message(done, "controls")
        after = files(root, "data/controls")
        assert set(after) >= {name for name in before if name in after_reference}, "deleted"
        # meta.json carries the run's timings: a source is whole when its arrays are
        mixed = [name for name in after if not name.endswith("meta.json")
                 and after[name] not in (before.get(name), after_reference.get(name))]
        assert not mixed, f"{headroom} KB spare: neither old nor new: {mixed}"
        assert files(root, "reports") == report
        assert not staging_leftovers(root)

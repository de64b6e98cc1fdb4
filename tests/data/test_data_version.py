"""The data version: the committed ``data.dvc`` is what the committed code renders on a fresh
machine, so a fresh clone's first ``make run`` does not call itself a new data version."""

from __future__ import annotations

import shutil

import pytest
import yaml

from tests.helpers.project import REPO
from tests.helpers.cpu_features import EMBREE_SSE42_ANNOUNCEMENT, x86_64_v2_environment
from tests.data.test_dvc import run

pytestmark = pytest.mark.slow  # renders tiny's whole default data set


@pytest.mark.parametrize("cpu", ["this CPU", "x86-64-v2"])
def test_the_committed_data_version_is_what_the_committed_code_renders(tmp_path, cpu):
    """A fresh clone's `make run` renders `tiny`'s default data; its DVC md5 must be the one
    `data.dvc` commits, or every first run calls itself a new data version. It must be so on
    every x86-64 CPU: rendered once with this CPU's own kernels (AVX2 or AVX-512) and once with
    Embree, numpy and OpenBLAS held to SSE4.2, the md5 is the same."""
    for name in ("conf", "data.dvc", ".dvcignore", ".gitignore"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, tmp_path / name)
    committed = yaml.safe_load((tmp_path / "data.dvc").read_text())["outs"][0]
    run(tmp_path, "git", "init", "-q")
    run(tmp_path, "dvc", "init", "-q")
    shutil.copy(REPO / ".dvc" / "config", tmp_path / ".dvc" / "config")
    env = x86_64_v2_environment(tmp_path) if cpu == "x86-64-v2" else {}
    out = run(tmp_path, "longvie", "synth", f"paths.root={tmp_path}", env=env)
    if env:
        assert EMBREE_SSE42_ANNOUNCEMENT in out, "Embree's ISA was not forced"
    rendered = yaml.safe_load((tmp_path / "data.dvc").read_text())["outs"][0]
    assert "data.dvc now tracks data/raw" in out
    assert (rendered["md5"], rendered["size"]) == (committed["md5"], committed["size"]), (
        f"rendered with {cpu}'s kernels, data/raw is not what data.dvc commits: if the renderer "
        "changed on purpose, commit the md5 a fresh `longvie synth` records")


def test_a_failed_dvc_commit_says_why_in_dvcs_own_words(tmp_path):
    """`make run` once ended with "dvc commit failed" and nothing else: `--quiet` silences DVC's
    ERROR lines too. The error must carry the reason."""
    from longvie.data_version import DataVersionError, record_data

    run(tmp_path, "git", "init", "-q")
    run(tmp_path, "dvc", "init", "-q")
    shutil.copy(REPO / "pretrain.dvc", tmp_path / "pretrain.dvc")  # data/pretrain never rendered
    with pytest.raises(DataVersionError, match="output 'data/pretrain' does not exist"):
        record_data(tmp_path, "pretrain.dvc", push=False)

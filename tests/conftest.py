"""Shared fixtures: configs rooted in a temp folder, and real sample videos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.project import OPENCV_BOX_MP4, OPENCV_SAMPLES, copy_project

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Under pytest-xdist each worker gets its share of the cores for torch (and the steps it starts
# as subprocesses): two workers with every core each would spin against each other.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ and "OMP_NUM_THREADS" not in os.environ:
    _workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // _workers))



@pytest.fixture
def smoke_config(tmp_path: Path):
    """The smoke profile with every path under a fresh temp root; extra overrides optional."""
    from longvie.config import compose

    def make(*overrides: str):
        return compose(["profile=smoke", f"paths.root={tmp_path}", *overrides])

    return make


@pytest.fixture(scope="session")
def opencv_samples() -> Path:
    if not (OPENCV_SAMPLES / "vtest.avi").is_file() or not OPENCV_BOX_MP4.is_file():
        pytest.fail(f"sample videos missing in {OPENCV_SAMPLES}: run `make test-assets`")
    return OPENCV_SAMPLES


@pytest.fixture(scope="session")
def curated(tmp_path_factory) -> Path:
    """Smoke data rendered, curated, with controls (and the depth network they were measured by).

    Shared by the training tests, which copy ``data/`` into their own roots (copy_project).
    """
    from longvie.config import compose
    from longvie.controls.depth_estimator import train_depth_estimator
    from longvie.controls.run import extract_controls
    from longvie.curation import curate
    from longvie.synth import render_dataset

    root = tmp_path_factory.mktemp("training")
    config = compose(["profile=smoke", f"paths.root={root}"])
    render_dataset(config)
    curate(config, progress=False)
    train_depth_estimator(config, progress=False)
    extract_controls(config, progress=False)
    return root


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server on a loopback port for the session (tests/helpers/postgres.py); each test
    asks it for a database of its own."""
    from tests.helpers.postgres import PostgresServer, binaries

    if binaries() is None:
        pytest.fail("PostgreSQL is not installed: run `make test-assets`")
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def harness():
    """The fault corpus' kill-at-write harness (tests/helpers/fault_corpus.py), one per test file."""
    from tests.helpers.fault_corpus import Harness

    with Harness() as serving:
        yield serving


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first (a stable sort: files keep their order otherwise): pytest-xdist hands
    each worker the next file as it runs dry, so the long files start early and the short ones
    fill the end, and both workers finish together (longest-first scheduling)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)

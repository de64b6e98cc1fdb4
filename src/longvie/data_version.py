"""The DVC side of the raw data: which version is checked out, and recording a new one.

``data.dvc`` (at the project root) tracks ``data/raw``; its md5 is the data version that MLflow
runs and Dagster materialisations are tagged with. DVC is driven through its CLI, its stable
interface, in the venv of the running interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from longvie.config import compose
from longvie.config.load import PARAMS_ENV
from longvie.errors import LongvieError

DVC_FILE = "data.dvc"


class DataVersionError(LongvieError):
    """DVC could not record or read the raw data version; the message has DVC's own words."""


def raw_data_hash(root: Path) -> str | None:
    """The md5 recorded in ``data.dvc`` (None before the first ``dvc commit``)."""
    dvc_file = root / DVC_FILE
    if not dvc_file.is_file():
        return None
    outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or [{}]
    return outs[0].get("md5")


def dvc(root: Path, *args: str) -> str:
    """``dvc <args>`` in ``root`` through the venv's DVC; its stdout, or its stderr as an error."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    command = [sys.executable, "-m", "dvc", *args]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise DataVersionError(f"`dvc {' '.join(args)}` failed in {root}:\n{done.stderr.strip()}")
    return done.stdout


def record_raw_data(root: Path, push: bool = True) -> str | None:
    """Hash ``data/raw`` into ``data.dvc`` and the DVC cache, then push to the default remote.

    Returns the new md5, or None when ``root`` is not a DVC project (e.g. a scratch folder).
    """
    return record_data(root, DVC_FILE, push)


def record_data(root: Path, dvc_file: str, push: bool = True) -> str | None:
    """``dvc commit`` (+ ``dvc push``) of the folder ``root/<dvc_file>`` tracks (``data.dvc``:
    data/raw; ``pretrain.dvc``: the pretraining corpus); its new md5, or None outside DVC."""
    if not (root / ".dvc").is_dir() or not (root / dvc_file).is_file():
        return None
    dvc(root, "commit", "--force", dvc_file)
    if push:
        dvc(root, "push", dvc_file)
    outs = (yaml.safe_load((root / dvc_file).read_text()) or {}).get("outs") or [{}]
    return outs[0].get("md5")


def record_stages(root: Path, config) -> str:
    """``dvc commit`` every stage of ``root/dvc.yaml`` after the same steps ran outside DVC
    (``make run``'s Dagster job), so ``dvc.lock`` describes the outputs on disk: ``dvc status``
    is clean and ``dvc repro`` does nothing. Only when ``config`` (what the run used) is what
    the stages compose from ``params.yaml``; otherwise the lock would vouch for settings it
    does not name. Returns one line saying what was done."""
    import dataclasses

    if not (root / ".dvc").is_dir() or not (root / "dvc.yaml").is_file():
        return f"dvc.lock not updated: {root} is not a DVC project"
    previous = os.environ.get(PARAMS_ENV)
    os.environ[PARAMS_ENV] = str(root / "params.yaml")
    try:
        staged = compose([f"paths.root={root}"], config_dir=root / "conf")
    finally:
        if previous is None:
            os.environ.pop(PARAMS_ENV, None)
        else:
            os.environ[PARAMS_ENV] = previous
    ran, wanted = dataclasses.asdict(config), dataclasses.asdict(staged)
    differing = sorted(key for key in wanted if ran.get(key) != wanted[key])
    if differing:
        return (f"dvc.lock not updated: this run's settings differ from what params.yaml gives "
                f"the stages ({', '.join(differing)})")
    # dvc.yaml, not every tracked file: a clone that never rendered the pretraining corpus has
    # no data/pretrain, and a bare `dvc commit` fails on pretrain.dvc's missing output.
    dvc(root, "commit", "--force", "dvc.yaml")
    return "dvc.lock records every stage of this run: `dvc status dvc.yaml` is clean"

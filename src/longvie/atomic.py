"""Folders appear whole or not at all: build in a staging folder, then swap it in by renames."""

from __future__ import annotations

import shutil
from pathlib import Path


def replace_directory(staging: Path, target: Path) -> None:
    """Put ``staging`` at ``target`` with renames only; the old ``target`` is deleted after.

    A crash at any point leaves either the old folder or the new one at ``target`` (the old one
    possibly parked beside it as ``.<name>.previous``), never a mixture.
    """
    previous = target.with_name(f".{target.name}.previous")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    staging.rename(target)
    shutil.rmtree(previous, ignore_errors=True)

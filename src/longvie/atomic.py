"""Files and folders appear whole or not at all: written beside, then swapped in by renames."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


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


def write_json_atomically(path: Path, payload: Mapping[str, Any]) -> None:
    """Readers see the old file or the new one, never half of one: temp file, fsync, rename.
    Temp files a killed writer left beside ``path`` are removed (one writer per step and root:
    the step locks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        leftover.unlink(missing_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(payload, file, indent=2, allow_nan=False)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(temporary)`` beside ``path``, then one rename: for writers that take a path
    (a parquet table, an image), so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise

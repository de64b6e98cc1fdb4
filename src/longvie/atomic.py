"""Files and folders appear whole or not at all: written beside, then swapped in by renames."""

from __future__ import annotations

import json
import os
import shutil
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
    """Readers see the old file or the new one, never half of one (:func:`write_atomically`,
    synced to disk before the rename)."""

    def write(temporary: Path) -> None:
        with temporary.open("w", encoding="utf-8") as file:
            json.dump(payload, file, indent=2, allow_nan=False)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())

    write_atomically(path, write)


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(temporary)`` beside ``path``, then one rename, so readers never see half a file.
    The temporary name is fixed (``.<name>.tmp``; one writer per step and root: the step locks),
    so whatever a killed writer left there is overwritten by the next one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def fsync_directory(folder: Path) -> None:
    """Make a rename or link inside ``folder`` durable (its directory entry reaches the disk)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

"""Checked before work: a step's output folders exist, take a file, and have room.

Without this, curate, controls, training and the benchmark did all their work and then died
on their first write with a traceback, and ``promote`` moved the registry aliases before finding
that it could not write ``promotion.json``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from longvie.errors import LongvieError


class OutputNotWritableError(LongvieError):
    """An output folder of a step cannot be created or written, or lacks free space."""


def require_writable(step: str, folders: Iterable[str | Path], min_free_mb: float) -> None:
    """Create each folder if needed, write and remove a probe file in it, and check that its
    file system has ``min_free_mb`` free; one message naming the folder and the reason."""
    for folder in map(Path, folders):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
            os.close(handle)
            os.unlink(probe)
        except OSError as error:
            raise OutputNotWritableError(
                f"{step}: cannot write to {folder} ({error.strerror or error}); nothing was "
                "started, fix the folder's permissions or the paths.* setting") from error
        free_mb = shutil.disk_usage(folder).free / 2**20
        if free_mb < min_free_mb:
            raise OutputNotWritableError(
                f"{step}: only {free_mb:.0f} MB free under {folder}, below "
                f"orchestration.min_free_mb={min_free_mb:g}; nothing was started")

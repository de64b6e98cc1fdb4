"""Checked before work: a step's output folders exist, take a file, and have room.

Without this, curate, controls, training and the benchmark did all their work and then died
on their first write with a traceback, and ``promote`` moved the registry aliases before finding
that it could not write ``promotion.json``.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from longvie.errors import LongvieError


class OutputNotWritableError(LongvieError):
    """An output folder of a step cannot be created or written, or lacks free space."""


def require_writable(step: str, folders: Iterable[str | Path], min_free_mb: float
                     ) -> dict[Path, float]:
    """Create each folder if needed, write and remove a probe file in it, and check that its
    file system has ``min_free_mb`` free; one message naming the folder and the reason.
    Returns the MB free under each folder at the start (what an out-of-space message quotes)."""
    free: dict[Path, float] = {}
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
        free[folder] = free_mb
    return free


class OutOfSpaceError(LongvieError):
    """A step ran out of disk space (or quota) mid-run; its previous outputs are kept."""


_OUT_OF_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How writers say it without an errno: SQLite (through SQLAlchemy), Arrow, and Python's buffered
# writer, whose short write on a full disk reads "9216 requested and 9184 written".
_OUT_OF_SPACE_WORDS = ("no space left on device", "database or disk is full", "disk quota")
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def is_out_of_space(error: BaseException) -> bool:
    """Whether ``error``, or an error it was raised from, is a full disk or quota."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OutOfSpaceError):
            return True
        if isinstance(current, OSError) and current.errno in _OUT_OF_SPACE_ERRNOS:
            return True
        message = str(current).lower()
        if any(words in message for words in _OUT_OF_SPACE_WORDS):
            return True
        if isinstance(current, OSError) and _SHORT_WRITE.search(message):
            return True
        current = current.__cause__ or current.__context__
    return False


def _failed_path(error: BaseException) -> str | None:
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, OSError) and current.filename:
            return str(current.filename)
        current = current.__cause__ or current.__context__
    return None


def out_of_space(step: str, error: BaseException, free_at_start: dict[Path, float]
                 ) -> OutOfSpaceError:
    """One message: the file that could not be written, its folder's free space now, and how
    much the step had when it started (it needs more than that)."""
    if isinstance(error, OutOfSpaceError):
        return error
    path = _failed_path(error)
    folders = [Path(path).parent] if path else list(free_at_start)
    where = f"writing {path}" if path else "writing its outputs"
    free_now = ", ".join(f"{folder} has {_free_mb(folder):.1f} MB free" for folder in folders)
    started = max(free_at_start.values(), default=None)
    need = (f"; it started with {started:.1f} MB free and needs more than that" if started
            is not None else "")
    return OutOfSpaceError(
        f"{step}: out of disk space {where} ({free_now or 'no folder known'}){need}. Its "
        "previous outputs are kept and its unfinished files removed: free some space (or point "
        "paths.* elsewhere) and run it again")


def _free_mb(folder: Path) -> float:
    for candidate in (folder, *folder.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free / 2**20
    return float("nan")

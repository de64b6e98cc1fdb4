"""One writer per step and project root: a lock file that names its holder.

Two ``longvie curate`` on one root used to share one staging folder and delete each other's
output. Every step that writes shared state (synth, curate, depth-estimator, controls, each
training stage, benchmark, promote, pretrain) now holds ``<paths.models>/.locks/<step>.lock``
while it runs; a second run of the same step waits ``orchestration.step_lock_wait_s`` and then
refuses with a message naming the holder (pid, host, since when, its command).

The lock itself is an OS file lock (``filelock``, ``fcntl`` on Linux): the kernel drops it when
its process dies, so a killed run never blocks the next one. The holder record beside it
(``<step>.holder.json``) only feeds the message; a record whose process is gone is called stale.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from longvie.config import LongvieConfig
from longvie.errors import LongvieError
from longvie.preflight import is_out_of_space, out_of_space, require_writable
from longvie.ranks import is_rank_zero

LOCKS_DIR = ".locks"
F = TypeVar("F", bound=Callable)


class StepBusyError(LongvieError):
    """Another run of the same step holds the root's lock."""


def lock_paths(config: LongvieConfig, step: str) -> tuple[Path, Path]:
    folder = Path(config.paths.models) / LOCKS_DIR
    name = step.replace("/", "_").replace(":", "_")
    return folder / f"{name}.lock", folder / f"{name}.holder.json"


# How long a refused run waits for the holder's record: the holder writes it just after it took
# the lock, so a run started at the same moment can look before it is there.
RECORD_WAIT_S = 2.0


def describe_holder(record: Path) -> str:
    """Who holds the lock, from its holder record (or why that is unknown)."""
    deadline = time.monotonic() + RECORD_WAIT_S
    while True:
        try:
            holder = json.loads(record.read_text())
            break
        except (OSError, ValueError):
            if time.monotonic() >= deadline:
                return "a process that has not written its holder record yet"
            time.sleep(0.05)
    text = (f"pid {holder.get('pid')} on {holder.get('host')} since "
            f"{holder.get('since')} ({holder.get('command')})")
    if holder.get("host") == socket.gethostname() and not process_alive(int(holder.get("pid", 0))):
        text += " [stale record: that process is gone]"
    return text


def process_alive(pid: int) -> bool:
    """Whether a process of this host has ``pid`` (0 or less: no process)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_holder(config: LongvieConfig, step: str) -> str | None:
    """Who holds ``step``'s lock on this root right now, or None when it is free.

    A probe, not a wait: the lock is tried without blocking and let go at once, so a scheduler
    (the Dagster sensor) sees runs started from the CLI as well as its own.
    """
    import fcntl

    lock_file, record = lock_paths(config, step)
    if not lock_file.exists():
        return None
    try:
        handle = open(lock_file, "a")  # noqa: SIM115 (closed below)
    except OSError:
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError: someone holds it
        return describe_holder(record)
    else:
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
    finally:
        handle.close()


# A run queued behind another says what it waits for this often (seconds).
WAIT_REPORT_EVERY_S = 5.0


def _acquire_saying_so(lock, step: str, record: Path, wait_s: float) -> None:
    """``lock.acquire()`` within ``wait_s``; while it waits, one line on stderr every
    :data:`WAIT_REPORT_EVERY_S` naming the step, its holder and the time left."""
    from filelock import Timeout

    deadline = time.monotonic() + max(wait_s, 0.0)
    try:
        lock.acquire(timeout=0)
        return
    except Timeout:
        if wait_s <= 0:
            raise
    while True:
        left = deadline - time.monotonic()
        print(f"{step}: waiting for the run that holds it ({describe_holder(record)}); "
              f"{max(left, 0):.0f} s left before giving up", file=sys.stderr, flush=True)
        try:
            lock.acquire(timeout=max(min(WAIT_REPORT_EVERY_S, left), 0))
            return
        except Timeout:
            if time.monotonic() >= deadline:
                raise


@contextmanager
def step_lock(config: LongvieConfig, step: str, wait_s: float | None = None,
              wait_setting: str = "orchestration.step_lock_wait_s") -> Iterator[Path]:
    """Hold the root's lock for ``step`` (re-entrant within one process), waiting ``wait_s``
    (default ``orchestration.step_lock_wait_s``; ``wait_setting`` names it in the message)."""
    wait_s = config.orchestration.step_lock_wait_s if wait_s is None else wait_s
    from filelock import FileLock, Timeout

    lock_file, record = lock_paths(config, step)
    try:
        lock_file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise LongvieError(f"{step}: cannot create the lock folder {lock_file.parent} "
                           f"({error.strerror or error})") from error
    lock = FileLock(str(lock_file), timeout=wait_s, is_singleton=True)
    try:
        _acquire_saying_so(lock, step, record, wait_s)
    except Timeout as error:
        raise StepBusyError(
            f"{step} is already running on {Path(config.paths.root).resolve()}: held by "
            f"{describe_holder(record)}; wait for it to end, or raise {wait_setting} (now "
            f"{wait_s:g} s) to queue behind it") from error
    outermost = lock.lock_counter == 1
    try:
        if outermost:
            record.write_text(json.dumps({
                "pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "command": " ".join(sys.argv) or sys.executable,
            }) + "\n")
        yield lock_file
    finally:
        if outermost:
            record.unlink(missing_ok=True)
        lock.release()


def locked_step(step: str | Callable[[inspect.BoundArguments], str],
                writes: Callable[[LongvieConfig], list[str]] | None = None,
                tracked: bool | Callable[[inspect.BoundArguments], bool] = False
                ) -> Callable[[F], F]:
    """Run the decorated function under :func:`step_lock`, after checking that the folders
    ``writes(config)`` names can be written (:func:`longvie.preflight.require_writable`) and,
    for a ``tracked`` step (one that logs to MLflow; or a function of the call's bound arguments
    that says whether this call does), that the tracking database is whole
    (:func:`longvie.tracking_store.prepare_tracking_store`), so neither fails after the work.
    A full disk mid-run becomes one :class:`~longvie.preflight.OutOfSpaceError` naming the file,
    its folder's free space and the step's free space at the start.
    ``step`` is the lock's name, or a function of the call's bound arguments
    (``lambda call: f"train_{call.arguments['stage']}"``). The config is the call's first
    :class:`LongvieConfig` argument."""

    def decorate(function: F) -> F:
        signature = inspect.signature(function)

        @functools.wraps(function)
        def run(*args, **kwargs):
            call = signature.bind(*args, **kwargs)
            config = next((value for value in call.arguments.values()
                           if isinstance(value, LongvieConfig)), None)
            if config is None:
                raise TypeError(f"{function.__qualname__} takes no LongvieConfig to lock by")
            if not is_rank_zero():
                # Another rank of a DDP run: its rank 0, the process that started it, holds the
                # lock for the whole run and did the checks.
                return function(*args, **kwargs)

            name = step if isinstance(step, str) else step(call)
            free = {}
            if writes is not None:
                free = require_writable(name, writes(config), config.orchestration.min_free_mb)
            if tracked(call) if callable(tracked) else tracked:
                from longvie.tracking_store import prepare_tracking_store

                prepare_tracking_store(config)
            with step_lock(config, name):
                try:
                    return function(*args, **kwargs)
                except Exception as error:
                    if is_out_of_space(error):
                        raise out_of_space(name, error, free) from error
                    raise

        return run  # type: ignore[return-value]

    return decorate

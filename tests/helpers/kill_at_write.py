"""Run ``longvie`` commands with their writes under a root counted, and SIGKILL at one of them.

    python tests/helpers/kill_at_write.py ROOT K COUNT_FILE -- <longvie arguments>   # one command
    python tests/helpers/kill_at_write.py --serve                                    # many (below)

A write point is a file under ROOT opened for writing (by Python, PyAV or pandas' parquet
writer; left truncated when killed there: the worst case of a write that is not atomic), or an
``os.replace`` / ``os.rename`` onto a path under ROOT (killed before it happens). With the
request's ``fault`` set to ``enospc`` the K-th write point raises ``OSError(ENOSPC)`` instead (the
file opened, empty; the rename not done): a disk that fills at that write. K = 0 only
counts: the write points are listed in COUNT_FILE when the command ends, one per line (``open``
or ``rename``, a tab, the path under ROOT). K > 0 kills the process at the K-th write point.

``--serve`` imports the heavy libraries once, then reads one JSON request per line on stdin
(``root``, ``kill_at``, ``count``, ``args``, ``stdout``, ``stderr``: files for the command's
output) and runs each command in a child forked for it, answering ``{"returncode": ...}`` (minus
the signal number when killed, as ``subprocess`` does). Each command still runs in a process of
its own that the kill ends; the fork only saves the ~12 s of imports every run would repeat.
"""

from __future__ import annotations

import atexit
import builtins
import errno
import io
import json
import os
import signal
import sys
import traceback
from pathlib import Path

WRITE_MODES = set("wax+")
# What the steps import lazily (their modules keep start-up light): imported once by --serve.
HEAVY = ("torch", "lightning", "mlflow", "diffusers", "pandas", "pyarrow.parquet", "av",
         "matplotlib.pyplot", "great_expectations", "scenedetect", "cv2")


class WritePoints:
    """Counts the writes under ``root`` and kills the process at the ``kill_at``-th one."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.kill_at = 0
        self.fault = "kill"
        self.points: list[str] = []  # "open|rename<TAB>path under the root", in order

    def start(self, root: Path, kill_at: int, fault: str = "kill") -> None:
        self.root, self.kill_at, self.fault, self.points = root.resolve(), kill_at, fault, []

    def under_root(self, path) -> Path | None:
        """``path`` relative to the root, or None when it lies elsewhere."""
        if self.root is None:
            return None
        try:
            resolved = Path(os.fspath(path)).resolve()
        except (TypeError, ValueError, OSError):
            return None
        return resolved.relative_to(self.root) if resolved.is_relative_to(self.root) else None

    def __call__(self, path, kind: str, before_kill=None) -> None:
        relative = self.under_root(path)
        if relative is None:
            return
        self.points.append(f"{kind}\t{relative}")
        if len(self.points) == self.kill_at:
            if before_kill is not None:
                before_kill()
            if self.fault == "enospc":  # the disk is full from here on (for this write)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
            os.kill(os.getpid(), signal.SIGKILL)


def install_hooks(write_point: WritePoints) -> None:
    """Python's open/replace/rename, and the writers that open files in native code: PyAV
    containers and pandas' parquet (pyarrow). Killed in a native writer, the file is left as a
    write that had just begun: created, truncated."""
    import av
    import pandas as pd

    real_open = builtins.open
    real_replace, real_rename = os.replace, os.rename
    real_av_open, real_to_parquet = av.open, pd.DataFrame.to_parquet

    def open_counted(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and WRITE_MODES & set(mode):
            write_point(file, "open")
        return handle

    def replace_counted(src, dst, *args, **kwargs):
        write_point(dst, "rename")
        return real_replace(src, dst, *args, **kwargs)

    def rename_counted(src, dst, *args, **kwargs):
        write_point(dst, "rename")
        return real_rename(src, dst, *args, **kwargs)

    def av_open(file, mode="r", *args, **kwargs):
        container = real_av_open(file, mode, *args, **kwargs)
        if "w" in mode and isinstance(file, (str, os.PathLike)):
            write_point(file, "open")
        return container

    def to_parquet(frame, path=None, *args, **kwargs):
        if isinstance(path, (str, os.PathLike)):
            write_point(path, "open", before_kill=lambda: real_open(path, "wb").close())
        return real_to_parquet(frame, path, *args, **kwargs)

    builtins.open = io.open = open_counted
    os.replace, os.rename = replace_counted, rename_counted
    av.open, pd.DataFrame.to_parquet = av_open, to_parquet


def run_command(write_point: WritePoints, root: Path, kill_at: int, count_file: Path,
                args: list[str], fault: str = "kill") -> int:
    from longvie.cli import main as longvie_main

    write_point.start(root, kill_at, fault)
    try:
        return longvie_main(args)
    finally:
        if kill_at == 0:  # the write points, one per line: how (open or rename) TAB path
            Path(count_file).write_text("".join(f"{p}\n" for p in write_point.points))


def run_forked(write_point: WritePoints, request: dict) -> int:
    """The request's command in a forked child with its output in the request's files; the
    child's exit status in ``subprocess``'s convention."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for fd, name in ((1, "stdout"), (2, "stderr")):
                target = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(target, fd)
                os.close(target)
            code = run_command(write_point, Path(request["root"]), int(request["kill_at"]),
                               Path(request["count"]), list(request["args"]),
                               request.get("fault", "kill"))
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:  # noqa: BLE001 - what an uncaught exception does to a process
            traceback.print_exc()
        finally:
            atexit._run_exitfuncs()  # as a process that returns from main would
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code or 0)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def serve(write_point: WritePoints) -> int:
    for name in HEAVY:
        __import__(name)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        returncode = run_forked(write_point, json.loads(line))
        print(json.dumps({"returncode": returncode}), flush=True)
    return 0


def main(argv: list[str]) -> int:
    write_point = WritePoints()
    install_hooks(write_point)
    if argv == ["--serve"]:
        return serve(write_point)
    root, kill_at, count_file = Path(argv[0]), int(argv[1]), Path(argv[2])
    return run_command(write_point, root, kill_at, count_file, argv[argv.index("--") + 1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run a ``longvie`` command with its writes under a root counted, and SIGKILL at one of them.

    python tests/kill_at_write.py ROOT K COUNT_FILE -- <longvie arguments>

A write point is a file under ROOT opened for writing (by Python, PyAV or pandas' parquet
writer; left truncated when killed there: the worst case of a write that is not atomic), or an
``os.replace`` / ``os.rename`` onto a path under ROOT (killed before it happens). K = 0 only counts: the number of write points is written
to COUNT_FILE when the command ends. K > 0 kills the process at the K-th write point.
"""

from __future__ import annotations

import builtins
import io
import os
import signal
import sys
from pathlib import Path

WRITE_MODES = set("wax+")


def hook_native_writers(write_point, real_open) -> None:
    """Writers that open files in native code: PyAV containers and pandas' parquet (pyarrow).
    Killed there, the file is left as a write that had just begun: created, truncated."""
    import av
    import pandas as pd

    real_av_open, real_to_parquet = av.open, pd.DataFrame.to_parquet

    def av_open(file, mode="r", *args, **kwargs):
        container = real_av_open(file, mode, *args, **kwargs)
        if "w" in mode and isinstance(file, (str, os.PathLike)):
            write_point(file)
        return container

    def to_parquet(frame, path=None, *args, **kwargs):
        if isinstance(path, (str, os.PathLike)):
            write_point(path, before_kill=lambda: real_open(path, "wb").close())
        return real_to_parquet(frame, path, *args, **kwargs)

    av.open, pd.DataFrame.to_parquet = av_open, to_parquet


def main(argv: list[str]) -> int:
    root, kill_at, count_file = Path(argv[0]).resolve(), int(argv[1]), Path(argv[2])
    args = argv[argv.index("--") + 1:]
    seen = {"writes": 0}

    def under_root(path) -> bool:
        try:
            return Path(os.fspath(path)).resolve().is_relative_to(root)
        except (TypeError, ValueError, OSError):
            return False

    def write_point(path, before_kill=None) -> None:
        if not under_root(path):
            return
        seen["writes"] += 1
        if seen["writes"] == kill_at:
            if before_kill is not None:
                before_kill()
            os.kill(os.getpid(), signal.SIGKILL)

    real_open, real_io_open = builtins.open, io.open
    real_replace, real_rename = os.replace, os.rename

    def open_counted(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if isinstance(file, (str, os.PathLike)) and WRITE_MODES & set(mode):
            write_point(file)
        return handle

    def replace_counted(src, dst, *args, **kwargs):
        write_point(dst)
        return real_replace(src, dst, *args, **kwargs)

    def rename_counted(src, dst, *args, **kwargs):
        write_point(dst)
        return real_rename(src, dst, *args, **kwargs)

    builtins.open = io.open = open_counted
    os.replace, os.rename = replace_counted, rename_counted
    hook_native_writers(write_point, real_open)
    from longvie.cli import main as longvie_main

    try:
        return longvie_main(args)
    finally:
        if kill_at == 0:
            real_open(count_file, "w").write(str(seen["writes"]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Which process of a multi-process (DDP) training this is, read from the launcher's environment.

Lightning's DDP launcher and torchrun start the other ranks with ``RANK`` / ``LOCAL_RANK`` /
``NODE_RANK`` set; rank 0 is the process the user (or Dagster) started. Only rank 0 takes step
locks, writes reports, registers versions and talks to Dagster Pipes.
"""

from __future__ import annotations

import os

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK")


def is_rank_zero() -> bool:
    """True unless a launcher marked this process as another rank."""
    return all(int(os.environ.get(name) or 0) == 0 for name in RANK_VARIABLES)


def barrier() -> None:
    """Wait for every rank of an initialised process group (no-op in a single process), e.g.
    until rank 0 has written a file the other ranks read next."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()

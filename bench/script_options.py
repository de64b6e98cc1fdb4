"""``--name=value`` options of the bench scripts, taken out from among Hydra overrides."""

from __future__ import annotations


def take_option(args: list[str], name: str, default: str) -> tuple[str, list[str]]:
    """The last ``--name=value`` in ``args`` (``default`` when absent), and the other args."""
    prefix = f"--{name}="
    values = [a[len(prefix):] for a in args if a.startswith(prefix)]
    return (values[-1] if values else default), [a for a in args if not a.startswith(prefix)]

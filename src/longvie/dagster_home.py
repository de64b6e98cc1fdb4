"""Where Dagster keeps its state for this project: one folder shared by `make run` and `make ui`.

``DAGSTER_HOME`` when set, else ``<paths.root>/.dagster_home`` (git-ignored), so the runs that
`make run` makes are the ones `make ui` shows. A folder without ``dagster.yaml`` gets one that
keeps Dagster's default SQLite storage there and turns telemetry off (docs/scale_out.md shows
PostgreSQL). No dagster import: the UI launcher uses this before starting any server.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = ".dagster_home"
SETTINGS = "# SQLite under this folder; docs/scale_out.md: PostgreSQL.\ntelemetry:\n  enabled: false\n"


def dagster_home(root: Path, explicit: Path | None = None) -> Path:
    """``explicit``, else ``$DAGSTER_HOME``, else ``root/.dagster_home``: absolute, created, with
    a ``dagster.yaml``."""
    if explicit is not None:
        home = explicit
    elif os.environ.get("DAGSTER_HOME"):
        home = Path(os.environ["DAGSTER_HOME"])
    else:
        home = root / DEFAULT_HOME
    home = home.expanduser().resolve()  # Dagster insists on an absolute path
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text(SETTINGS)
    return home

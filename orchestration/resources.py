"""Dagster resources: how assets reach the Hydra config (and, later, MLflow and DVC)."""

from __future__ import annotations

import dagster as dg

from longvie.config import LongvieConfig


class LongvieConfigResource(dg.ConfigurableResource):
    """The config tree every asset reads, chosen by the same overrides as the CLI takes.

    Set ``overrides`` in the launchpad (e.g. ``["profile=smoke"]``) to run another profile.
    """

    overrides: list[str] = []

    def compose(self) -> LongvieConfig:
        from longvie.config import compose

        return compose(self.overrides)

"""Typed Hydra configuration: :func:`compose` is the single way in."""

from longvie.config.load import ConfigError, compose, find_project_root
from longvie.config.schema import LongvieConfig

__all__ = ["ConfigError", "LongvieConfig", "compose", "find_project_root"]

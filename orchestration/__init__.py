"""Dagster code location of longvie: assets are thin callers of ``longvie`` (src/)."""

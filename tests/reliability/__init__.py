"""Locks, preflight checks, MLflow stores, kills and full disks: nothing lost or half-written."""

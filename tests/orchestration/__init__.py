"""Dagster: assets, jobs, Pipes, schedules and sensors, the UI launcher (orchestration/)."""

"""Seconds per Dagster step of a set of runs, from the instance's step statistics.

`make run` prints this table at its end; `bench/make_run_breakdown.py` writes it for the last
`make run` pass of an instance.
"""

from __future__ import annotations

from collections import defaultdict


def breakdown(instance, records: list) -> dict:
    """Per step (partitions summed) and per job: seconds, count and status."""
    steps: dict[str, dict] = defaultdict(lambda: {"seconds": 0.0, "runs": 0, "failed": 0})
    jobs: dict[str, dict] = defaultdict(lambda: {"seconds": 0.0, "runs": 0})
    for record in records:
        run = record.dagster_run
        step_stats = instance.get_run_step_stats(run.run_id)
        # A run killed with its process never records an end: its last step end stands in.
        ends = [s.end_time for s in step_stats if s.end_time] + [record.end_time or 0.0]
        if record.start_time:
            jobs[run.job_name]["seconds"] += max(max(ends) - record.start_time, 0.0)
        jobs[run.job_name]["runs"] += 1
        for stats in step_stats:
            step = steps[stats.step_key]
            if stats.start_time and stats.end_time:
                step["seconds"] += stats.end_time - stats.start_time
            step["runs"] += 1
            step["failed"] += int(stats.status is not None and stats.status.value == "FAILURE")
    wall = sum(job["seconds"] for job in jobs.values())
    return {
        "dagster_runs": len(records),
        "wall_seconds": round(wall, 1),
        "jobs": {name: {"seconds": round(job["seconds"], 1), "runs": job["runs"]}
                 for name, job in jobs.items()},
        "steps": {name: {"seconds": round(step["seconds"], 1), "runs": step["runs"],
                         "failed": step["failed"],
                         "share": round(step["seconds"] / wall, 3) if wall else 0.0}
                  for name, step in sorted(steps.items(), key=lambda kv: -kv[1]["seconds"])},
    }


def format_breakdown(figures: dict) -> list[str]:
    """The table's lines: each job's wall time, then each step's seconds and share."""
    lines = [f"  job {name:<50} {job['seconds']:8.1f} s  ({job['runs']} runs)"
             for name, job in figures["jobs"].items()]
    for name, step in figures["steps"].items():
        runs = f" x{step['runs']}" if step["runs"] > 1 else ""
        failed = f", {step['failed']} failed" if step["failed"] else ""
        lines.append(f"  {name:<54} {step['seconds']:8.1f} s  {100 * step['share']:5.1f} %"
                     f"{runs}{failed}")
    return lines

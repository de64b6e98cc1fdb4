"""Where `make run`'s time goes: seconds per Dagster step of its last pass, from the instance.

`make run` tags every Dagster run it makes with ``longvie/trigger = make run``. This script reads
the last pass of those runs (from the newest ``curation`` run on) out of the project's Dagster
instance (``<root>/.dagster_home``, or ``$DAGSTER_HOME``) and prints each asset step's seconds,
the ``controls`` runs summed (with their count: one run over every partition now, one per
partition before issue 17), each job's wall time, and the share of
the pass each step took. The rendering and the set-up before the graph are not Dagster runs:
their time is the rest of what `make run` printed. Figures go to ``--out`` as JSON.

    .venv/bin/python bench/make_run_breakdown.py [--root=PATH] [--out=JSON]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from script_options import take_option

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "make_run_breakdown.json"
TRIGGER = {"longvie/trigger": "make run"}


def last_pass(instance) -> list:
    """The make-run run records of the newest pass, oldest first."""
    import dagster as dg

    records = instance.get_run_records(filters=dg.RunsFilter(tags=TRIGGER), ascending=True)
    starts = [i for i, record in enumerate(records) if record.dagster_run.job_name == "curation"]
    return list(records[starts[-1]:]) if starts else []


def main(args: list[str]) -> int:
    from longvie.dagster_home import dagster_home
    from orchestration.step_times import breakdown, format_breakdown

    root_text, args = take_option(args, "root", str(ROOT))
    out_text, args = take_option(args, "out", str(RESULTS))
    if args:
        print(f"make_run_breakdown: unknown arguments {args}", file=sys.stderr)
        return 2
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(dagster_home(Path(root_text).resolve()))
    with dg.DagsterInstance.get() as instance:
        records = last_pass(instance)
        if not records:
            print(f"make_run_breakdown: no `make run` pass in {os.environ['DAGSTER_HOME']}: run "
                  "`make run` first", file=sys.stderr)
            return 1
        figures = breakdown(instance, records)
    print(f"make run's last pass: {figures['dagster_runs']} Dagster runs, "
          f"{figures['wall_seconds']:.0f} s")
    print("\n".join(format_breakdown(figures)))
    out = Path(out_text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main(sys.argv[1:]))

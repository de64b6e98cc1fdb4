"""The cost of orchestration: `make run`'s Dagster graph against the same steps through the CLI.

Two fresh project roots get the same rendered raw videos. In one, every step runs as its own
`longvie <step>` process (curate, depth-estimator, controls, train base/1/2/3, benchmark,
promote), timed one by one; in the other, `python -m orchestration.main_job` materialises the
whole graph in-process on a fresh Dagster instance (curation, one controls run per source video,
training). Both start from nothing, so both do all the work; the ratio of the Dagster wall time
to the sum of the CLI steps is the orchestration overhead (issue 6 target: <= 1.10). Rendering
is done once, outside both timings. On `smoke` the work is seconds, so the fixed costs of Dagster
(runs, event log, one run per partition) weigh far more than on `tiny`.

    .venv/bin/python bench/orchestration_overhead.py [--profile smoke|tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLI_STEPS = ("curate", "depth-estimator", "controls", "train stage=base", "train stage=1",
             "train stage=2", "train stage=3", "benchmark", "promote")


def _run(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    args = parser.parse_args()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DAGSTER_DISABLE_TELEMETRY": "1",
           "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("DAGSTER_HOME", None)
    with tempfile.TemporaryDirectory(prefix="longvie-overhead-") as tmp:
        rendered, cli_root, graph_root = (Path(tmp) / name for name in ("render", "cli", "graph"))
        _run([str(BIN / "longvie"), "synth", f"profile={args.profile}",
              f"paths.root={rendered}"], env)
        for root in (cli_root, graph_root):
            shutil.copytree(rendered / "data" / "raw", root / "data" / "raw")

        steps: dict[str, float] = {}
        for step in CLI_STEPS:
            command = [str(BIN / "longvie"), *step.split(), f"profile={args.profile}",
                       f"paths.root={cli_root}"]
            steps[step] = round(_run(command, env), 2)
            print(f"cli {step}: {steps[step]:.1f} s", flush=True)
        cli_total = sum(steps.values())

        graph_env = {**env, "DAGSTER_HOME": str(graph_root / ".dagster_home")}
        Path(graph_env["DAGSTER_HOME"]).mkdir(parents=True)
        graph = _run([sys.executable, "-m", "orchestration.main_job", f"profile={args.profile}",
                      f"paths.root={graph_root}"], graph_env)
        videos = sum(1 for p in (graph_root / "data" / "controls").iterdir() if p.is_dir())

    ratio = graph / cli_total
    print(f"cli steps: {cli_total:.1f} s; dagster graph: {graph:.1f} s "
          f"({videos} controls runs); ratio {ratio:.3f} (target <= 1.10)")
    results = ROOT / "bench" / "results" / f"orchestration_overhead_{args.profile}.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps({"profile": args.profile, "cli_steps_s": steps,
                                   "cli_total_s": round(cli_total, 2),
                                   "dagster_graph_s": round(graph, 2), "source_videos": videos,
                                   "ratio": round(ratio, 4)}, indent=2) + "\n")
    print(f"-> {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

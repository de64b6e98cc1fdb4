"""Control extraction cost: frames per second per extractor, and peak memory against length.

Renders one 1-minute and one 5-minute video on the tiny profile (64x64, 8 fps), curates them, and
extracts their controls in fresh processes, once per source kind:

- ``engine``: ground-truth sidecars (rendered videos);
- ``estimated``: the depth model + KLT tracker (any video).

Each extraction runs in its own Python process, which reports its own peak RSS, so the figures
do not mix. The global depth percentiles are computed in two streaming passes, so the peak should
not grow with the video's length: the printed 5-min / 1-min ratio should stay near 1.

    .venv/bin/python bench/controls_scale.py [--model models/depth_estimator] [--out FILE]

``--model`` is a trained depth network (``longvie depth-estimator``); without one, a short
training on the 1-minute video provides it (speed does not depend on how well it is trained).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Peak RSS is the child's VmHWM: ru_maxrss would include the parent's size at fork time (Linux
# carries it across exec), and the parent has rendered and curated in-process.
CHILD = r"""
import json, sys, time
from longvie.config import compose
from longvie.controls.run import source_plans
from longvie.controls.extract import extract_source
config = compose(json.loads(sys.argv[1]))
[plan] = source_plans(config)
started = time.perf_counter()
meta = extract_source(plan, config)
seconds = time.perf_counter() - started
status = open("/proc/self/status").read().split("\n")
peak_mib = int(next(l for l in status if l.startswith("VmHWM:")).split()[1]) / 1024
print(json.dumps({"frames": meta["frames"], "seconds": seconds, "timings": meta["timings"],
                  "peak_rss_mib": peak_mib}))
"""


def overrides(root: Path, seconds: float, *extra: str) -> list[str]:
    return [
        "profile=tiny",
        f"paths.root={root}",
        "synth.train_videos=0",
        "synth.benchmark_videos=1",
        f"synth.benchmark_seconds={seconds}",
        "controls.evaluate_splits=[]",
        "controls.workers=1",
        *extra,
    ]


def prepare(root: Path, seconds: float) -> None:
    from longvie.config import compose
    from longvie.curation import curate
    from longvie.synth import render_dataset

    config = compose(overrides(root, seconds))
    render_dataset(config)
    curate(config, progress=False)


def train_quick_model(root: Path) -> Path:
    """A briefly trained depth network (for speed figures only): train on the 1-minute video."""
    from longvie.config import compose
    from longvie.controls.depth_estimator import training_frames
    from longvie.controls.depth_net import train_depth_net
    from longvie.controls.extract import plan_sources
    from longvie.controls.run import load_clip_rows

    config = compose(overrides(root, 60, "controls.depth_training.steps=100"))
    rows = [row for p in plan_sources(load_clip_rows(config), config) for row in p.clips]
    rgb, disparity = training_frames(config, rows)
    model, _ = train_depth_net(rgb, disparity, config.controls.depth_training, progress=False)
    target = root / "quick_depth_model"
    model.save_pretrained(target)
    return target


def measure(root: Path, seconds: float, kind: str, model: Path) -> dict:
    extra = [f"controls.depth.model={model}", f"controls.source_by_dir={{synth: {kind}}}"]
    args = json.dumps(overrides(root, seconds, *extra))
    done = subprocess.run([sys.executable, "-c", CHILD, args], capture_output=True, text=True,
                          check=True, cwd=REPO)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "models" / "depth_estimator")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "controls_scale.json")
    args = parser.parse_args()
    started = time.perf_counter()
    results: dict = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip()}
    with tempfile.TemporaryDirectory(prefix="controls-bench-") as tmp:
        roots = {60: Path(tmp) / "one_minute", 300: Path(tmp) / "five_minutes"}
        for seconds, root in roots.items():
            prepare(root, seconds)
        model = args.model if (args.model / "config.json").is_file() else train_quick_model(
            roots[60])
        results["depth_model"] = str(model)
        for kind in ("engine", "estimated"):
            runs = {seconds: measure(root, seconds, kind, model) for seconds, root in roots.items()}
            short, long = runs[60], runs[300]
            timings = long["timings"]
            results[kind] = {
                "frames_1min": short["frames"],
                "frames_5min": long["frames"],
                "depth_fps": round(long["frames"] / timings["depth_seconds"], 1),
                "tracks_fps": round(long["frames"] / timings["tracks_seconds"], 1),
                "total_fps": round(long["frames"] / long["seconds"], 1),
                "peak_rss_mib_1min": round(short["peak_rss_mib"], 1),
                "peak_rss_mib_5min": round(long["peak_rss_mib"], 1),
                "peak_rss_ratio_5min_over_1min": round(
                    long["peak_rss_mib"] / short["peak_rss_mib"], 3
                ),
            }
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(f"{'extractor':<10} {'depth fps':>10} {'tracks fps':>11} {'total fps':>10} "
          f"{'RSS 1 min':>10} {'RSS 5 min':>10} {'ratio':>6}")
    for kind in ("engine", "estimated"):
        row = results[kind]
        print(f"{kind:<10} {row['depth_fps']:>10} {row['tracks_fps']:>11} {row['total_fps']:>10} "
              f"{row['peak_rss_mib_1min']:>8} M {row['peak_rss_mib_5min']:>8} M "
              f"{row['peak_rss_ratio_5min_over_1min']:>6}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The cost of long videos: time per clip and peak memory for 1, 2 and 5 minutes of video.

Each length runs in its own child process (so its peak RSS is its own), generating with the
real streaming path (``generate_long_video`` writing frames into an mp4 as they come) from the
model ``models/stage3/model`` (else fresh weights of the configured size) and the controls of
the first benchmark video, played forwards and backwards in turn to reach any length (the
controls' content does not change the cost). Targets (issue 5): time per clip flat in the
length; peak RSS of 5 minutes / 1 minute <= 1.1.

    .venv/bin/python bench/generation_cost.py [--minutes 1 2 5] [--steps 20] [overrides ...]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "generation_cost.json"


class LoopedControls:
    """A control video extended to any length by playing it forwards, then backwards."""

    def __init__(self, video, num_frames: int) -> None:
        self.video, self.num_frames = video, num_frames
        self.period = 2 * (video.num_frames - 1)

    def _source(self, frame: int) -> int:
        phase = frame % self.period
        return phase if phase < self.video.num_frames else self.period - phase

    def span(self, start: int, stop: int):
        import numpy as np

        frames = [self._source(f) for f in range(start, stop)]
        depth, points = self.video.span(min(frames), max(frames) + 1)
        index = np.asarray(frames) - min(frames)
        return depth[index], points[index]


def child(minutes: float, steps: int, overrides: list[str]) -> dict:
    """Generate ``minutes`` of video in this process; report time per clip and peak RSS."""
    from longvie.benchmark.run import benchmark_sources
    from longvie.config import compose
    from longvie.generation.long_video import GenerationSettings, generate_long_video
    from longvie.generation.sources import stored_video
    from longvie.model.folder import load_generator
    from longvie.video.io import VideoWriter

    config = compose(overrides)
    folder = Path(config.paths.models) / "stage3" / "model"
    if not folder.is_dir():
        raise SystemExit(f"{folder} does not exist: run `longvie train stage=3` first")
    parts = load_generator(str(folder), config.model, with_controller=False)
    video = stored_video(config, benchmark_sources(config)[0])
    frames = int(minutes * 60 * config.video.fps) + 1
    controls = LoopedControls(video, frames)
    settings = GenerationSettings.from_config(config.generation, steps=steps)
    first = video.first_frame()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        with VideoWriter(Path(scratch) / "long.mp4", config.video.fps, first.shape[1],
                         first.shape[0]) as writer:
            report = generate_long_video(parts, first, controls, video.caption_at(0), frames,
                                         config.video.clip_frames, settings, writer.write,
                                         config.model.condition_encoding, progress=False)
    per_clip = report["seconds_per_clip"][1:]  # the first clip warms caches up
    return {
        "minutes": minutes, "frames": frames, "clips": report["clips"],
        "seconds": round(time.perf_counter() - started, 1),
        "median_seconds_per_clip": round(statistics.median(per_clip), 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 2.0, 5.0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.steps, args.overrides)))
        return
    runs = []
    for minutes in args.minutes:
        done = subprocess.run([sys.executable, __file__, "--child", str(minutes), "--steps",
                               str(args.steps), *args.overrides], capture_output=True,
                              text=True, check=True, cwd=ROOT)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(runs[-1]), flush=True)
    shortest, longest = runs[0], runs[-1]
    result = {
        "runs": runs,
        "steps": args.steps,
        "seconds_per_clip_ratio_longest_to_shortest": round(
            longest["median_seconds_per_clip"] / shortest["median_seconds_per_clip"], 3),
        "peak_rss_ratio_longest_to_shortest": round(
            longest["peak_rss_mib"] / shortest["peak_rss_mib"], 3),
        "command": "bench/generation_cost.py " + " ".join(sys.argv[1:]),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"time per clip {longest['minutes']:g} min / {shortest['minutes']:g} min: "
          f"{result['seconds_per_clip_ratio_longest_to_shortest']} (target: flat, ~1.0)")
    print(f"peak RSS {longest['minutes']:g} min / {shortest['minutes']:g} min: "
          f"{result['peak_rss_ratio_longest_to_shortest']} (target <= 1.1)")


if __name__ == "__main__":
    main()

"""How much of the candidate-vs-naive comparison is the sampler's seed?

The benchmark regenerates each held-out video once, from ``generation.seed``. The gate then
compares the candidate (history tokens; unified noise where the profile samples with it) with
the naive baseline (same weights, no history, fresh noise per clip) on means over the videos. This script repeats both contenders
with several seeds on the same videos and the same weights, and prints, per seed, each
contender's SSIM, seam discontinuity and SSIM drift slope and the candidate-minus-naive gap:
when the gap changes sign from seed to seed, a single-seed comparison of that metric decides
nothing. All figures come from this one run.

    .venv/bin/python bench/seed_spread.py [--seeds=0,1,2,3] [--model=PATH] [--out=JSON]
        [hydra overrides ...]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from script_options import take_option

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "seed_spread.json"
METRICS = ("ssim", "seam_discontinuity", "ssim_drift_slope")
# Which way is better, as the promotion gate reads them.
HIGHER_IS_BETTER = {"ssim": True, "seam_discontinuity": False, "ssim_drift_slope": True}


def main(args: list[str]) -> int:
    from longvie.benchmark.run import Contender, benchmark_sources, generate_and_score, load_model
    from longvie.benchmark.scoring import average_metrics
    from longvie.config import compose
    from longvie.generation.sources import stored_video

    seeds_text, args = take_option(args, "seeds", "0,1,2,3")
    out_text, args = take_option(args, "out", str(RESULTS))
    model_text, overrides = take_option(args, "model", "")
    seeds = [int(s) for s in seeds_text.split(",")]
    config = compose(overrides)
    folder = Path(model_text) if model_text else Path(config.paths.models) / "stage3" / "model"
    if not folder.is_dir():
        print(f"seed_spread: no trained model at {folder}: run `make run` first", file=sys.stderr)
        return 2
    parts = load_model(config.model, folder)
    videos = [stored_video(config, source) for source in benchmark_sources(config)]
    references = {v.source_id: v.reference(0, min(config.benchmark.frames or v.num_frames,
                                                  v.num_frames)) for v in videos}
    contenders = [Contender("candidate", None, folder),
                  Contender("naive", None, folder, history=False, unified_noise=False)]
    runs: dict[int, dict[str, dict]] = {}
    for seed in seeds:
        runs[seed] = {}
        for entry in contenders:
            started = time.perf_counter()
            per_video = {video.source_id: generate_and_score(
                config, entry, parts, video, references[video.source_id], None, progress=False,
                seed=seed, quality_only=True)[1]["metrics"] for video in videos}
            runs[seed][entry.name] = {
                "mean": {k: average_metrics(list(per_video.values()))[k] for k in METRICS},
                "per_video": {v: {k: m[k] for k in METRICS} for v, m in per_video.items()},
                "seconds": round(time.perf_counter() - started, 1)}
        line = ", ".join(f"{k} {runs[seed]['candidate']['mean'][k]:.5g} vs "
                         f"{runs[seed]['naive']['mean'][k]:.5g}" for k in METRICS)
        print(f"seed {seed}: candidate vs naive: {line}", flush=True)
    summary = _summary(runs)
    result = {"model": str(folder), "videos": sorted(references), "seeds": seeds,
              "runs": {str(s): r for s, r in runs.items()}, "summary": summary}
    out = Path(out_text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("| metric | candidate mean ± sd over seeds | naive mean ± sd | gap (cand - naive) per "
          "seed | candidate better in |")
    print("| --- | --- | --- | --- | --- |")
    for k in METRICS:
        s = summary[k]
        print(f"| {k} | {s['candidate_mean']:.5g} ± {s['candidate_sd']:.2g} | "
              f"{s['naive_mean']:.5g} ± {s['naive_sd']:.2g} | "
              f"{' '.join(f'{g:+.2g}' for g in s['gaps'])} | "
              f"{s['candidate_better']} of {len(s['gaps'])} seeds |")
    print(f"-> {out}")
    return 0


def _summary(runs: dict[int, dict[str, dict]]) -> dict[str, dict]:
    """Per metric: each contender's mean and spread over seeds, the per-seed gaps, and in how
    many seeds the candidate was strictly better."""
    out = {}
    for k in METRICS:
        cand = [r["candidate"]["mean"][k] for r in runs.values()]
        naive = [r["naive"]["mean"][k] for r in runs.values()]
        gaps = [c - n for c, n in zip(cand, naive)]
        sign = 1 if HIGHER_IS_BETTER[k] else -1
        out[k] = {"candidate_mean": statistics.fmean(cand), "naive_mean": statistics.fmean(naive),
                  "candidate_sd": statistics.stdev(cand) if len(cand) > 1 else 0.0,
                  "naive_sd": statistics.stdev(naive) if len(naive) > 1 else 0.0,
                  "gaps": gaps, "candidate_better": sum(sign * g > 0 for g in gaps)}
    return out


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

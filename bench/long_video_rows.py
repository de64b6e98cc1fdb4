"""The loop every long-video bench script shares: one contender regenerates the benchmark videos
with each sampler seed and is scored as the benchmark scores it (quality figures only).

A helper module for the ``bench/`` scripts, not a script itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

# The gate's frame-quality figures a bench script can compute (track EPE needs the full
# benchmark's tracking: `make run`), and which way each is better.
QUALITY_FIGURES = ("ssim", "psnr_db", "seam_discontinuity", "ssim_drift_slope", "sharpness_ratio")
HIGHER_IS_BETTER = {"ssim": True, "psnr_db": True, "seam_discontinuity": False,
                    "ssim_drift_slope": True, "sharpness_ratio": True}


def score_contender(config, entry, parts, videos: Sequence, references: dict,
                    seeds: Sequence[int], start: Callable = lambda video: video
                    ) -> dict[int, dict[str, float]]:
    """Benchmark figures of ``entry`` (a ``benchmark.run.Contender``) averaged over ``videos``,
    per sampler seed. ``start(video)`` is what generation starts from (the video itself, or a
    stand-in with another first frame); the score is always against the video's reference."""
    from longvie.benchmark.run import regenerate, score
    from longvie.benchmark.scoring import average_metrics

    by_seed: dict[int, list[dict]] = {seed: [] for seed in seeds}
    for video in videos:
        reference = references[video.source_id]
        generated = regenerate(config, entry, parts, start(video), len(reference), seeds,
                               progress=False)
        for seed, frames in zip(seeds, generated, strict=True):
            by_seed[seed].append(score(config, video, frames, reference, None,
                                       quality_only=True)["metrics"])
    return {seed: average_metrics(rows) for seed, rows in by_seed.items()}


def seed_mean(per_seed: dict[int, dict[str, float]], figures: Sequence[str]) -> dict[str, float]:
    return {f: float(np.mean([per_seed[s][f] for s in per_seed])) for f in figures}


def paired_gain(better: dict[int, dict], worse: dict[int, dict], figure: str,
                higher_is_better: bool) -> dict[str, float]:
    """Mean difference in the figure's better direction and its standard error over seeds."""
    sign = 1.0 if higher_is_better else -1.0
    diffs = np.array([sign * (better[s][figure] - worse[s][figure]) for s in better])
    mean = float(diffs.mean())
    if len(diffs) < 2:  # one seed: no spread to judge by
        return {"gain": mean, "se": None, "gain_in_se": None}
    se = float(diffs.std(ddof=1) / np.sqrt(len(diffs)))
    return {"gain": mean, "se": se, "gain_in_se": mean / se if se > 0 else float("inf")}


def print_gains(gains: Mapping[str, Mapping[str, dict]]) -> None:
    """One line per comparison: each figure's gain and how many standard errors it is."""
    for label, figures in gains.items():
        print(f"{label}: " + "; ".join(
            f"{f} {g['gain']:+.4g}" + ("" if g["se"] is None else f" ({g['gain_in_se']:.1f} SE)")
            for f, g in figures.items()))


def write_results(out: Path, summary: dict, per_seed: Mapping[str, Mapping[int, dict]]) -> None:
    """``summary`` and the per-seed figures (seeds as JSON keys) to ``out``, and say where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**summary, "per_seed": {n: {str(s): v for s, v in r.items()}
                                                       for n, r in per_seed.items()}},
                              indent=2) + "\n")
    print(f"-> {out}")

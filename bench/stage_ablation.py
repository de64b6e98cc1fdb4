"""Each training stage judged where it matters: long videos regenerated from the benchmark split.

LongVie 2's own stage ablation is measured on long generated videos, not on a one-clip loss:
stage 2 exists so that a clip that starts from a degraded frame (every clip after the first in a
rollout) still looks right, stage 3 so that clips join without seams and the video does not
drift. This script regenerates the benchmark videos, the benchmark's sampler seeds each, with the
stage 1, 2 and 3 models of this project, all in this one run:

- ``stage1`` / ``stage2`` (no history; the profile's start noise, unified in the recorded
  2026-12-06 run) from the true first frame, and again from
  a **degraded first frame** (three round trips through the models' VAE, then a colour drift: one
  fixed draw per video, the same for both stages; both stages decode with the same VAE);
- ``stage2`` and ``stage3`` as the candidate runs (history on) for seams and drift.

Each comparison is a difference of means over videos, paired by sampler seed, with its standard
error over seeds, as the promotion gate judges a win (``promotion.k_standard_errors``).

    .venv/bin/python bench/stage_ablation.py [hydra overrides ...]

Figures go to ``bench/results/stage_ablation.json``; a Markdown table is printed.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from long_video_rows import paired_gain, score_contender, seed_mean

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "stage_ablation.json"
FIGURES = ("ssim", "psnr_db", "seam_discontinuity", "ssim_drift_slope", "ssim_vde")
HIGHER_IS_BETTER = {"ssim": True, "psnr_db": True, "seam_discontinuity": False,
                    "ssim_drift_slope": True, "ssim_vde": False}
DEGRADATION_ROUNDS = 3
DEGRADATION_SEED = 2026


@dataclass(frozen=True)
class Row:
    name: str
    stage: int
    history: bool
    degraded_first_frame: bool


ROWS = (Row("stage1", 1, False, False), Row("stage2", 2, False, False),
        Row("stage1 degraded frame", 1, False, True), Row("stage2 degraded frame", 2, False, True),
        Row("stage2 history", 2, True, False), Row("stage3 history", 3, True, False))

# (better, worse, figures): what each stage must show over the one before it.
COMPARISONS = (
    ("stage2 degraded frame", "stage1 degraded frame", ("ssim", "psnr_db")),
    ("stage2", "stage1", ("ssim", "psnr_db")),
    ("stage3 history", "stage2 history", ("seam_discontinuity", "ssim_drift_slope", "ssim_vde",
                                          "ssim", "psnr_db")),
)


class DegradedStart:
    """A stored video whose first frame is replaced (every other method is the video's own)."""

    def __init__(self, video, first_frame: np.ndarray) -> None:
        self._video, self._first = video, first_frame

    def first_frame(self) -> np.ndarray:
        return self._first

    def __getattr__(self, name):
        return getattr(self._video, name)


def degraded_frame(vae, frame: np.ndarray, seed: int) -> np.ndarray:
    """``frame`` after :data:`DEGRADATION_ROUNDS` VAE round trips and a colour drift."""
    import torch

    from longvie.model.backbone import LatentCodec
    from longvie.model.degradations import colour_drift

    codec = LatentCodec(vae)
    image = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    with torch.no_grad():
        for _ in range(DEGRADATION_ROUNDS):
            image = codec.decode(codec.encode(image.unsqueeze(2)))[:, :, 0].clamp(-1, 1)
        image = colour_drift(image, torch.Generator().manual_seed(seed))
    return ((image[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()


def main(overrides: list[str]) -> int:
    from longvie.benchmark.run import Contender, benchmark_sources, load_model, sampler_seeds
    from longvie.config import compose
    from longvie.generation.sources import stored_video

    config = compose(overrides)
    folders = {n: Path(config.paths.models) / f"stage{n}" / "model" for n in (1, 2, 3)}
    missing = [str(f) for f in folders.values() if not f.is_dir()]
    if missing:
        print(f"stage_ablation: no trained model at {', '.join(missing)}: run `make run` first",
              file=sys.stderr)
        return 2
    seeds = sampler_seeds(config)
    videos = [stored_video(config, source) for source in benchmark_sources(config)]
    frames = {v.source_id: min(config.benchmark.frames or v.num_frames, v.num_frames)
              for v in videos}
    references = {v.source_id: v.reference(0, frames[v.source_id]) for v in videos}
    parts = {n: load_model(config.model, folder) for n, folder in folders.items()}
    degraded = {v.source_id: DegradedStart(v, degraded_frame(parts[1].vae, v.first_frame(),
                                                             DEGRADATION_SEED + i))
                for i, v in enumerate(videos)}
    per_seed: dict[str, dict[int, dict]] = {}
    seconds: dict[str, float] = {}
    for row in ROWS:
        started = time.perf_counter()
        entry = Contender(row.name, None, folders[row.stage], history=row.history)
        start = ((lambda video: degraded[video.source_id]) if row.degraded_first_frame
                 else (lambda video: video))
        per_seed[row.name] = score_contender(config, entry, parts[row.stage], videos,
                                             references, seeds, start)
        seconds[row.name] = round(time.perf_counter() - started, 1)
        means = seed_mean(per_seed[row.name], FIGURES)
        print(f"{row.name}: " + ", ".join(f"{f} {v:.5g}" for f, v in means.items())
              + f" ({seconds[row.name]:.0f} s)", flush=True)
    comparisons = {f"{better} vs {worse}": {f: paired_gain(per_seed[better], per_seed[worse], f,
                                                       HIGHER_IS_BETTER[f])
                                            for f in figures}
                   for better, worse, figures in COMPARISONS}
    table = {name: seed_mean(rows, FIGURES) for name, rows in per_seed.items()}
    result = {"videos": frames, "seeds": seeds, "degradation": {
                  "vae_round_trips": DEGRADATION_ROUNDS, "colour_drift_seed": DEGRADATION_SEED},
              "models": table, "per_seed": {name: {str(s): {f: rows[s][f] for f in FIGURES}
                                                   for s in seeds}
                                            for name, rows in per_seed.items()},
              "comparisons": comparisons, "seconds": seconds}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| figure | {' | '.join(table)} |")
    print("| --- " * (len(table) + 1) + "|")
    for figure in FIGURES:
        print(f"| {figure} | " + " | ".join(f"{table[n][figure]:.5g}" for n in table) + " |")
    print()
    for name, figures in comparisons.items():
        print(f"{name}: " + "; ".join(
            f"{f} {c['gain']:+.4g}"
            + ("" if c["se"] is None else f" ± {c['se']:.2g} ({c['gain_in_se']:.1f} SE)")
            for f, c in figures.items()))
    print(f"-> {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

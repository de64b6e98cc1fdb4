"""Does anchoring each clip's conditioning frame to the first frame's colours stop the drift?

A long video is generated clip by clip: each clip's last frame is decoded, then encoded again as
the next clip's condition. The tiny VAE's round trip is not colour-stable (ten round trips of a
benchmark first frame shift green and blue up by 0.2-0.3 of the [-1, 1] range), so a minute of
29 clips drifts towards cyan. ``generation.colour_anchor`` moves each conditioning frame's
per-channel mean and spread to the first frame's. This script measures, in one run, the round
trip's drift alone and the benchmark figures of the stage-3 model's long videos with and without
the anchor, as the candidate generates (history tokens, the profile's start noise) and as the
naive baseline does, over the benchmark videos and sampler seeds. (The table in
docs/training_stages.md was measured with unified noise, before ``tiny`` turned it off: add
``generation.unified_noise=true`` to repeat it.)

    .venv/bin/python bench/colour_anchor.py [--model=models/stage3/model] [overrides ...]

Figures go to ``bench/results/colour_anchor.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from long_video_rows import score_contender, seed_mean
from script_options import take_option

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "colour_anchor.json"
FIGURES = ("ssim", "psnr_db", "seam_discontinuity", "ssim_drift_slope", "sharpness_ratio")
ROUND_TRIPS = (1, 2, 5, 10, 20, 29)


def round_trip_drift(vae, frame: np.ndarray) -> list[dict]:
    """PSNR and per-channel mean shift of ``frame`` after k VAE round trips."""
    import torch

    from longvie.model.backbone import LatentCodec

    codec = LatentCodec(vae)
    original = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 127.5 - 1.0
    image, rows = original.clone(), []
    with torch.no_grad():
        for k in range(1, max(ROUND_TRIPS) + 1):
            image = codec.decode(codec.encode(image.unsqueeze(2)))[:, :, 0].clamp(-1, 1)
            if k in ROUND_TRIPS:
                mse = float(((image - original) ** 2).mean()) * 127.5**2
                shift = (image.mean((0, 2, 3)) - original.mean((0, 2, 3))).tolist()
                rows.append({"round_trips": k, "psnr_db": round(10 * np.log10(255**2 / mse), 2),
                             "mean_shift_rgb": [round(v, 3) for v in shift]})
    return rows


def main(args: list[str]) -> int:
    from longvie.benchmark.run import (
        Contender,
        contender_sampler,
        benchmark_sources,
        load_model,
        sampler_seeds,
    )
    from longvie.config import compose
    from longvie.generation.sources import stored_video

    model_text, overrides = take_option(args, "model", "models/stage3/model")
    folder = (ROOT / model_text).resolve()
    if not folder.is_dir():
        print(f"colour_anchor: no model at {folder}: run `make run` first", file=sys.stderr)
        return 2
    config = compose(overrides)
    parts = load_model(config.model, folder)
    videos = [stored_video(config, source) for source in benchmark_sources(config)]
    references = {v.source_id: v.reference(0, v.num_frames) for v in videos}
    seeds = sampler_seeds(config)
    result: dict = {"model": model_text, "seeds": seeds,
                    "round_trip": round_trip_drift(parts.vae, videos[0].first_frame()),
                    "rows": {}}
    for name, history, unified in (("candidate", True, True), ("naive", False, False)):
        for anchor in (False, True):
            row = f"{name}{' + anchor' if anchor else ''}"
            started = time.perf_counter()
            anchored = compose([*overrides, f"generation.colour_anchor={anchor}"])
            entry = Contender(name, None, folder, history=history, unified_noise=unified)
            assert contender_sampler(anchored, entry).colour_anchor is anchor
            means = score_contender(anchored, entry, parts, videos, references, seeds)
            result["rows"][row] = {
                **seed_mean(means, FIGURES),
                "per_seed": {str(s): {f: means[s][f] for f in FIGURES} for s in seeds},
                "seconds": round(time.perf_counter() - started, 1)}
            print(f"{row}: " + ", ".join(f"{f} {result['rows'][row][f]:.5g}" for f in FIGURES),
                  flush=True)
    print("round trips of the first benchmark frame:", result["round_trip"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Model folders side by side on the benchmark's long videos, each as the candidate generates
(history tokens, the profile's start noise) and as the naive baseline does (neither, fresh noise): the quick check of a training
change before it goes through ``make run``.

    .venv/bin/python bench/compare_models.py --models=models/stage3/model,OTHER/model \
        [--out=bench/results/compare_models.json] [hydra overrides, e.g. benchmark.seeds=1]

Every row regenerates the benchmark videos with each sampler seed (``benchmark.seeds``), in this
one run. Printed: the figures per row, and each row's gain over the first model's row of the
same kind and over its own naive row, paired by seed (standard errors need 2 seeds or more).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from long_video_rows import (HIGHER_IS_BETTER, QUALITY_FIGURES, paired_gain, print_gains,
                             score_contender, seed_mean, write_results)
from script_options import take_option

ROOT = Path(__file__).resolve().parents[1]
FIGURES = QUALITY_FIGURES
KINDS = (("candidate", True, True), ("naive", False, False))


def main(args: list[str]) -> int:
    from longvie.benchmark.run import Contender, benchmark_sources, load_model, sampler_seeds
    from longvie.config import compose
    from longvie.generation.sources import stored_video

    models_text, args = take_option(args, "models", "models/stage3/model")
    out_text, overrides = take_option(args, "out", "bench/results/compare_models.json")
    folders = [(ROOT / text).resolve() for text in models_text.split(",")]
    missing = [str(f) for f in folders if not f.is_dir()]
    if missing:
        print(f"compare_models: no model at {', '.join(missing)}", file=sys.stderr)
        return 2
    config = compose(overrides)
    videos = [stored_video(config, source) for source in benchmark_sources(config)]
    references = {v.source_id: v.reference(0, v.num_frames) for v in videos}
    seeds = sampler_seeds(config)
    per_seed: dict[str, dict[int, dict]] = {}
    rows: dict[str, dict] = {}
    for folder in folders:
        parts = load_model(config.model, folder)
        for kind, history, unified in KINDS:
            name = f"{folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder} {kind}"
            started = time.perf_counter()
            entry = Contender(kind, None, folder, history=history, unified_noise=unified)
            per_seed[name] = score_contender(config, entry, parts, videos, references, seeds)
            rows[name] = {**seed_mean(per_seed[name], FIGURES),
                          "seconds": round(time.perf_counter() - started, 1)}
            print(f"{name}: " + ", ".join(f"{f} {rows[name][f]:.5g}" for f in FIGURES),
                  flush=True)
    names = list(rows)
    gains = {}
    for index, name in enumerate(names):
        pairs = {"vs naive": names[index + 1]} if name.endswith("candidate") else {}
        if index >= 2:
            pairs["vs first model"] = names[index % 2]
        for label, other in pairs.items():
            gains[f"{name} {label}"] = {
                f: paired_gain(per_seed[name], per_seed[other], f, HIGHER_IS_BETTER[f])
                for f in FIGURES}
    print_gains(gains)
    write_results(ROOT / out_text, {"seeds": seeds, "rows": rows, "gains": gains}, per_seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

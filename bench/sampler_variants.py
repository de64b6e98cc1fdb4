"""One model's long videos under several sampler settings, side by side: which part of the
candidate's inference (history tokens, how they are made, unified noise, the frame memory) does
what to the benchmark's figures.

    .venv/bin/python bench/sampler_variants.py [--model=models/stage3/model] \
        [--variants="candidate;naive=history=false,unified_noise=false;..."] \
        [--split=benchmark] [--out=bench/results/sampler_variants.json] \
        [hydra overrides, e.g. benchmark.seeds=3]

A variant is ``name[=key=value,key=value...]``: the key ``history`` switches the history tokens
(on by default, as the candidate generates); any other key is a Hydra override of the
``generation`` section (``unified_noise=true``, ``frame_memory=false``). Every variant
regenerates the benchmark videos (or the curated videos of another ``--split``: ``val`` checks a
choice away from the videos the gate judges) with each sampler seed in this one run; printed are
its figures and its gain over the first variant, paired by seed.
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
DEFAULT_VARIANTS = ("fresh noise;naive=history=false,unified_noise=false;"
                    "unified noise=unified_noise=true;unified noise, no history=history=false,"
                    "unified_noise=true")


def parse_variant(text: str) -> tuple[str, dict[str, bool], list[str]]:
    """``name=key=value,...`` -> (name, contender switches, generation overrides)."""
    name, _, rest = text.partition("=")
    switches = {"history": True}
    overrides = []
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key in switches:
            switches[key] = value.lower() == "true"
        else:
            overrides.append(f"generation.{key}={value}")
    return name.strip(), switches, overrides


def main(args: list[str]) -> int:
    from longvie.benchmark.run import Contender, benchmark_sources, load_model, sampler_seeds
    from longvie.config import compose
    from longvie.generation.sources import stored_video

    model_text, args = take_option(args, "model", "models/stage3/model")
    variants_text, args = take_option(args, "variants", DEFAULT_VARIANTS)
    split, args = take_option(args, "split", "benchmark")
    out_text, overrides = take_option(args, "out", "bench/results/sampler_variants.json")
    folder = (ROOT / model_text).resolve()
    if not folder.is_dir():
        print(f"sampler_variants: no model at {folder}", file=sys.stderr)
        return 2
    variants = [parse_variant(text) for text in variants_text.split(";") if text.strip()]
    base = compose(overrides)
    videos = [stored_video(base, source) for source in benchmark_sources(base, split)]
    references = {v.source_id: v.reference(0, v.num_frames) for v in videos}
    seeds = sampler_seeds(base)
    parts = load_model(base.model, folder)
    per_seed: dict[str, dict[int, dict]] = {}
    rows: dict[str, dict] = {}
    for name, switches, generation in variants:
        config = compose([*overrides, *generation])
        started = time.perf_counter()
        entry = Contender(name, None, folder, **switches)
        per_seed[name] = score_contender(config, entry, parts, videos, references, seeds)
        rows[name] = {**seed_mean(per_seed[name], FIGURES), "switches": switches,
                      "overrides": generation, "seconds": round(time.perf_counter() - started, 1)}
        print(f"{name}: " + ", ".join(f"{f} {rows[name][f]:.5g}" for f in FIGURES), flush=True)
    first = variants[0][0]
    gains = {f"{name} vs {first}": {f: paired_gain(per_seed[name], per_seed[first], f,
                                                    HIGHER_IS_BETTER[f]) for f in FIGURES}
             for name, _, _ in variants[1:]}
    print_gains(gains)
    write_results(ROOT / out_text, {"model": model_text, "split": split, "seeds": seeds,
                                    "overrides": overrides, "rows": rows, "gains": gains},
                  per_seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

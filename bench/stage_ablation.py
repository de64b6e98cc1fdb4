"""Each training stage judged where it matters: long videos regenerated from the benchmark split.

LongVie 2's own stage ablation (LongVie 2, Table 3: SSIM .456 -> .501 -> .529) is measured on long
generated videos, not on a one-clip loss: stage 2 exists to stop the quality decay of an
autoregressive rollout, whose later clips start from the model's own (degraded) last frame. The
controller cannot see that frame (its branches see control tokens only), so stage 2 can only
shift how much the model leans on the conditioning frame against the controls; whether that
helps shows up over many clips. This script regenerates the benchmark videos with the stage 1,
2 and 3 models of this project (same sampler, same unified noise, no history), and with stage
3's history on (the benchmark's candidate), and prints SSIM, PSNR, seam discontinuity and the
SSIM drift slope of each, all measured in this one run.

    .venv/bin/python bench/stage_ablation.py [--rows=stage1,stage2,...] [hydra overrides ...]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from script_options import take_option

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "stage_ablation.json"
ROWS = ("ssim", "psnr_db", "seam_discontinuity", "ssim_drift_slope", "flicker")


def main(overrides: list[str]) -> int:
    from longvie.benchmark.run import (
        Contender,
        benchmark_sources,
        generate_and_score,
        load_model,
    )
    from longvie.benchmark.scoring import average_metrics
    from longvie.config import compose
    from longvie.generation.sources import stored_video

    rows_text, overrides = take_option(overrides, "rows", "")
    rows = [rows_text.split(",")] if rows_text else []
    config = compose(overrides)
    models = Path(config.paths.models)
    entries = [Contender(f"stage{n}", None, models / f"stage{n}" / "model", history=False)
               for n in (1, 2, 3)]
    stage3 = models / "stage3" / "model"
    entries += [Contender("stage3+history", None, stage3),
                # Which half of the candidate's inference moves drift: history or shared noise.
                Contender("stage3+history-fresh_noise", None, stage3, unified_noise=False),
                Contender("stage3-naive", None, stage3, history=False, unified_noise=False)]
    if rows:
        entries = [e for e in entries if e.name in rows[0]]
    missing = [str(e.folder) for e in entries if not e.folder.is_dir()]
    if missing:
        print(f"stage_ablation: no trained model at {', '.join(missing)}: run `make run` first",
              file=sys.stderr)
        return 2
    videos = [stored_video(config, source) for source in benchmark_sources(config)]
    frames = {v.source_id: min(config.benchmark.frames or v.num_frames, v.num_frames)
              for v in videos}
    references = {v.source_id: v.reference(0, frames[v.source_id]) for v in videos}
    table: dict[str, dict] = {}
    for entry in entries:
        started = time.perf_counter()
        parts = load_model(config, entry.folder)
        scores = [generate_and_score(config, entry, parts, video, references[video.source_id],
                                     None, progress=False)[1]["metrics"] for video in videos]
        table[entry.name] = {**average_metrics(scores),
                             "seconds": round(time.perf_counter() - started, 1)}
        print(f"{entry.name}: " + ", ".join(f"{k} {table[entry.name][k]:.5g}" for k in ROWS),
              flush=True)
    result = {"videos": frames, "steps": config.benchmark.steps or config.generation.steps,
              "models": table}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if RESULTS.is_file():  # rows measured before (--rows) stay, marked by their own run
        kept = json.loads(RESULTS.read_text()).get("models", {})
        result["models"] = {**kept, **table}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"| metric | {' | '.join(table)} |")
    print("| --- " * (len(table) + 1) + "|")
    for row in ROWS:
        print(f"| {row} | " + " | ".join(f"{table[name][row]:.5g}" for name in table) + " |")
    print(f"-> {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

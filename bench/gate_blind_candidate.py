"""The promotion gate against a candidate that cannot see its controls.

A gate that promotes the trained model must refuse the same model with its controls taken away:
otherwise it rewards the first frame and the sampler, not control. This script runs the
benchmark exactly as `longvie benchmark` does (same videos, seeds, sampler, contenders) on a
candidate whose dense and sparse control inputs are zeroed at every DiT call (what the stages'
control dropout trains it to do without), and then the gate (`promotion.gate.decide`) on that
table. The candidate's own `naive` row is blind the same way; `static` and `controls_only` need
no model. Nothing is registered; the report, pictures and videos go to a temporary folder.

    .venv/bin/python bench/gate_blind_candidate.py [--model=models/stage3/model] [overrides ...]

Prints the decision with its reasons; figures go to ``bench/results/gate_blind_candidate.json``.
Exit status 0 when the gate refused the blind candidate, 1 when it promoted it.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from script_options import take_option

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "gate_blind_candidate.json"


class ZeroedControls:
    """The transformer with its dense and sparse control inputs replaced by zeros."""

    def __init__(self, transformer) -> None:
        self.transformer = transformer

    def eval(self):
        self.transformer.eval()
        return self

    def __call__(self, *args, dense=None, sparse=None, **kwargs):
        import torch

        def zeroed(tensor):
            return None if tensor is None else torch.zeros_like(tensor)

        return self.transformer(*args, dense=zeroed(dense), sparse=zeroed(sparse), **kwargs)


def main(args: list[str]) -> int:
    import dataclasses

    import longvie.benchmark.run as benchmark
    from longvie.config import compose
    from longvie.promotion.gate import decide

    model_text, overrides = take_option(args, "model", "models/stage3/model")
    folder = (ROOT / model_text).resolve()
    if not folder.is_dir():
        print(f"gate_blind_candidate: no model at {folder}: run `make run` first", file=sys.stderr)
        return 2
    seeing_load = benchmark.load_model

    def blind_load(config, model_folder):
        parts = seeing_load(config, model_folder)
        return dataclasses.replace(parts, transformer=ZeroedControls(parts.transformer))

    benchmark.load_model = blind_load
    with tempfile.TemporaryDirectory() as scratch:
        config = compose([f"benchmark.candidate={folder}", f"paths.reports={scratch}",
                          f"benchmark.videos_dir={scratch}/videos", *overrides])
        started = time.perf_counter()
        report = benchmark.run_benchmark(config, progress=False, log_mlflow=False)
        seconds = time.perf_counter() - started
    decision = decide(report["models"], config, per_seed=report.get("per_seed"))
    baseline_checks = {k: v for k, v in decision.checks.items() if k.startswith("beats_")}
    result = {
        "model": str(folder.relative_to(ROOT)) if folder.is_relative_to(ROOT) else str(folder),
        "controls": "zeroed at every DiT call",
        "seeds": report["seeds"],
        "videos": report["videos"],
        "decision": decision.decision,
        "checks": baseline_checks,
        "reasons": decision.reasons,
        "models": {name: {k: row[k] for k in ("ssim", "psnr_db", "seam_discontinuity",
                                              "ssim_drift_slope", "track_epe_px")}
                   for name, row in report["models"].items()},
        "seconds": round(seconds, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"blind candidate ({result['model']}, controls zeroed): {decision.decision}")
    for reason in decision.reasons:
        print(f"  - {reason}")
    print(f"-> {RESULTS.relative_to(ROOT)} ({seconds:.0f} s)")
    return 0 if decision.decision != "champion" else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Probe: the control part trained briefly under different settings, judged the same way.

Each variant is ``longvie pretrain``'s control part (``pretrain_control``) from the shipped base
with the variant's config overrides, in a models folder of its own (checkpoints, latent cache,
the written weights), for the same number of steps with the same seed; each is then measured
with the part's own held-out evaluation (loss with controls against with them zeroed, generated
clips against static and controls-only). Short probes before long runs: the ranking of the
variants at a few hundred steps, not their final figures.

    .venv/bin/python bench/control_probe.py --steps 1000 \
        --variant grid16: --variant grid32:controls.track_grid=32 \
        --out bench/results/control_probe.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from longvie.config import compose
from longvie.synth.corpus import corpus_fingerprint
from longvie.training.pretrain.control import LATENT_CACHE, STEP_NAME, pretrain_control


def run_variant(name: str, overrides: list[str], steps: int, root: Path) -> dict:
    """The control part of ``name`` in ``root / name``; the latent cache of the shipped run is
    copied in first (it is used only where its stamp matches the variant's settings)."""
    folder = root / name
    shipped_cache = Path("models") / STEP_NAME / LATENT_CACHE
    cache = folder / STEP_NAME / LATENT_CACHE
    if shipped_cache.is_file() and not cache.is_file():
        cache.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shipped_cache, cache)
    config = compose([f"paths.models={folder}", f"pretrain.control.steps={steps}",
                      f"pretrain.control.output={folder / 'weights'}",
                      "pretrain.control.sample_seeds=[0]", *overrides])
    started = time.perf_counter()
    report = pretrain_control(config, corpus_fingerprint(config.synth, config.pretrain.corpus),
                              progress=True, log_mlflow=False)
    report.pop("_samples")
    generated = report["heldout"]["generated"]
    return {"overrides": overrides, "steps": report["steps"],
            "train_seconds": report["train_seconds"],
            "seconds": round(time.perf_counter() - started, 1),
            "loss": report["heldout"]["loss"],
            "loss_ratio_controls_vs_zeroed": report["heldout"]["loss_ratio_controls_vs_zeroed"],
            "generated": {key: generated[key] for key in generated
                          if key in ("static", "controls_only", "guidance_1", "guidance_3")}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--variant", action="append", required=True,
                        help="name:override[;override...] (empty overrides: the profile's)")
    parser.add_argument("--root", type=Path, default=Path("models/control_probe"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/control_probe.json"))
    args = parser.parse_args()
    result = json.loads(args.out.read_text()) if args.out.is_file() else {"variants": {}}
    for variant in args.variant:
        name, _, overrides = variant.partition(":")
        row = run_variant(name, list(filter(None, overrides.split(";"))), args.steps, args.root)
        result["variants"][name] = row
        g1 = row["generated"]["guidance_1"]
        print(f"{name}: loss ratio {row['loss_ratio_controls_vs_zeroed']:.3f} | g1 SSIM "
              f"{g1['ssim']:.3f} PSNR {g1['psnr_db']:.2f} sharpness {g1['sharpness_ratio']:.2f}"
              f" EPE {g1['track_epe_px']:.2f} | {row['train_seconds']:.0f} s", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()

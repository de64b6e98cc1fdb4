"""How fast the benchmark's sharpness ratio (variance of the Laplacian) falls under slight blur.

Renders the first 64 frames of benchmark scene 0 (as data/raw holds them: mp4, crf 12) and scores
Gaussian blurs and a 2x down/up-sampling against them: sharpness ratio, PSNR and SSIM. Shows why a
generator needs synthesised texture, not only a high PSNR, to keep 70 % of the sharpness.

    python bench/sharpness_vs_blur.py [--out bench/results/sharpness_vs_blur.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

from longvie.quality import metrics
from longvie.config import compose
from longvie.synth.render import render_video
from longvie.video.io import read_video, write_video


def scores(frames: np.ndarray, reference: np.ndarray) -> dict:
    psnr, ssim = metrics.frame_quality(frames, reference)
    ratio = metrics.sharpness(frames).mean() / metrics.sharpness(reference).mean()
    return {"sharpness_ratio": round(float(ratio), 3), "psnr_db": round(float(psnr.mean()), 2),
            "ssim": round(float(ssim.mean()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/sharpness_vs_blur.json")
    args = parser.parse_args()
    config = compose([])
    video = render_video(config.synth, "benchmark", 0)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "scene.mp4"
        write_video(path, video.rgb[:64], config.synth.fps, config.synth.crf)
        reference, _ = read_video(path)
    results = {}
    for sigma in (0.5, 0.7, 1.0):
        blurred = np.stack([cv2.GaussianBlur(f, (0, 0), sigma) for f in reference])
        results[f"gaussian_sigma_{sigma}"] = scores(blurred, reference)
    size = reference.shape[1:3][::-1]
    half = np.stack([cv2.resize(cv2.resize(f, (size[0] // 2, size[1] // 2),
                                           interpolation=cv2.INTER_AREA), size,
                                interpolation=cv2.INTER_CUBIC) for f in reference])
    results["down_2x_up_cubic"] = scores(half, reference)
    for name, figures in results.items():
        print(f"{name:22s} " + "  ".join(f"{k} {v}" for k, v in figures.items()))
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

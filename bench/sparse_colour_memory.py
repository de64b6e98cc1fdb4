"""Where do the long videos lose their appearance? The sparse control's colours, tested.

On ``tiny`` the sparse control is the conditioning frame carried along the clip's tracks, so
after the first clip its colours come from the model's own last frame. This script regenerates
the benchmark videos with the candidate (history, the profile's start noise; the recorded run
predates ``generation.unified_noise`` and used unified noise) and colours each clip's sparse
control four ways, everything else as the benchmark does it:

- ``now``: the last generated frame (what generation does);
- ``oracle``: the *reference* frame at the clip's start (not available at generation time: the
  ceiling of any memory of the true appearance);
- ``chain``: each query takes the colour of the previous clip's nearest visible track end within
  2 px and 0.03 of depth (so colours travel from frame 0 through the chain of tracks), else the
  generated frame's;
- ``canvas``: frame 0 warped clip by clip along the tracks (each pixel moved by the mean
  displacement of up to 4 visible track ends within 6 px at its depth), the generated frame
  where the warp does not reach;
- ``homography``: frame 0 warped once to each clip's start by the chained homographies of the
  clips' tracks (RANSAC over the visible ones: the camera's motion if the scene were a plane),
  kept where frame 0's depth, warped the same way, agrees with the clip's within 0.05; the
  generated frame elsewhere. One warp of frame 0 per clip, so no resampling accumulates. This is
  ``generation.frame_memory`` (:class:`longvie.generation.frame_memory.FrameMemory`), on for
  ``tiny``; the script turns it off so that every variant starts from the generated frame.

Printed per variant: the gate's figures per seed, per-clip SSIM (mean over videos and seeds),
and for ``chain``/``canvas`` the share of the frame the memory still covers at each clip.

    .venv/bin/python bench/sparse_colour_memory.py [--model=models/stage3/model]
        [--variants=now,oracle,chain,canvas,homography] [--out=JSON] [hydra overrides, e.g. benchmark.seeds=2]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from script_options import take_option

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ("ssim", "psnr_db", "seam_discontinuity", "ssim_drift_slope", "sharpness_ratio")


def bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """``image`` (H, W[, C]) sampled at ``xy`` (N, 2) (scipy's order-1 interpolation), clamped to
    the frame."""
    from scipy.ndimage import map_coordinates

    height, width = image.shape[:2]
    rows = np.clip(xy[:, 1], 0, height - 1)
    columns = np.clip(xy[:, 0], 0, width - 1)
    flat = image.reshape(height, width, -1).astype(np.float64)
    sampled = np.stack([map_coordinates(flat[..., c], [rows, columns], order=1)
                        for c in range(flat.shape[2])], axis=1)
    return sampled.reshape(len(xy), *image.shape[2:])


def chained_colours(previous_colours, previous_tracks, depth, query, frame,
                    radius=2.0, depth_tolerance=0.03) -> tuple[np.ndarray, float]:
    """Per-query colours carried from the previous clip's track ends; the hit share."""
    from scipy.spatial import cKDTree

    _, xy, visible = previous_tracks
    shown = visible[-1] & np.all(np.isfinite(xy[-1]), axis=1)
    colours = bilinear(frame, query.astype(np.float64))
    if not shown.any():
        return colours, 0.0
    distance, nearest = cKDTree(xy[-1][shown]).query(query)
    hit = distance <= radius
    hit &= np.abs(bilinear(depth, query) - bilinear(depth, xy[-1][shown][nearest])) <= depth_tolerance
    colours[hit] = previous_colours[np.flatnonzero(shown)[nearest[hit]]]
    return colours, float(hit.mean())


def warped_canvas(canvas, valid, tracks, depth, radius=6.0, neighbours=4, depth_tolerance=0.05):
    """``canvas`` (H, W, 3) at a clip's first frame moved to its last along the tracks."""
    from scipy.spatial import cKDTree

    query, xy, visible = tracks
    height, width = valid.shape
    shown = visible[-1] & np.all(np.isfinite(xy[-1]), axis=1)
    if not shown.any():
        return np.zeros_like(canvas), np.zeros_like(valid)
    ends, starts = xy[-1][shown], query[shown].astype(np.float64)
    ys, xs = np.mgrid[0:height, 0:width]
    pixels = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    distance, index = cKDTree(ends).query(pixels, k=min(neighbours, len(ends)),
                                          distance_upper_bound=radius)
    distance, index = distance.reshape(len(pixels), -1), index.reshape(len(pixels), -1)
    found = np.isfinite(distance)
    index = np.where(found, index, 0)
    same_depth = found & (np.abs(bilinear(depth, ends)[index] - depth.ravel()[:, None])
                          <= depth_tolerance)
    weights = np.where(same_depth, 1.0 / (distance + 0.5), 0.0)
    total = weights.sum(1)
    source = pixels + (weights[..., None] * (starts - ends)[index]).sum(1) / np.maximum(
        total, 1e-9)[:, None]
    inside = ((source >= 0) & (source <= [width - 1, height - 1])).all(1)
    rounded = np.clip(np.round(source).astype(int), 0, [width - 1, height - 1])
    ok = (total > 0) & inside & valid[rounded[:, 1], rounded[:, 0]]
    moved = np.where(ok[:, None], bilinear(canvas, source), 0).reshape(height, width, 3)
    return moved, ok.reshape(height, width)


class Colouring:
    """Replaces the frames the sparse control is splatted from, clip by clip, for one video."""

    def __init__(self, variant: str, reference: np.ndarray, chains: int, clip_frames: int):
        self.variant, self.reference, self.stride = variant, reference, clip_frames - 1
        self.clip, self.previous, self.coverage = 0, None, []
        first = reference[0].astype(np.float64)
        self.canvas = [(first, np.ones(first.shape[:2], bool)) for _ in range(chains)]
        self.colours = None
        self.memory = None

    def frames(self, frames: np.ndarray, depth: np.ndarray, tracks) -> np.ndarray:
        query = tracks[0]
        if self.variant == "oracle":
            frames = np.repeat(self.reference[self.clip * self.stride][None], len(frames), 0)
        elif self.variant == "chain":
            frames = self._chain(frames, depth, tracks, query)
        elif self.variant == "canvas":
            frames = self._canvas(frames, depth, tracks)
        elif self.variant == "homography":
            frames = self._homography(frames, depth)
        self.previous, self.previous_depth = tracks, depth[-1]
        self.clip += 1
        return frames

    def _chain(self, frames, depth, tracks, query):
        coloured, colours, shares = [], [], []
        for chain, frame in enumerate(frames):
            if self.previous is None:
                carried = bilinear(frame, query.astype(np.float64))
            else:
                carried, share = chained_colours(self.colours[chain], self.previous,
                                                 depth[0], query, frame)
                shares.append(share)
            colours.append(carried)
            painted = frame.copy()  # the splat reads the colour under each query point
            x = np.clip(np.round(query[:, 0]).astype(int), 0, frame.shape[1] - 1)
            y = np.clip(np.round(query[:, 1]).astype(int), 0, frame.shape[0] - 1)
            painted[y, x] = np.round(carried).astype(np.uint8)
            coloured.append(painted)
        self.colours = colours
        if shares:
            self.coverage.append(float(np.mean(shares)))
        return np.stack(coloured)

    def _homography(self, frames, depth):
        from longvie.generation.frame_memory import FrameMemory

        if self.memory is None:
            self.memory = FrameMemory(self.reference[0], depth[0])
        elif self.previous is not None:
            self.memory.advance(self.previous)
        self.coverage.append(float(self.memory.coverage(depth[0]).mean()))
        return self.memory.fill(frames, depth[0])

    def _canvas(self, frames, depth, tracks):
        if self.previous is not None:
            self.canvas = [warped_canvas(c, v, self.previous, self.previous_depth)
                           for c, v in self.canvas]
        self.coverage.append(float(np.mean([v.mean() for _, v in self.canvas])))
        return np.stack([np.where(valid[..., None], np.round(canvas), frame).astype(np.uint8)
                         for (canvas, valid), frame in zip(self.canvas, frames, strict=True)])


def run_variant(config, parts, videos, seeds, variant: str) -> dict:
    import longvie.generation.long_video as long_video
    from longvie.benchmark.run import Contender, regenerate, score
    from longvie.benchmark.scoring import average_metrics

    splat = long_video.first_frame_controls
    by_seed, per_clip, coverage = {s: [] for s in seeds}, [], []
    for video in videos:
        reference = video.reference(0, video.num_frames)
        colouring = Colouring(variant, reference, len(seeds), config.video.clip_frames)
        long_video.first_frame_controls = lambda codec, frames, depth, tracks: splat(
            codec, colouring.frames(frames, depth, tracks), depth, tracks)
        try:
            generated = regenerate(config, Contender("candidate", None, None), parts, video,
                                   len(reference), seeds, progress=False)
        finally:
            long_video.first_frame_controls = splat
        for seed, frames in zip(seeds, generated, strict=True):
            scored = score(config, video, frames, reference, None, quality_only=True)
            by_seed[seed].append(scored["metrics"])
            per_clip.append(scored["per_clip"]["ssim"])
        coverage.append(colouring.coverage)
    return {"per_seed": {str(s): {f: average_metrics(r)[f] for f in FIGURES}
                         for s, r in by_seed.items()},
            "per_clip_ssim": np.mean(per_clip, axis=0).round(4).tolist(),
            "memory_coverage": np.mean(coverage, axis=0).round(3).tolist() if coverage[0] else []}


def main(args: list[str]) -> int:
    from longvie.benchmark.run import benchmark_sources, load_model, sampler_seeds
    from longvie.config import compose
    from longvie.generation.sources import stored_video

    model, args = take_option(args, "model", "models/stage3/model")
    variants, args = take_option(args, "variants", "now,oracle,chain,canvas,homography")
    out, overrides = take_option(args, "out", "bench/results/sparse_colour_memory.json")
    config = compose([*overrides, "generation.frame_memory=false"])
    parts = load_model(config.model, (ROOT / model).resolve())
    videos = [stored_video(config, source) for source in benchmark_sources(config)]
    seeds = sampler_seeds(config)
    results = {}
    for variant in variants.split(","):
        started = time.perf_counter()
        results[variant] = run_variant(config, parts, videos, seeds, variant)
        means = {f: float(np.mean([r[f] for r in results[variant]["per_seed"].values()]))
                 for f in FIGURES}
        results[variant]["mean"] = means
        print(f"{variant} ({time.perf_counter() - started:.0f} s): "
              + ", ".join(f"{f} {v:.4g}" for f, v in means.items()), flush=True)
        print(f"  per-clip SSIM: {results[variant]['per_clip_ssim']}", flush=True)
        if results[variant]["memory_coverage"]:
            print(f"  memory coverage: {results[variant]['memory_coverage']}", flush=True)
    path = ROOT / out
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": model, "seeds": seeds, "variants": results},
                               indent=2) + "\n")
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

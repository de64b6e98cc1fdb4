"""How the control-aware model generates: held-out clips from their true first frame, caption and
controls, against holding the first frame (``static``) and the controls alone (``controls_only``:
frame 0 carried along the tracks, :mod:`longvie.controls.splat`).

Kept apart from the training module: ``longvie pretrain`` stamps its checkpoints with the source
of the files that train, so a change to how the result is judged does not discard training.
Frame 0 is given, so every figure is over frames 1..N-1. Figures are per clip (the mean over the
sampler seeds), then the mean and standard error over clips; comparisons are paired by clip.
"""

from __future__ import annotations

import numpy as np
import torch

from longvie.config import LongvieConfig
from longvie.config.schema import GenerationConfig
from longvie.controls.splat import splat_first_frame
from longvie.model.backbone import LatentCodec
from longvie.model.sampler import ClipInputs, sample_clip
from longvie.quality import metrics
from longvie.training.clips import batch_to_frames, video_tensor
from longvie.training.pretrain.control_corpus import ControlledClip

FIGURES = ("ssim", "psnr_db", "sharpness_ratio", "track_epe_px")


@torch.no_grad()
def generate_clips(parts, clips: list[ControlledClip], latents, config: LongvieConfig,
                   seed: int, guidance: float) -> list[np.ndarray]:
    """Every clip generated once by ``parts`` (a :class:`~longvie.model.folder.Generator`) as
    uint8 frames, all clips in one batch."""

    sampler = benchmark_sampler(config)
    codec = LatentCodec(parts.vae)
    text_encoder = parts.text_encoder
    first = torch.stack([video_tensor(c.frames[:1])[:, 0] for c in clips])
    condition = codec.condition(first, config.video.clip_frames, config.model.condition_encoding)
    inputs = ClipInputs(condition, text_encoder.encode([c.caption for c in clips]),
                        text_encoder.encode([""]), latents.tensors["dense"],
                        latents.tensors["sparse"])
    shape = latents.tensors["video"].shape[1:]
    noise = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(
        seed * 100_003 + index)) for index in range(len(clips))])
    clean = sample_clip(parts.transformer.eval(), inputs, noise, sampler["steps"],
                        sampler["shift"], guidance, sampler["solver"])
    return list(batch_to_frames(codec.decode(clean)))


def benchmark_sampler(config: LongvieConfig) -> dict:
    """The sampler the benchmark generates with (``generation``'s, ``benchmark.steps`` aside)."""
    generation = config.generation
    return {"steps": config.benchmark.steps or generation.steps, "shift": generation.shift,
            "solver": generation.solver, "guidance": generation.guidance}


def guidances(generation: GenerationConfig) -> list[float]:
    """Guidance 1 (no overshoot) and the benchmark's own."""
    return sorted({1.0, float(generation.guidance)})


def clip_scores(frames: np.ndarray, clip: ControlledClip) -> dict[str, float]:
    """SSIM, PSNR, sharpness ratio and track EPE of one clip's frames 1..N-1."""

    reference = clip.frames
    psnr, ssim = metrics.frame_quality(frames[1:], reference[1:])
    sharp = metrics.sharpness(frames[1:]) / np.maximum(metrics.sharpness(reference[1:]), 1e-6)
    tracks = metrics.track_fidelity(frames, clip.query_xy, clip.tracks_xy, clip.visible)
    return {"ssim": float(ssim.mean()), "psnr_db": float(np.minimum(psnr, 100.0).mean()),
            "sharpness_ratio": float(sharp.mean()),
            "track_epe_px": np.nan if tracks["median_epe_px"] is None
            else float(tracks["median_epe_px"])}


def summary(per_clip: list[dict[str, float]]) -> dict:
    """Mean and standard error over clips of each figure."""
    out = {}
    for key in FIGURES:
        values = np.array([c[key] for c in per_clip], dtype=np.float64)
        values = values[np.isfinite(values)]
        out[key] = round(float(values.mean()), 4) if values.size else None
        out[f"{key}_se"] = (round(float(values.std(ddof=1) / np.sqrt(values.size)), 4)
                            if values.size > 1 else None)
    return out


def paired(a: list[dict], b: list[dict], key: str) -> dict:
    """``a - b`` per clip: mean, standard error and how many standard errors from zero."""
    diff = np.array([x[key] - y[key] for x, y in zip(a, b, strict=True)], dtype=np.float64)
    diff = diff[np.isfinite(diff)]
    se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else float("nan")
    return {"mean": round(float(diff.mean()), 4), "se": round(se, 4),
            "standard_errors": round(float(diff.mean()) / se, 2) if se > 0 else None}


@torch.no_grad()
def reconstructions(parts, latents) -> list[np.ndarray]:
    """The reference clips through the VAE (encode, decode): the most a generated clip can keep
    of the reference's detail, since every sample is decoded by the same decoder."""

    codec = LatentCodec(parts.vae)
    videos = latents.tensors["video"]
    return [frames for i in range(0, len(videos), 8)
            for frames in batch_to_frames(codec.decode(videos[i:i + 8]))]


def baselines(clips: list[ControlledClip]) -> dict[str, list[np.ndarray]]:
    """``static`` (frame 0 held) and ``controls_only`` (frame 0 along the tracks) per clip."""

    return {
        "static": [np.repeat(c.frames[:1], len(c.frames), axis=0) for c in clips],
        "controls_only": [splat_first_frame(c.frames[0], c.query_xy, c.tracks_xy, c.visible,
                                            c.depth) for c in clips],
    }


def generation_figures(parts, clips: list[ControlledClip], latents, config: LongvieConfig
                       ) -> tuple[dict, dict[str, list[np.ndarray]]]:
    """Each of :func:`guidances` over ``pretrain.control.sample_seeds``, the baselines and
    the paired comparisons; and the clips of the first seed at guidance 1 plus the baselines,
    for the picture."""
    settings = config.pretrain.control
    shown = baselines(clips) | {"vae_reconstruction": reconstructions(parts, latents)}
    scored = {name: [clip_scores(v, c) for v, c in zip(videos, clips, strict=True)]
              for name, videos in shown.items()}
    report = {name: summary(scores) for name, scores in scored.items()}
    shown["reference"] = [c.frames for c in clips]
    shown["depth"] = [np.repeat(np.round(c.depth * 255).astype(np.uint8)[..., None], 3, axis=3)
                      for c in clips]
    shown["sparse"] = [c.sparse for c in clips]
    for guidance in guidances(config.generation):
        per_seed = []
        for seed in settings.sample_seeds:
            videos = generate_clips(parts, clips, latents, config, seed, guidance)
            per_seed.append([clip_scores(v, c) for v, c in zip(videos, clips, strict=True)])
            if f"generated_guidance_{guidance:g}" not in shown:
                shown[f"generated_guidance_{guidance:g}"] = videos
        per_clip = [{key: float(np.nanmean([s[i][key] for s in per_seed])) for key in FIGURES}
                    for i in range(len(clips))]
        name = f"guidance_{guidance:g}"
        report[name] = summary(per_clip)
        report[name]["per_seed"] = {key: [round(float(np.nanmean([c[key] for c in s])), 4)
                                          for s in per_seed] for key in FIGURES}
        report[name]["vs_static"] = {k: paired(per_clip, scored["static"], k)
                                     for k in ("ssim", "psnr_db")}
        report[name]["vs_controls_only"] = {k: paired(per_clip, scored["controls_only"], k)
                                            for k in ("ssim", "psnr_db")}
    report["seeds"] = list(settings.sample_seeds)
    report["clips"] = len(clips)
    report["sampler"] = benchmark_sampler(config)  # its guidance: the one the benchmark uses
    report["frames_scored"] = "1..N-1 (frame 0 is given)"
    return report, shown

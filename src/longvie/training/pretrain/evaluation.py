"""How the pretrained DiT generates: held-out clips sampled from their true first frame.

Kept apart from the training module: ``longvie pretrain`` stamps its checkpoints with the source
of the files that train, so a change to how the result is judged does not discard hours of
training.

Frame 0 is the given frame, not a generated one: every figure is over frames 1..N-1. Counting
it made the static baseline look 4.8 dB better than it is (an exact frame scores PSNR 100 dB in
a 17-frame mean: run 3 reported static 22.30 dB where its generated frames score 17.5 dB).
"""

from __future__ import annotations

import numpy as np
import torch

from longvie.config import LongvieConfig
from longvie.model.backbone import LatentCodec, latent_frames
from longvie.model.sampler import ClipInputs, sample_clip
from longvie.training.clips import to_frames

SAMPLE_SEEDS = (0, 1)
FIGURES = ("sharpness_ratio", "psnr_db", "ssim")


@torch.no_grad()
def generate_heldout(transformer, text_encoder, vae, heldout: list[dict], config: LongvieConfig,
                     seed: int) -> list[np.ndarray]:
    """Each held-out clip generated from its true first frame and caption (uint8 frames)."""
    from longvie.model.controller import LongVieTransformer

    settings = config.pretrain
    codec = LatentCodec(vae.eval())
    model = LongVieTransformer(transformer, None).eval()
    null_text = text_encoder.encode([""])
    clip_frames = config.video.clip_frames
    out = []
    for item in heldout:
        first = item["video"][:, 0].unsqueeze(0)
        condition = codec.condition(first, clip_frames, config.model.condition_encoding)
        inputs = ClipInputs(condition, text_encoder.encode([item["caption"]]), null_text)
        shape = (1, condition.shape[1], latent_frames(clip_frames), *condition.shape[3:])
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
        clean = sample_clip(model, inputs, noise, settings.sample_steps, settings.sample_shift,
                            settings.sample_guidance)
        out.append(to_frames(codec.decode(clean)))
    return out


def clip_figures(generated: list[np.ndarray], references: list[np.ndarray]) -> dict:
    """Mean sharpness ratio, PSNR and SSIM of the generated frames (1..N-1) of each clip against
    its reference."""
    from longvie.quality import metrics

    sharp, psnr, ssim = [], [], []
    for frames, reference in zip(generated, references, strict=True):
        frames, reference = frames[1:], reference[1:]
        frame_psnr, frame_ssim = metrics.frame_quality(frames, reference)
        psnr.append(float(np.minimum(frame_psnr, 100.0).mean()))
        ssim.append(float(frame_ssim.mean()))
        sharp.append(float((metrics.sharpness(frames)
                            / np.maximum(metrics.sharpness(reference), 1e-6)).mean()))
    return {"sharpness_ratio": float(np.mean(sharp)), "psnr_db": float(np.mean(psnr)),
            "ssim": float(np.mean(ssim))}


def generation_figures(transformer, text_encoder, vae, heldout: list[dict],
                       config: LongvieConfig) -> tuple[dict, list[np.ndarray]]:
    """Figures over :data:`SAMPLE_SEEDS` (mean, spread, per seed), and seed 0's clips; plus the
    static baseline (the first frame held) for scale."""

    references = [to_frames(item["video"].unsqueeze(0)) for item in heldout]
    per_seed, first = {}, None
    for seed in SAMPLE_SEEDS:
        clips = generate_heldout(transformer, text_encoder, vae, heldout, config, seed)
        per_seed[seed] = clip_figures(clips, references)
        first = clips if first is None else first
    figures = {}
    for key in FIGURES:
        values = [per_seed[s][key] for s in SAMPLE_SEEDS]
        figures[key] = round(float(np.mean(values)), 4)
        figures[f"{key}_sd_over_seeds"] = round(float(np.std(values, ddof=1)), 4)
        figures[f"{key}_per_seed"] = [round(v, 4) for v in values]
    static = clip_figures([np.repeat(r[:1], len(r), axis=0) for r in references], references)
    figures["static_first_frame"] = {k: round(v, 4) for k, v in static.items()}
    figures["frames_scored"] = "1..N-1 (frame 0 is given)"
    figures["seeds"] = list(SAMPLE_SEEDS)
    figures["sampler"] = {"steps": config.pretrain.sample_steps,
                          "shift": config.pretrain.sample_shift,
                          "guidance": config.pretrain.sample_guidance}
    return figures, first

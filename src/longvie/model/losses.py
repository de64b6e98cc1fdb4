"""Stage-3 loss terms of LongVie 2, the per-frame weights of the diffusion loss, and Loong's
early-frame re-weighting.

Stage 3 ties the first generated latent frame ẑ_0 to three references: the low frequencies of
the degraded input frame z~_I (keep the layout it gives), the high frequencies of the ground-truth
first frame (restore the detail a degraded input has lost), and the last history latent z_H[-1]
(no jump at the clip boundary). Throughout, "||a - b||^2" is the mean squared error, i.e. the
mean over all elements, so the weights do not depend on the latent size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

STAGE3_WEIGHTS = {"deg": 0.2, "gt": 0.15, "cons": 0.5}
BOUNDARY_WEIGHTS = (0.05, 0.325, 0.757)
LOONG_LAMBDA = 1.0
LOONG_EARLY_PIXEL_FRAMES = 17


def low_pass(x: Tensor) -> Tensor:
    """Per-frame low frequencies of ``x`` (..., H, W): area down by 1/2, bilinear back up.

    Works on any leading dims (frames (B, C, h, w) or videos (B, C, F, h, w)); each 2-D slice is
    filtered on its own. The half size is floored and clamped to at least 1 px. Both resamplings
    are convex mixes, so a constant stays exactly that constant.
    """
    if x.dim() < 2:
        raise ValueError(f"need at least 2 dims (H, W), got shape {tuple(x.shape)}")
    height, width = x.shape[-2:]
    flat = x.reshape(-1, 1, height, width)
    small = F.interpolate(flat, size=(max(1, height // 2), max(1, width // 2)), mode="area")
    up = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
    return up.reshape(x.shape)


def high_pass(x: Tensor) -> Tensor:
    """Per-frame high frequencies: ``x - low_pass(x)``, so LP + HP reconstructs ``x`` exactly."""
    return x - low_pass(x)


def _mse(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared error; refuses shape mismatches that F.mse_loss would silently broadcast."""
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {tuple(a.shape)} vs {tuple(b.shape)}")
    return F.mse_loss(a, b)


def degradation_loss(degraded_input_latent: Tensor, pred_first_latent: Tensor) -> Tensor:
    """L_deg = ||LP(z~_I) - LP(ẑ_0)||^2: follow the degraded input's layout, not its detail."""
    return _mse(low_pass(degraded_input_latent.detach()), low_pass(pred_first_latent))


def ground_truth_loss(gt_first_latent: Tensor, pred_first_latent: Tensor) -> Tensor:
    """L_gt = ||HP(z_gt,0) - HP(ẑ_0)||^2: restore the ground truth's fine detail."""
    return _mse(high_pass(gt_first_latent.detach()), high_pass(pred_first_latent))


def consistency_loss(last_history_latent: Tensor, pred_first_latent: Tensor) -> Tensor:
    """L_cons = ||z_H[-1] - ẑ_0||^2: the new clip starts where the history ends."""
    return _mse(last_history_latent.detach(), pred_first_latent)


def stage3_loss(
    diffusion_loss: Tensor,
    pred_first_latent: Tensor,
    degraded_input_latent: Tensor,
    gt_first_latent: Tensor,
    last_history_latent: Tensor,
    w_deg: float = STAGE3_WEIGHTS["deg"],
    w_gt: float = STAGE3_WEIGHTS["gt"],
    w_cons: float = STAGE3_WEIGHTS["cons"],
) -> dict[str, Tensor]:
    """L = L_diff + w_deg L_deg + w_gt L_gt + w_cons L_cons, with every term for logging.

    Latent frames are (B, C, h, w) (any equal shapes with H, W last work). Only ẑ_0
    (``pred_first_latent``) is trained by the three extra terms: the other latents are targets
    and are detached. Keys: "diff", "deg", "gt", "cons", "total".
    """
    terms = {
        "diff": diffusion_loss,
        "deg": degradation_loss(degraded_input_latent, pred_first_latent),
        "gt": ground_truth_loss(gt_first_latent, pred_first_latent),
        "cons": consistency_loss(last_history_latent, pred_first_latent),
    }
    terms["total"] = (
        terms["diff"] + w_deg * terms["deg"] + w_gt * terms["gt"] + w_cons * terms["cons"]
    )
    return terms


def boundary_weights(num_latent_frames: int) -> Tensor:
    """(F,) diffusion-loss weights of the generated latents: 0.05, 0.325, 0.757, then 1.

    The paper's weights for the first three generated latents: they soften the diffusion loss at
    the clip boundary, where ẑ_0 is also held by the stage-3 terms. Fewer than three frames take
    the prefix of the three values.
    """
    if num_latent_frames < 1:
        raise ValueError(f"need at least one latent frame, got {num_latent_frames}")
    weights = torch.ones(num_latent_frames, dtype=torch.float32)
    head = BOUNDARY_WEIGHTS[:num_latent_frames]
    weights[: len(head)] = torch.tensor(head, dtype=torch.float32)
    return weights


def causal_latent_frames(pixel_frames: int, temporal_stride: int = 4) -> int:
    """Latent frames of ``pixel_frames`` under a causal video VAE: the first frame alone, then
    one latent per ``temporal_stride`` frames (17 -> 5, 65 -> 17 with stride 4)."""
    if pixel_frames < 1 or temporal_stride < 1:
        raise ValueError("pixel_frames and temporal_stride must be >= 1")
    return 1 + math.ceil((pixel_frames - 1) / temporal_stride)


def early_frame_weights(
    num_latent_frames: int,
    lam: float = LOONG_LAMBDA,
    num_early: int = causal_latent_frames(LOONG_EARLY_PIXEL_FRAMES),
) -> Tensor:
    """(F,) weights: 1 + lam on the first ``num_early`` latent frames, 1 on the rest.

    Loong (Sec. 3.2, Eq. 2) weights the loss of "the K tokens corresponding to the early frames
    (the first 17 frames)" of a 65-frame clip by (1 + λ), "λ is a positive value", and sets
    λ = 1.0 (Sec. 4). Seed text /work/shared/seeds/004_387a1bc3621bd0d4.txt, lines 239-244 and
    328. Its tokenizer compresses 65 frames to 17 latent frames (4x causal, as the video VAE
    here), so the default ``num_early`` is the 5 latents of the first 17 frames, not frame 0
    only. ``lam = 0`` turns the re-weighting off.
    """
    if num_latent_frames < 1:
        raise ValueError(f"need at least one latent frame, got {num_latent_frames}")
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    if num_early < 0:
        raise ValueError(f"num_early must be >= 0, got {num_early}")
    weights = torch.ones(num_latent_frames, dtype=torch.float32)
    weights[:num_early] = 1.0 + lam
    return weights


def weighted_flow_matching_loss(pred: Tensor, target: Tensor, frame_weights: Tensor) -> Tensor:
    """Per-frame MSE of ``pred`` vs ``target`` (B, C, F, h, w), weighted and normalised.

    ``frame_weights`` is (F,) or (B, F). Each (sample, frame) MSE is the mean over C, h, w; the
    loss is sum(w * mse) / sum(w), so uniform weights give the plain MSE and only the relative
    weights matter (the loss scale does not change with F or the weights' magnitude).
    """
    if pred.dim() != 5 or pred.shape != target.shape:
        raise ValueError(
            f"expected equal (B, C, F, h, w) shapes, got {tuple(pred.shape)}, {tuple(target.shape)}"
        )
    batch, _, frames = pred.shape[:3]
    if frame_weights.shape not in ((frames,), (batch, frames)):
        raise ValueError(f"frame_weights must be ({frames},) or ({batch}, {frames})")
    if bool((frame_weights < 0).any()) or float(frame_weights.sum()) <= 0.0:
        raise ValueError("frame_weights must be non-negative with a positive sum")
    weights = frame_weights.to(device=pred.device, dtype=pred.dtype).expand(batch, frames)
    per_frame = (pred - target).pow(2).mean(dim=(1, 3, 4))  # (B, F)
    return (weights * per_frame).sum() / weights.sum()

"""Training-time degradations of LongVie 2's dense control (stage 1) and first frame (stage 2).

Stage 1 weakens the dense (depth) control so the model does not lean on it alone: at the feature
level the dense-branch features are scaled down, at the data level the depth video is blurred
and/or rebuilt from a random mix of resolutions. Stage 2 degrades the conditioning first frame the
way an autoregressive rollout would (VAE round trips, or a partial regeneration by the model
itself, plus a smooth colour drift), so the model learns to recover from its own artefacts.

Every function is a pure torch function: all randomness comes from the explicit
``torch.Generator`` and is drawn on that generator's device, so a seed fixes the result. The
paper's constants are module constants; the functions take them as explicit arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

T = TypeVar("T")

# Stage 1, feature level: scale the dense-branch features by lambda ~ U[low, high] with p.
DENSE_FEATURE_P = 0.15
DENSE_FEATURE_LOW = 0.05
DENSE_FEATURE_HIGH = 1.0
# Stage 1, data level: per-sample probability, fusion scales (as divisors 1, 1/2, ..., 1/32) and
# the odd average-blur kernels 3..15.
DENSE_DATA_P = 0.10
FUSION_DIVISORS = (1, 2, 4, 8, 16, 32)
BLUR_KERNELS = (3, 5, 7, 9, 11, 13, 15)

# Stage 2: per-sample probability of T(I), the encoding branch's share (the rest is generation),
# its severities ordered mildest first, and the colour drift's parameters.
FIRST_FRAME_P = 0.2
ENCODING_SHARE = 0.2
ENCODING_ROUNDS = tuple(range(11))
GENERATION_STEPS = (1, 5, 8, 10, 12)
NUM_SAMPLING_STEPS = 50
DRIFT_P = 0.1
DRIFT_OFFSET = 0.1
DRIFT_STRENGTH_LOW = 0.1
DRIFT_STRENGTH_HIGH = 0.2
DRIFT_GRID = 4


def _uniform(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    """U[0, 1) float32 draws on the generator's own device (torch requires them to match)."""
    return torch.rand(shape, generator=generator, device=generator.device)


def _check_probability(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p}")


# --- Stage 1: feature level -------------------------------------------------------------------


def sample_dense_feature_scale(
    batch: int, p: float, low: float, high: float, generator: torch.Generator
) -> Tensor:
    """Per-sample factor for the dense-branch features: U[low, high] with probability ``p``.

    Returns a (batch,) float32 tensor on the generator's device, 1.0 where not applied. Both
    draws are made for every sample so the stream consumed does not depend on the outcomes.
    """
    _check_probability(p)
    if not 0.0 <= low <= high:
        raise ValueError(f"need 0 <= low <= high, got low={low}, high={high}")
    apply = _uniform((batch,), generator) < p
    scale = low + (high - low) * _uniform((batch,), generator)
    return torch.where(apply, scale, torch.ones_like(scale))


# --- Stage 1: data level ----------------------------------------------------------------------


def resample(frames: Tensor, divisor: int) -> Tensor:
    """``frames`` (N, C, H, W) area-downsampled by ``divisor`` and bilinearly upsampled back.

    The reduced size is floored and clamped to at least 1 px, so large divisors on small frames
    degrade to the frame mean instead of failing. Divisor 1 is the identity.
    """
    if divisor < 1:
        raise ValueError(f"divisor must be >= 1, got {divisor}")
    height, width = frames.shape[-2:]
    size = (max(1, height // divisor), max(1, width // divisor))
    if size == (height, width):
        return frames
    small = F.interpolate(frames, size=size, mode="area")
    return F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)


def sample_scale_fusion(
    generator: torch.Generator, divisors: Sequence[int] = FUSION_DIVISORS
) -> tuple[tuple[int, ...], Tensor]:
    """Drop one divisor uniformly at random; Dirichlet(1, ..., 1) weights for the others.

    Returns the kept divisors (in the given order) and their float32 weights, which sum to 1.
    A flat Dirichlet (normalised exponential draws) makes every mix on the simplex equally likely.
    """
    if len(divisors) < 2:
        raise ValueError("scale fusion needs at least two divisors")
    dropped = int(torch.randint(len(divisors), (1,), generator=generator, device=generator.device))
    kept = tuple(d for i, d in enumerate(divisors) if i != dropped)
    draws = -torch.log1p(-_uniform((len(kept),), generator))  # Exp(1); log1p(-u) is finite
    return kept, draws / draws.sum()


def fuse_scales(frames: Tensor, divisors: Sequence[int], weights: Tensor) -> Tensor:
    """Weighted sum of ``frames`` (N, C, H, W) resampled at each divisor.

    With weights summing to 1 this is a convex mix, so a constant input stays that constant and
    values stay inside the input's range.
    """
    if len(divisors) != weights.numel():
        raise ValueError(f"{len(divisors)} divisors but {weights.numel()} weights")
    weights = weights.to(device=frames.device, dtype=frames.dtype)
    out = torch.zeros_like(frames)
    for divisor, weight in zip(divisors, weights, strict=True):
        out = out + weight * resample(frames, divisor)
    return out


def sample_blur_kernel(generator: torch.Generator, kernels: Sequence[int] = BLUR_KERNELS) -> int:
    """One odd kernel size, uniformly among ``kernels`` (3, 5, ..., 15 by default)."""
    index = int(torch.randint(len(kernels), (1,), generator=generator, device=generator.device))
    return int(kernels[index])


def box_blur(frames: Tensor, kernel: int) -> Tensor:
    """Average blur of ``frames`` (N, C, H, W) with an odd ``kernel`` and replicate padding.

    Replicate padding (unlike zero padding) keeps the local mean right at the borders, and
    unlike reflect padding it works for frames smaller than the kernel.
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be odd and positive, got {kernel}")
    radius = kernel // 2
    padded = F.pad(frames, (radius, radius, radius, radius), mode="replicate")
    return F.avg_pool2d(padded, kernel_size=kernel, stride=1)


def degrade_dense_video(
    video: Tensor, p: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Data-level degradation of a depth control video (B, C, T, H, W) in [0, 1].

    Each sample is degraded with probability ``p``; a degraded sample gets scale fusion, the
    average blur, or both (fusion first), each of the three with probability 1/3. All frames of
    a sample share the same parameters so the degradation is temporally consistent. Returns the
    new video (clamped to [0, 1]) and the (B,) bool mask of degraded samples.
    """
    _check_probability(p)
    if video.dim() != 5:
        raise ValueError(f"expected (B, C, T, H, W), got shape {tuple(video.shape)}")
    applied = _uniform((video.shape[0],), generator) < p
    out = video.clone()
    for b in torch.nonzero(applied).flatten().tolist():
        mode = int(torch.randint(3, (1,), generator=generator, device=generator.device))
        frames = video[b].transpose(0, 1)  # (T, C, H, W): one 2-D image per frame
        if mode in (0, 2):
            kept, weights = sample_scale_fusion(generator)
            frames = fuse_scales(frames, kept, weights)
        if mode in (1, 2):
            frames = box_blur(frames, sample_blur_kernel(generator))
        out[b] = frames.transpose(0, 1).clamp(0.0, 1.0)
    return out, applied.to(video.device)


# --- Stage 2: first-frame degradation ---------------------------------------------------------


def severity_probabilities(count: int) -> Tensor:
    """P(k) proportional to 1 / (1 + k) over ``count`` severities ordered mildest first.

    A harmonic decay keeps every severity reachable while the mild ones, which look like the
    small errors a rollout actually accumulates, are drawn most often.
    """
    if count < 1:
        raise ValueError(f"need at least one severity, got {count}")
    weights = 1.0 / (1.0 + torch.arange(count, dtype=torch.float64))
    return weights / weights.sum()


def sample_severity(options: Sequence[T], generator: torch.Generator) -> T:
    """One of ``options`` (ordered mildest first) drawn with :func:`severity_probabilities`."""
    probs = severity_probabilities(len(options)).to(generator.device)
    index = int(torch.multinomial(probs, 1, generator=generator))
    return options[index]


def smooth_random_mask(
    batch: int, height: int, width: int, generator: torch.Generator, grid: int = DRIFT_GRID
) -> Tensor:
    """(batch, 1, height, width) mask in [0, 1]: a U[0, 1] ``grid`` x ``grid`` field upsampled.

    Bilinear interpolation (align_corners=True) is a convex mix of the field's values, so the
    mask stays in [0, 1] and varies only over about height / grid pixels: a smooth tint, not
    noise. Returned on the generator's device.
    """
    field = _uniform((batch, 1, grid, grid), generator)
    return F.interpolate(field, size=(height, width), mode="bilinear", align_corners=True)


def colour_drift(image: Tensor, generator: torch.Generator) -> Tensor:
    """Tint ``image`` (B, 3, H, W) in [-1, 1] towards a shifted mean colour under a smooth mask.

    Per sample the target colour is the image's per-channel mean plus U[-0.1, 0.1] per channel;
    each pixel moves towards it by ``strength * mask`` with strength ~ U[0.1, 0.2] and the mask
    from :func:`smooth_random_mask`. So no pixel moves by more than 0.2 of its distance to the
    target. The result is clamped to [-1, 1].
    """
    if image.dim() != 4:
        raise ValueError(f"expected (B, C, H, W), got shape {tuple(image.shape)}")
    batch, channels, height, width = image.shape
    offset = DRIFT_OFFSET * (2.0 * _uniform((batch, channels, 1, 1), generator) - 1.0)
    strength = DRIFT_STRENGTH_LOW + (DRIFT_STRENGTH_HIGH - DRIFT_STRENGTH_LOW) * _uniform(
        (batch, 1, 1, 1), generator
    )
    mask = smooth_random_mask(batch, height, width, generator)
    alpha = (strength * mask).to(device=image.device, dtype=image.dtype)
    target = image.mean(dim=(-2, -1), keepdim=True) + offset.to(image.device, image.dtype)
    return (image + alpha * (target - image)).clamp(-1.0, 1.0)


def _index(samples: list[int], device: torch.device) -> Tensor:
    return torch.tensor(samples, dtype=torch.long, device=device)


def degrade_first_frame(
    image: Tensor,
    p: float,
    encode_decode: Callable[[Tensor], Tensor],
    encode: Callable[[Tensor], Tensor],
    renoise_denoise: Callable[[Tensor, int, int], Tensor],
    decode: Callable[[Tensor], Tensor],
    generator: torch.Generator,
    *,
    encoding_share: float = ENCODING_SHARE,
    drift_p: float = DRIFT_P,
    num_steps: int = NUM_SAMPLING_STEPS,
) -> tuple[Tensor, list[str]]:
    """Stage-2 degradation T(I) of the conditioning frames ``image`` (B, 3, H, W) in [-1, 1].

    Each sample is degraded with probability ``p``. A degraded sample takes the encoding branch
    with probability ``encoding_share`` -- ``encode_decode`` (one VAE round trip) applied K times,
    K from ``ENCODING_ROUNDS`` (0..10; K = 0 is a drawn no-op) -- and otherwise the generation
    branch: ``decode(renoise_denoise(encode(x), t, num_steps))`` with t from ``GENERATION_STEPS``.
    ``renoise_denoise`` must noise the clean latent to the level t sampling steps before the clean
    end of a ``num_steps`` schedule and denoise it with the model through those t steps. Both
    severities come from :func:`sample_severity`. A degraded sample then also gets
    :func:`colour_drift` with probability ``drift_p`` (the drift is part of T, not applied to
    clean samples).

    Samples sharing a step (or still needing round trips) are sent to the callables together, so
    ``encode_decode`` is called max(K) times for the batch. Runs under ``torch.no_grad``: the
    degraded frame is a model input, never a path for gradients. Returns the images (clamped to
    [-1, 1]) and per sample "none", "encoding:K" or "generation:t", with "+drift" appended when
    drifted.
    """
    _check_probability(p)
    _check_probability(encoding_share)
    _check_probability(drift_p)
    if image.dim() != 4:
        raise ValueError(f"expected (B, C, H, W), got shape {tuple(image.shape)}")
    batch = image.shape[0]
    draws = _uniform((batch, 3), generator).tolist()  # apply, branch, drift: fixed consumption
    rounds: dict[int, int] = {}
    steps: dict[int, int] = {}
    for b in range(batch):
        if draws[b][0] >= p:
            continue
        if draws[b][1] < encoding_share:
            rounds[b] = sample_severity(ENCODING_ROUNDS, generator)
        else:
            steps[b] = sample_severity(GENERATION_STEPS, generator)
    drifted = [b for b in (*rounds, *steps) if draws[b][2] < drift_p]

    with torch.no_grad():
        out = image.clone()
        for r in range(max(rounds.values(), default=0)):
            idx = _index([b for b, k in rounds.items() if k > r], image.device)
            out[idx] = encode_decode(out[idx]).to(out.dtype)
        for t in sorted(set(steps.values())):
            idx = _index([b for b, s in steps.items() if s == t], image.device)
            latent = renoise_denoise(encode(out[idx]), t, num_steps)
            out[idx] = decode(latent).to(out.dtype)
        out = out.clamp(-1.0, 1.0)
        if drifted:
            idx = _index(sorted(drifted), image.device)
            out[idx] = colour_drift(out[idx], generator)

    kinds = ["none"] * batch
    for b, k in rounds.items():
        kinds[b] = f"encoding:{k}"
    for b, t in steps.items():
        kinds[b] = f"generation:{t}"
    for b in drifted:
        kinds[b] += "+drift"
    return out, kinds


def degrade_latent_video(
    latents: Tensor,
    p: float,
    round_trip: Callable[[Tensor], Tensor],
    regenerate: Callable[[Tensor, int, int], Tensor],
    generator: torch.Generator,
    *,
    encoding_share: float = ENCODING_SHARE,
    num_steps: int = NUM_SAMPLING_STEPS,
    max_rounds: int = ENCODING_ROUNDS[-1],
) -> tuple[Tensor, list[str]]:
    """T applied to already-encoded frames (B, C, F, h, w): stage 3's history.

    The same two branches and severities as :func:`degrade_first_frame`, on latents: the
    encoding branch is ``round_trip`` (encode o decode of the whole latent video) K times with
    K in 0..``max_rounds``, the generation branch ``regenerate(latents, t, num_steps)``. Samples are degraded one by one (a
    history is degraded rarely, and a VAE round trip of a video is the costly part). No colour
    drift: it is defined on pixels. Returns the latents and the per-sample kinds.
    """
    _check_probability(p)
    _check_probability(encoding_share)
    draws = _uniform((latents.shape[0], 2), generator).tolist()
    out, kinds = latents.clone(), ["none"] * latents.shape[0]
    with torch.no_grad():
        for b, (apply, branch) in enumerate(draws):
            if apply >= p:
                continue
            if branch < encoding_share:
                rounds = sample_severity(ENCODING_ROUNDS[: max_rounds + 1], generator)
                for _ in range(rounds):
                    out[b : b + 1] = round_trip(out[b : b + 1]).to(out.dtype)
                kinds[b] = f"encoding:{rounds}"
            else:
                steps = sample_severity(GENERATION_STEPS, generator)
                out[b : b + 1] = regenerate(out[b : b + 1], steps, num_steps).to(out.dtype)
                kinds[b] = f"generation:{steps}"
    return out, kinds

"""Stage-1 dense-control and stage-2 first-frame degradations: ranges, rates, exactness on
constructed inputs, use of the caller's callables, and determinism under a seeded generator."""

from __future__ import annotations

import torch

from longvie.model.degradations import (
    BLUR_KERNELS,
    DENSE_FEATURE_HIGH,
    DENSE_FEATURE_LOW,
    ENCODING_ROUNDS,
    FUSION_DIVISORS,
    GENERATION_STEPS,
    NUM_SAMPLING_STEPS,
    box_blur,
    colour_drift,
    degrade_dense_video,
    degrade_first_frame,
    degrade_latent_video,
    fuse_scales,
    resample,
    sample_blur_kernel,
    sample_dense_feature_scale,
    sample_scale_fusion,
    sample_severity,
    severity_probabilities,
    smooth_random_mask,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def textured(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=gen(seed))


def checkerboard(height: int, width: int) -> torch.Tensor:
    rows = torch.arange(height).view(-1, 1)
    cols = torch.arange(width).view(1, -1)
    return ((rows + cols) % 2).float()


def hf_energy(x: torch.Tensor) -> float:
    dx = x[..., :, 1:] - x[..., :, :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    return float(dx.pow(2).mean() + dy.pow(2).mean())


# --- stage 1: feature level -------------------------------------------------------------------


def test_feature_scale_range_rate_and_ones_elsewhere():
    n, p = 20000, 0.15
    scale = sample_dense_feature_scale(n, p, DENSE_FEATURE_LOW, DENSE_FEATURE_HIGH, gen(1))
    assert scale.shape == (n,)
    applied = scale != 1.0
    assert abs(applied.float().mean().item() - p) < 0.02  # ~8 standard deviations
    assert scale[applied].min() >= DENSE_FEATURE_LOW
    assert scale[applied].max() < DENSE_FEATURE_HIGH
    assert abs(scale[applied].mean().item() - 0.525) < 0.03  # U[0.05, 1] mean
    assert torch.all(scale[~applied] == 1.0)


def test_feature_scale_p_bounds_and_determinism():
    assert torch.all(sample_dense_feature_scale(500, 0.0, 0.05, 1.0, gen(2)) == 1.0)
    assert torch.all(sample_dense_feature_scale(500, 1.0, 0.05, 1.0, gen(2)) < 1.0)
    a = sample_dense_feature_scale(64, 0.5, 0.05, 1.0, gen(3))
    assert torch.equal(a, sample_dense_feature_scale(64, 0.5, 0.05, 1.0, gen(3)))
    assert not torch.equal(a, sample_dense_feature_scale(64, 0.5, 0.05, 1.0, gen(4)))


# --- stage 1: data level ----------------------------------------------------------------------


def test_scale_fusion_sampling_drops_exactly_one_and_weights_sum_to_one():
    dropped_seen = set()
    for seed in range(200):
        kept, weights = sample_scale_fusion(gen(seed))
        assert len(kept) == len(FUSION_DIVISORS) - 1
        assert set(kept) < set(FUSION_DIVISORS)
        dropped_seen |= set(FUSION_DIVISORS) - set(kept)
        assert weights.shape == (len(kept),)
        assert torch.all(weights > 0)
        assert abs(weights.sum().item() - 1.0) < 1e-6
    assert dropped_seen == set(FUSION_DIVISORS)


def test_resample_clamps_to_one_pixel():
    frames = textured((2, 1, 5, 7))
    out = resample(frames, 32)  # 5 // 32 == 0 -> clamped to 1 px: the frame mean everywhere
    means = frames.mean(dim=(-2, -1), keepdim=True)
    assert torch.allclose(out, means.expand_as(frames), atol=1e-6)
    assert torch.equal(resample(frames, 1), frames)


def test_scale_fusion_keeps_a_constant_and_changes_texture():
    constant = torch.full((3, 1, 64, 48), 0.37)
    texture = textured((3, 1, 64, 48))
    for seed in range(5):
        kept, weights = sample_scale_fusion(gen(seed))
        assert torch.allclose(fuse_scales(constant, kept, weights), constant, atol=1e-6)
        fused = fuse_scales(texture, kept, weights)
        assert (fused - texture).abs().max() > 0.1
        assert hf_energy(fused) < hf_energy(texture)


def test_dropped_scale_is_really_dropped():
    # A 1-px checkerboard averages to exactly 0.5 at every divisor > 1, so the fused result is
    # 0.5 + w_1 * (board - 0.5): flat iff divisor 1 was dropped, else of amplitude w_1.
    board = checkerboard(64, 64).view(1, 1, 64, 64)
    outcomes = set()
    for seed in range(60):
        kept, weights = sample_scale_fusion(gen(seed))
        fused = fuse_scales(board, kept, weights)
        if 1 in kept:
            w1 = weights[kept.index(1)].item()
            assert torch.allclose(fused, 0.5 + w1 * (board - 0.5), atol=1e-5)
            outcomes.add("kept")
        else:
            assert torch.allclose(fused, torch.full_like(board, 0.5), atol=1e-6)
            outcomes.add("dropped")
    assert outcomes == {"kept", "dropped"}


def test_blur_kernel_odd_in_range_and_all_reachable():
    kernels = {sample_blur_kernel(gen(seed)) for seed in range(300)}
    assert kernels == set(BLUR_KERNELS)
    assert all(k % 2 == 1 and 3 <= k <= 15 for k in kernels)


def test_box_blur_keeps_constants_and_cuts_high_frequencies():
    constant = torch.full((2, 1, 9, 11), 0.8)
    texture = textured((2, 1, 32, 32))
    for kernel in BLUR_KERNELS:
        assert torch.allclose(box_blur(constant, kernel), constant, atol=1e-6)
        blurred = box_blur(texture, kernel)
        assert blurred.shape == texture.shape
        assert hf_energy(blurred) < 0.25 * hf_energy(texture)


def test_degrade_dense_video_p_zero_and_one():
    video = textured((4, 1, 3, 32, 32))
    out, applied = degrade_dense_video(video, 0.0, gen(5))
    assert torch.equal(out, video) and not applied.any()
    out, applied = degrade_dense_video(video, 1.0, gen(5))
    assert applied.all() and applied.dtype == torch.bool
    assert out.shape == video.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    for b in range(4):
        assert (out[b] - video[b]).abs().max() > 0.05
    constant = torch.full((4, 1, 3, 16, 16), 0.6)
    out, _ = degrade_dense_video(constant, 1.0, gen(6))
    assert torch.allclose(out, constant, atol=1e-6)


def test_degrade_dense_video_rate_and_untouched_samples():
    video = textured((2000, 1, 1, 8, 8))
    out, applied = degrade_dense_video(video, 0.1, gen(7))
    assert abs(applied.float().mean().item() - 0.1) < 0.035  # ~5 standard deviations
    assert torch.equal(out[~applied], video[~applied])
    assert (out[applied] - video[applied]).abs().amax(dim=(1, 2, 3, 4)).min() > 0


def test_degrade_dense_video_is_deterministic():
    video = textured((6, 1, 2, 16, 16))
    a, mask_a = degrade_dense_video(video, 0.5, gen(8))
    b, mask_b = degrade_dense_video(video, 0.5, gen(8))
    assert torch.equal(a, b) and torch.equal(mask_a, mask_b)


# --- stage 2: severities and colour drift -----------------------------------------------------


def test_severity_probabilities_favour_mild():
    for count in (1, len(GENERATION_STEPS), len(ENCODING_ROUNDS)):
        probs = severity_probabilities(count)
        assert abs(probs.sum().item() - 1.0) < 1e-12
        assert torch.all(probs[1:] < probs[:-1])


def test_sample_severity_empirical_frequencies_decrease():
    g = gen(9)
    draws = [sample_severity(GENERATION_STEPS, g) for _ in range(20000)]
    freqs = torch.tensor([draws.count(t) for t in GENERATION_STEPS], dtype=torch.float64) / 20000
    assert torch.all(freqs[1:] < freqs[:-1])
    assert torch.allclose(freqs, severity_probabilities(len(GENERATION_STEPS)), atol=0.015)


def test_smooth_mask_is_in_unit_range_and_smooth():
    mask = smooth_random_mask(8, 64, 64, gen(10))
    assert mask.shape == (8, 1, 64, 64)
    assert mask.min() >= 0.0 and mask.max() <= 1.0
    assert mask.amax() - mask.amin() > 0.3  # it does vary
    # White U[0,1] noise has squared-difference energy 2 * 1/6; the upsampled field far less.
    assert hf_energy(mask) < 0.01


def test_colour_drift_is_bounded_and_changes_the_image():
    image = 2 * textured((4, 3, 32, 32), seed=11) - 1
    out = colour_drift(image, gen(12))
    assert out.shape == image.shape
    assert out.min() >= -1.0 and out.max() <= 1.0
    mean = image.mean(dim=(-2, -1), keepdim=True)
    bound = 0.2 * ((image - mean).abs() + 0.1) + 1e-6  # strength <= 0.2, offset <= 0.1
    assert torch.all((out - image).abs() <= bound)
    assert (out - image).abs().max() > 0.01
    assert torch.equal(out, colour_drift(image, gen(12)))


def test_colour_drift_tint_is_spatially_smooth():
    # On a flat image the change is strength * mask * offset: its shape is the mask's.
    image = torch.full((4, 3, 64, 64), 0.1)
    change = colour_drift(image, gen(22)) - image
    peak = change.abs().amax(dim=(-2, -1), keepdim=True)
    assert torch.all(peak > 0)
    assert hf_energy(change / peak) < 0.01


# --- stage 2: first-frame degradation ---------------------------------------------------------


class Fakes:
    """Caller callables that record their use and shift the image by a known amount."""

    def __init__(self) -> None:
        self.round_trips = 0
        self.batch_sizes: list[int] = []
        self.steps: list[tuple[int, int]] = []
        self.encodes = 0
        self.decodes = 0

    def encode_decode(self, x: torch.Tensor) -> torch.Tensor:
        self.round_trips += 1
        self.batch_sizes.append(x.shape[0])
        return x + 0.01

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.encodes += 1
        return 2 * x

    def renoise_denoise(self, latent: torch.Tensor, step: int, num_steps: int) -> torch.Tensor:
        self.steps.append((step, num_steps))
        return latent + 0.02 * step

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        self.decodes += 1
        return latent / 2

    def run(self, image: torch.Tensor, p: float, seed: int, **kw):
        return degrade_first_frame(
            image, p, self.encode_decode, self.encode, self.renoise_denoise, self.decode,
            gen(seed), **kw,
        )


def test_first_frame_p_zero_is_identity():
    image = 0.5 * (2 * textured((16, 3, 8, 8)) - 1)
    fakes = Fakes()
    out, kinds = fakes.run(image, 0.0, seed=13)
    assert torch.equal(out, image)
    assert kinds == ["none"] * 16
    assert fakes.round_trips == fakes.encodes == fakes.decodes == 0 and not fakes.steps


def test_first_frame_encoding_branch_calls_round_trip_k_times():
    image = torch.zeros(1, 3, 8, 8)
    seen = set()
    for seed in range(80):
        fakes = Fakes()
        out, kinds = fakes.run(image, 1.0, seed, encoding_share=1.0, drift_p=0.0)
        assert kinds[0].startswith("encoding:")
        k = int(kinds[0].split(":")[1])
        seen.add(k)
        assert fakes.round_trips == k
        assert fakes.encodes == fakes.decodes == 0
        assert torch.allclose(out, torch.full_like(image, 0.01 * k), atol=1e-6)
    assert {0, 1, 2} <= seen and seen <= set(ENCODING_ROUNDS)


def test_first_frame_encoding_batches_samples_still_needing_rounds():
    image = torch.zeros(6, 3, 4, 4)
    fakes = Fakes()
    out, kinds = fakes.run(image, 1.0, seed=14, encoding_share=1.0, drift_p=0.0)
    ks = [int(kind.split(":")[1]) for kind in kinds]
    assert fakes.round_trips == max(ks)
    assert fakes.batch_sizes == [sum(k > r for k in ks) for r in range(max(ks))]
    for b, k in enumerate(ks):
        assert torch.allclose(out[b], torch.full_like(out[b], 0.01 * k), atol=1e-6)


def test_first_frame_generation_branch_uses_sampled_step_and_fakes():
    image = torch.zeros(8, 3, 4, 4)
    fakes = Fakes()
    out, kinds = fakes.run(image, 1.0, seed=15, encoding_share=0.0, drift_p=0.0)
    steps = [int(kind.split(":")[1]) for kind in kinds]
    assert all(kind.startswith("generation:") for kind in kinds)
    assert set(steps) <= set(GENERATION_STEPS)
    assert sorted(fakes.steps) == sorted((t, NUM_SAMPLING_STEPS) for t in set(steps))
    assert fakes.round_trips == 0 and fakes.encodes == fakes.decodes == len(set(steps))
    for b, t in enumerate(steps):  # decode(renoise(encode(0), t)) = 0.01 t
        assert torch.allclose(out[b], torch.full_like(out[b], 0.01 * t), atol=1e-6)


def test_first_frame_rates_kinds_and_drift():
    n = 3000
    image = 0.5 * (2 * textured((n, 3, 4, 4), seed=16) - 1)
    fakes = Fakes()
    out, kinds = fakes.run(image, 0.2, seed=17)
    degraded = [k for k in kinds if k != "none"]
    assert abs(len(degraded) / n - 0.2) < 0.04  # ~5 standard deviations
    encoding = [k for k in degraded if k.startswith("encoding:")]
    assert abs(len(encoding) / len(degraded) - 0.2) < 0.08
    drift = [k for k in degraded if k.endswith("+drift")]
    assert 0.03 < len(drift) / len(degraded) < 0.17
    assert not any(k.startswith("none") and k != "none" for k in kinds)
    untouched = torch.tensor([k == "none" for k in kinds])
    assert torch.equal(out[untouched], image[untouched])
    assert out.min() >= -1.0 and out.max() <= 1.0


def test_first_frame_drift_changes_image_beyond_the_branch():
    image = 0.5 * (2 * textured((1, 3, 16, 16), seed=18) - 1)
    plain, kinds_plain = Fakes().run(image, 1.0, seed=19, encoding_share=1.0, drift_p=0.0)
    drifted, kinds_drift = Fakes().run(image, 1.0, seed=19, encoding_share=1.0, drift_p=1.0)
    assert kinds_drift[0] == kinds_plain[0] + "+drift"
    assert (drifted - plain).abs().max() > 0.005


def test_first_frame_is_deterministic():
    image = 0.5 * (2 * textured((12, 3, 8, 8), seed=20) - 1)
    a, kinds_a = Fakes().run(image, 0.7, seed=21, drift_p=0.5)
    b, kinds_b = Fakes().run(image, 0.7, seed=21, drift_p=0.5)
    assert torch.equal(a, b) and kinds_a == kinds_b


# --- stage 3: the history, degraded as latents ------------------------------------------------


def test_history_degradation_rates_branches_and_round_caps():
    latents = torch.zeros(400, 16, 3, 2, 2)
    rounds, regenerated = [], []

    def round_trip(z):
        rounds.append(z.shape[0])
        return z + 1.0

    def regenerate(z, t, n):
        regenerated.append((t, n))
        return z - t

    out, kinds = degrade_latent_video(latents, 0.5, round_trip, regenerate, gen(3),
                                      encoding_share=0.5, num_steps=50, max_rounds=2)
    degraded = [k for k in kinds if k != "none"]
    assert 150 < len(degraded) < 250  # p = 0.5
    for b, kind in enumerate(kinds):
        branch, _, value = kind.partition(":")
        if branch == "encoding":
            assert int(value) <= 2 and torch.all(out[b] == int(value))
        elif branch == "generation":
            assert int(value) in GENERATION_STEPS and torch.all(out[b] == -int(value))
        else:
            assert torch.all(out[b] == 0)
    assert sum(rounds) == sum(int(k.split(":")[1]) for k in kinds if k.startswith("encoding"))
    assert all(n == 50 for _, n in regenerated)
    again, kinds_again = degrade_latent_video(latents, 0.5, round_trip, regenerate, gen(3),
                                              encoding_share=0.5, num_steps=50, max_rounds=2)
    assert kinds_again == kinds and torch.equal(again, out)

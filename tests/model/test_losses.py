"""Stage-3 losses: the LP/HP split, each term's zero and positive cases, the weighted total,
boundary and early-frame weights, and the weighted flow-matching loss."""

from __future__ import annotations

import pytest
import torch

from longvie.model.losses import (
    BOUNDARY_WEIGHTS,
    boundary_weights,
    causal_latent_frames,
    consistency_loss,
    degradation_loss,
    early_frame_weights,
    ground_truth_loss,
    high_pass,
    low_pass,
    stage3_loss,
    weighted_flow_matching_loss,
)


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_low_pass_of_constant_is_constant_and_high_pass_zero():
    for shape in ((2, 4, 8, 8), (2, 4, 3, 9, 7), (1, 1, 1, 1)):
        x = torch.full(shape, -0.7)
        assert torch.allclose(low_pass(x), x, atol=1e-6)
        assert torch.allclose(high_pass(x), torch.zeros_like(x), atol=1e-6)


def test_low_plus_high_reconstructs_and_filters_per_frame():
    x = rand(2, 4, 3, 16, 12)
    assert torch.allclose(low_pass(x) + high_pass(x), x, atol=1e-6)
    assert low_pass(x).shape == x.shape
    per_frame = torch.stack([low_pass(x[:, :, f]) for f in range(3)], dim=2)
    assert torch.allclose(low_pass(x), per_frame, atol=1e-6)  # no mixing across frames
    # A 1-px checkerboard is pure high frequency: LP flattens it to its mean.
    board = ((torch.arange(8).view(-1, 1) + torch.arange(8).view(1, -1)) % 2).float()
    assert torch.allclose(low_pass(board.view(1, 1, 8, 8)), torch.full((1, 1, 8, 8), 0.5))


@pytest.mark.parametrize("term", [degradation_loss, ground_truth_loss, consistency_loss])
def test_terms_zero_when_inputs_agree(term):
    z = rand(2, 16, 8, 8)
    assert term(z.clone(), z).item() == 0.0


def test_terms_positive_when_inputs_differ():
    z = rand(2, 16, 8, 8)
    # A smooth offset lives in LP, a checkerboard in HP: each term sees the part it measures.
    smooth = z + 0.5
    board = ((torch.arange(8).view(-1, 1) + torch.arange(8).view(1, -1)) % 2).float()
    sharp = z + 0.5 * board
    assert degradation_loss(smooth, z).item() > 0.2
    assert ground_truth_loss(sharp, z).item() > 0.01
    assert consistency_loss(smooth, z).item() == pytest.approx(0.25, rel=1e-5)
    # And each ignores the other band: L_deg is blind to HP-only, L_gt to a constant shift.
    assert ground_truth_loss(smooth, z).item() < 1e-10
    assert degradation_loss(z + 0.5 * (board - 0.5), z).item() < 1e-10


def test_terms_are_mean_squared_errors_and_reject_mismatches():
    a, b = rand(2, 4, 6, 6, seed=1), rand(2, 4, 6, 6, seed=2)
    assert consistency_loss(a, b).item() == pytest.approx(((a - b) ** 2).mean().item(), rel=1e-6)
    with pytest.raises(ValueError):
        consistency_loss(a, b[:1])


def test_stage3_total_is_weighted_sum_and_only_prediction_gets_gradients():
    pred = rand(2, 16, 8, 8, seed=3).requires_grad_()
    degraded = rand(2, 16, 8, 8, seed=4).requires_grad_()
    gt, hist = rand(2, 16, 8, 8, seed=5), rand(2, 16, 8, 8, seed=6)
    diff = torch.tensor(0.8)
    out = stage3_loss(diff, pred, degraded, gt, hist)
    assert set(out) == {"diff", "deg", "gt", "cons", "total"}
    expected = out["diff"] + 0.2 * out["deg"] + 0.15 * out["gt"] + 0.5 * out["cons"]
    assert out["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert all(out[k].item() > 0 for k in ("deg", "gt", "cons"))
    custom = stage3_loss(diff, pred, degraded, gt, hist, w_deg=1.0, w_gt=0.0, w_cons=2.0)
    manual = out["diff"] + out["deg"] + 2.0 * out["cons"]
    assert custom["total"].item() == pytest.approx(manual.item(), rel=1e-6)
    out["total"].backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    assert degraded.grad is None


def test_stage3_zero_extras_when_all_references_equal_prediction():
    pred = rand(1, 4, 6, 6, seed=7)
    out = stage3_loss(torch.tensor(0.3), pred, pred.clone(), pred.clone(), pred.clone())
    assert out["deg"].item() == out["gt"].item() == out["cons"].item() == 0.0
    assert out["total"].item() == pytest.approx(0.3)


def test_boundary_weights_values_and_short_lengths():
    assert boundary_weights(6).tolist() == pytest.approx([0.05, 0.325, 0.757, 1.0, 1.0, 1.0])
    assert boundary_weights(3).tolist() == pytest.approx(list(BOUNDARY_WEIGHTS))
    assert boundary_weights(2).tolist() == pytest.approx([0.05, 0.325])
    assert boundary_weights(1).tolist() == pytest.approx([0.05])
    with pytest.raises(ValueError):
        boundary_weights(0)


def test_early_frame_weights_follow_loong():
    assert causal_latent_frames(17) == 5 and causal_latent_frames(65) == 17
    assert causal_latent_frames(1) == 1
    assert early_frame_weights(17).tolist() == [2.0] * 5 + [1.0] * 12
    assert early_frame_weights(4, lam=0.5).tolist() == [1.5] * 4
    assert early_frame_weights(6, lam=1.0, num_early=1).tolist() == [2.0] + [1.0] * 5
    assert early_frame_weights(6, lam=0.0).tolist() == [1.0] * 6
    with pytest.raises(ValueError):
        early_frame_weights(6, lam=-0.1)


def test_weighted_flow_matching_loss_normalisation_and_weighting():
    pred, target = rand(2, 4, 5, 6, 6, seed=8), rand(2, 4, 5, 6, 6, seed=9)
    plain = ((pred - target) ** 2).mean()
    uniform = weighted_flow_matching_loss(pred, target, torch.full((5,), 3.0))
    assert uniform.item() == pytest.approx(plain.item(), rel=1e-6)
    # Error only in frame 0: its weight's share of the total weight scales the loss.
    target0 = pred.clone()
    target0[:, :, 0] += 1.0
    w = boundary_weights(5)
    loss = weighted_flow_matching_loss(pred, target0, w)
    assert loss.item() == pytest.approx((0.05 / w.sum()).item(), rel=1e-5)
    per_sample = torch.stack([w, torch.ones(5)])
    loss_b = weighted_flow_matching_loss(pred, target0, per_sample)
    expected = (0.05 + 1.0) / per_sample.sum()
    assert loss_b.item() == pytest.approx(expected.item(), rel=1e-5)
    assert weighted_flow_matching_loss(pred, pred.clone(), w).item() == 0.0
    with pytest.raises(ValueError):
        weighted_flow_matching_loss(pred, target, torch.ones(4))
    with pytest.raises(ValueError):
        weighted_flow_matching_loss(pred, target, torch.zeros(5))

"""Tests of ``CenterNetFocalLoss`` and ``CenterNetRegL1Loss`` against their
formulas written out element by element on small hand-made tensors."""
import math

import pytest
import torch

import mmkp_ext  # noqa: F401  (registration)
from mmkp_ext.models.losses import CenterNetFocalLoss, CenterNetRegL1Loss
from mmpose.registry import MODELS


def focal_reference(logits, gt, channel_mask=None):
    """The spec's focal loss, one pixel at a time, in float64.

    p = clamp(sigmoid(x), 1e-4, 1 - 1e-4);
    pos (gt == 1): log(p) (1-p)^2;  neg (gt < 1): log(1-p) p^2 (1-gt)^4;
    loss = -(pos + neg) / num_pos, or -neg when num_pos == 0; channels with
    channel_mask[b, c] == 0 are skipped entirely.
    """
    B, C, H, W = logits.shape
    pos_sum = neg_sum = 0.0
    num_pos = 0
    for b in range(B):
        for c in range(C):
            if channel_mask is not None and not channel_mask[b][c]:
                continue
            for i in range(H):
                for j in range(W):
                    x = float(logits[b, c, i, j])
                    g = float(gt[b, c, i, j])
                    p = 1.0 / (1.0 + math.exp(-x))
                    p = min(max(p, 1e-4), 1 - 1e-4)
                    if g == 1.0:
                        pos_sum += math.log(p) * (1 - p)**2
                        num_pos += 1
                    elif g < 1.0:
                        neg_sum += math.log(1 - p) * p**2 * (1 - g)**4
    if num_pos == 0:
        return -neg_sum
    return -(pos_sum + neg_sum) / num_pos


def make_case(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64) * 3
    gt = torch.rand(2, 3, 4, 5, generator=g, dtype=torch.float64) * 0.9
    gt[0, 0, 1, 2] = 1.0
    gt[0, 2, 3, 4] = 1.0
    gt[1, 1, 0, 0] = 1.0
    gt[1, 2, 2, 2] = 1.0
    return logits, gt


def test_focal_matches_formula():
    logits, gt = make_case()
    loss = CenterNetFocalLoss()(logits, gt)
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(focal_reference(logits, gt), rel=1e-10)


def test_focal_clamps_like_the_spec():
    # Logits far beyond logit(1 - 1e-4) = 9.21 behave as p = 1 - 1e-4.
    logits, gt = make_case(1)
    logits[0, 0, 1, 2] = -40.0  # a positive, badly missed
    logits[1, 0, 3, 3] = 50.0  # a negative, badly hit
    loss = CenterNetFocalLoss()(logits, gt)
    assert torch.isfinite(loss)
    assert loss.item() == pytest.approx(focal_reference(logits, gt), rel=1e-10)


def test_focal_without_positives_is_minus_neg_sum():
    logits, gt = make_case(2)
    gt = gt.clamp(max=0.95)
    ref = focal_reference(logits, gt)
    loss = CenterNetFocalLoss(loss_weight=0.5)(logits, gt)
    assert loss.item() == pytest.approx(0.5 * ref, rel=1e-10)


def test_masked_focal_matches_formula_and_counts_unmasked_positives():
    logits, gt = make_case(3)
    mask = torch.tensor([[1, 0, 1], [0, 1, 0]], dtype=torch.bool)
    loss = CenterNetFocalLoss()(logits, gt, mask)
    # Positives at (0,0), (0,2), (1,1) count; (1,2) is masked out: 3 not 4.
    assert loss.item() == pytest.approx(
        focal_reference(logits, gt, mask.tolist()), rel=1e-10)
    assert loss.item() != pytest.approx(focal_reference(logits, gt), rel=1e-3)


def test_masked_focal_ignores_masked_channels_exactly():
    logits, gt = make_case(4)
    mask = torch.tensor([[1, 0, 1], [0, 1, 1]])
    loss = CenterNetFocalLoss()(logits, gt, mask)
    logits2, gt2 = logits.clone(), gt.clone()
    logits2[0, 1] = torch.randn(4, 5, dtype=torch.float64) * 10
    gt2[0, 1] = 1.0
    logits2[1, 0] = 25.0
    gt2[1, 0, 2, 2] = 1.0
    loss2 = CenterNetFocalLoss()(logits2, gt2, mask)
    assert loss2.item() == loss.item()
    # ... while an unmasked channel does change it.
    logits2[1, 1, 0, 1] += 1.0
    assert CenterNetFocalLoss()(logits2, gt2, mask).item() != loss.item()


def test_focal_gradient_is_finite_and_registry_builds():
    loss_fn = MODELS.build(dict(type='CenterNetFocalLoss', loss_weight=2.0))
    logits, gt = make_case(5)
    logits = logits.float().requires_grad_()
    loss = loss_fn(logits, gt.float())
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    assert loss.item() == pytest.approx(
        2.0 * focal_reference(logits.detach(), gt), rel=1e-5)


def test_focal_bad_shapes():
    with pytest.raises(ValueError, match='same'):
        CenterNetFocalLoss()(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4))
    with pytest.raises(ValueError, match='channel_mask'):
        CenterNetFocalLoss()(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3),
                             torch.ones(1, 3))


def test_reg_l1_formula():
    pred = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
    gt = torch.tensor([[0.0, 2.5], [1.0, 1.0], [9.0, float('nan')]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    # |1-0| + |2-2.5| + |3-1| = 3.5 over mask sum 3 (+1e-4)
    expected = 3.5 / (3 + 1e-4)
    loss = CenterNetRegL1Loss()(pred, gt, mask)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    built = MODELS.build(dict(type='CenterNetRegL1Loss', loss_weight=0.1))
    assert built(pred, gt, mask).item() == pytest.approx(
        0.1 * expected, rel=1e-6)


def test_reg_l1_broadcast_mask_and_empty():
    pred = torch.tensor([[1.0, 2.0], [3.0, 5.0]], requires_grad=True)
    gt = torch.zeros(2, 2)
    mask = torch.tensor([[1.0], [0.0]])  # broadcast over the coordinates
    loss = CenterNetRegL1Loss()(pred, gt, mask)
    assert loss.item() == pytest.approx(3.0 / (2 + 1e-4), rel=1e-6)
    loss.backward()
    assert pred.grad[1].abs().sum() == 0
    empty = CenterNetRegL1Loss()(torch.zeros(0, 2), torch.zeros(0, 2),
                                 torch.zeros(0, 2))
    assert empty.item() == 0.0

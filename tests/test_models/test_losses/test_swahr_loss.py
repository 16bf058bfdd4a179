"""SWAHRLoss against the spec's formulas written out here (numpy), a
hand-worked pixel, its limits, masking and gradients."""
import math

import numpy as np
import pytest
import torch

from mmkp_ext.models.losses import SWAHRLoss


def _numpy_swahr(pred, gt, scale, mask, gamma, sa=True, wa=True):
    """The spec's formulas, element by element in float64."""
    pred, gt, scale, mask = (np.asarray(t, np.float64)
                             for t in (pred, gt, scale, mask))
    a = scale * (gt > 0)
    d = np.zeros_like(gt)
    d[gt > 0] = np.log(gt[gt > 0])
    target = gt + gt * d * a + 0.5 * gt * d**2 * a**2 if sa else gt
    g = gt**gamma
    w = np.abs(1 - pred) * g + np.abs(pred) * (1 - g) if wa else 1.0
    m = mask[:, None]
    per_img_hm = ((pred - target)**2 * w * m).mean(axis=(1, 2, 3))
    per_img_sc = (a**2 * m).mean(axis=(1, 2, 3))
    return per_img_hm.mean(), per_img_sc.mean()


def _hand_tensors(seed=0):
    rng = np.random.default_rng(seed)
    B, K, H, W = 2, 3, 4, 5
    gt = rng.uniform(0, 1, (B, K, H, W))
    gt[gt < 0.4] = 0.0  # background pixels
    pred = rng.uniform(-0.3, 1.2, (B, K, H, W))
    scale = rng.normal(0, 0.5, (B, K, H, W))
    mask = (rng.uniform(0, 1, (B, H, W)) > 0.3).astype(np.float64)
    return pred, gt, scale, mask


def _t(*arrays):
    return [torch.tensor(a, dtype=torch.float64) for a in arrays]


@pytest.mark.parametrize('sa,wa', [(True, True), (True, False),
                                   (False, True), (False, False)])
def test_matches_formula(sa, wa):
    pred, gt, scale, mask = _hand_tensors()
    loss = SWAHRLoss(
        loss_weight=2.0,
        scale_loss_weight=0.5,
        gamma=0.01,
        scale_adaptive=sa,
        weight_adaptive=wa)
    out = loss(*_t(pred, gt, scale, mask))
    hm, sc = _numpy_swahr(pred, gt, scale, mask, 0.01, sa, wa)
    assert out['loss_heatmap'].item() == pytest.approx(2.0 * hm, rel=1e-12)
    assert out['loss_scale'].item() == pytest.approx(0.5 * sc, rel=1e-12)


def test_hand_worked_pixel():
    # H = e^-1 (d = -1), a = 0.5: H_s = H (1 - 0.5 + 0.125) = 0.625 / e.
    # P = 0.2, gamma = 1: W = 0.8 / e + 0.2 (1 - 1 / e).
    e = math.e
    pred = torch.tensor([[[[0.2]]]], dtype=torch.float64)
    gt = torch.full_like(pred, 1 / e)
    scale = torch.full_like(pred, 0.5)
    mask = torch.ones(1, 1, 1, dtype=torch.float64)
    out = SWAHRLoss(gamma=1.0)(pred, gt, scale, mask)
    w = 0.8 / e + 0.2 * (1 - 1 / e)
    assert out['loss_heatmap'].item() == pytest.approx(
        (0.2 - 0.625 / e)**2 * w, rel=1e-12)
    assert out['loss_scale'].item() == pytest.approx(0.25, rel=1e-12)
    # scale is ignored where gt == 0 (it is multiplied by gt > 0)
    out0 = SWAHRLoss(gamma=1.0)(pred, torch.zeros_like(gt), scale, mask)
    assert out0['loss_scale'].item() == 0.0
    assert out0['loss_heatmap'].item() == pytest.approx(0.2**2 * 0.2)


def test_limits_zero_scale():
    pred, gt, _, mask = _hand_tensors(1)
    zero = np.zeros_like(pred)
    P, G, S, M = _t(pred, gt, zero, mask)
    # HigherHRNet's plain HeatmapLoss: mean_(K,H,W) (P - H)^2 M, mean_B.
    plain = (((pred - gt)**2) * mask[:, None]).mean(axis=(1, 2, 3)).mean()
    off = SWAHRLoss(weight_adaptive=False)(P, G, S, M)
    assert off['loss_heatmap'].item() == pytest.approx(plain, rel=1e-12)
    assert off['loss_scale'].item() == 0.0
    # zero scale: the scale-adaptive target IS the gt
    sa_only = SWAHRLoss(weight_adaptive=False, scale_adaptive=True)
    assert sa_only(P, G, S, M)['loss_heatmap'].item() == pytest.approx(
        plain, rel=1e-12)
    # gamma -> 0 does not give plain MSE: the weight tends to |1 - P| on
    # gt > 0 and |P| on gt = 0 (the phrasing assumed otherwise;
    # plain MSE is weight_adaptive=False above).
    tiny = SWAHRLoss(gamma=1e-9)(P, G, S, M)['loss_heatmap'].item()
    w0 = np.where(gt > 0, np.abs(1 - pred), np.abs(pred))
    limit = (((pred - gt)**2) * w0 * mask[:, None]).mean()
    assert tiny == pytest.approx(limit, rel=1e-6)
    assert abs(tiny - plain) > 1e-3


def test_masked_pixels_contribute_nothing():
    pred, gt, scale, mask = _hand_tensors(2)
    P, G, S, M = _t(pred, gt, scale, mask)
    for t in (P, S):
        t.requires_grad_(True)
    out = SWAHRLoss()(P, G, S, M)
    (out['loss_heatmap'] + out['loss_scale']).backward()
    ignored = (M == 0)[:, None].expand_as(P)
    assert ignored.any()
    assert torch.all(P.grad[ignored] == 0) and torch.all(S.grad[ignored] == 0)
    # garbage at ignored pixels changes nothing
    P2, G2, S2 = (t.detach().clone() for t in (P, G, S))
    P2[ignored] = 1e3
    S2[ignored] = 1e6
    G2[ignored] = 0.7
    out2 = SWAHRLoss()(P2, G2, S2, M)
    for key in out:
        assert out2[key].item() == pytest.approx(out[key].item(), rel=1e-12)


def test_weight_not_detached():
    """Autograd gradient wrt pred equals the analytic one that includes
    the derivative of the adaptive weight."""
    pred, gt, scale, mask = _hand_tensors(3)
    P, G, S, M = _t(pred, gt, scale, mask)
    P.requires_grad_(True)
    SWAHRLoss(scale_adaptive=False)(P, G, S, M)['loss_heatmap'].backward()
    g = gt**0.01
    w = np.abs(1 - pred) * g + np.abs(pred) * (1 - g)
    dw = -np.sign(1 - pred) * g + np.sign(pred) * (1 - g)
    m = mask[:, None]
    analytic = (2 * (pred - gt) * w + (pred - gt)**2 * dw) * m / pred.size
    np.testing.assert_allclose(P.grad.numpy(), analytic, rtol=1e-10,
                               atol=1e-15)
    # and the weight term matters (a detached weight gives another grad)
    assert np.abs((pred - gt)**2 * dw * m).max() > 1e-3


def test_gradient_reaches_scale_only_on_foreground():
    pred, gt, scale, mask = _hand_tensors(4)
    P, G, S, M = _t(pred, gt, scale * 0, mask)
    S.requires_grad_(True)
    SWAHRLoss()(P, G, S, M)['loss_heatmap'].backward()
    fg = (G > 0) & (M > 0)[:, None]
    assert torch.all(S.grad[~fg] == 0)
    # at alpha = 0: d loss / d alpha = -2 (P - H) W M H log(H) / n
    g = gt**0.01
    w = np.abs(1 - pred) * g + np.abs(pred) * (1 - g)
    logh = np.log(np.where(gt > 0, gt, 1))
    expected = -2 * (pred - gt) * w * mask[:, None] * gt * logh / pred.size
    np.testing.assert_allclose(S.grad.numpy(), expected, rtol=1e-10,
                               atol=1e-15)


def test_bad_inputs():
    P = torch.zeros(2, 3, 4, 5)
    M = torch.ones(2, 4, 5)
    with pytest.raises(ValueError, match='gamma must be > 0'):
        SWAHRLoss(gamma=0)
    with pytest.raises(ValueError, match='scale_loss_weight'):
        SWAHRLoss(scale_loss_weight=-1)
    loss = SWAHRLoss()
    with pytest.raises(ValueError, match='pred and gt'):
        loss(P, torch.zeros(2, 3, 4, 4), P, M)
    with pytest.raises(ValueError, match='scale has shape'):
        loss(P, P, torch.zeros(2, 3, 2, 2), M)
    with pytest.raises(ValueError, match='mask has shape'):
        loss(P, P, P, torch.ones(2, 1, 4, 5))
    with pytest.raises(ValueError, match='needs the scale map'):
        loss(P, P, None, M)
    out = SWAHRLoss(scale_adaptive=False)(P, P, None, M)
    assert set(out) == {'loss_heatmap'}

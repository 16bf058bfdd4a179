"""Tests of ``PoseurRLELoss``: the flow's density against the change of
variables computed here (generative pass + autograd Jacobian), the loss
against Poseur's formula written out on hand values, numerical safety
(tiny sigma, zero weights, NaN targets, bf16/fp16) and argument errors."""
import math

import pytest
import torch

from mmkp_ext.models.losses import PoseurRLELoss
from mmpose.registry import MODELS


def random_flow_loss(seed=0, scale=0.5):
    """A loss whose flow nets all have random weights (a non-trivial
    density), in float64."""
    loss = PoseurRLELoss().double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in loss.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return loss


def generative(flow, z):
    """x = g(z) for one sample z (2,): couplings in order, coupling i with
    mask m: x = m z + (1-m) (z exp(s_i(m z)) + t_i(m z))."""
    x = z
    for i in range(len(flow.s)):
        m = flow.mask[i]
        s = flow.s[i](x * m) * (1 - m)
        t = flow.t[i](x * m) * (1 - m)
        x = x * m + (1 - m) * (x * torch.exp(s) + t)
    return x


def test_flow_log_prob_is_change_of_variables():
    """log p(x) = log N(z; 0.5, I) - log|det dg/dz| at x = g(z)."""
    flow = random_flow_loss(seed=1).flow
    zs = torch.randn(6, 2, dtype=torch.float64)
    xs, expect = [], []
    for z in zs:
        x = generative(flow, z)
        jac = torch.autograd.functional.jacobian(
            lambda v: generative(flow, v), z)
        log_n = -math.log(2 * math.pi) - 0.5 * float(((z - 0.5)**2).sum())
        expect.append(log_n - math.log(abs(float(torch.det(jac)))))
        xs.append(x.detach())
    got = flow.log_prob(torch.stack(xs))
    torch.testing.assert_close(got, torch.tensor(expect, dtype=torch.float64),
                               atol=1e-9, rtol=1e-9)
    # Invertible: inverse(g(z)) == z.
    z_back, _ = flow.inverse(torch.stack(xs))
    torch.testing.assert_close(z_back, zs, atol=1e-9, rtol=1e-9)


def test_loss_hand_values_identity_flow():
    """Final layers of s and t zero -> the flow is the identity and
    log_phi is the N((0.5, 0.5), I) log density; loss by hand."""
    loss = PoseurRLELoss()
    with torch.no_grad():
        for nets in (loss.flow.s, loss.flow.t):
            for net in nets:
                net[4].weight.zero_()
                net[4].bias.zero_()
    pred = torch.tensor([[[0.5, 0.4], [0.2, 0.9]], [[0.1, 0.1],
                                                    [0.7, 0.3]]])
    sigma = torch.tensor([[[0.1, 0.2], [0.05, 0.5]], [[0.3, 0.3],
                                                      [0.01, 0.02]]])
    target = torch.tensor([[[0.45, 0.5], [0.25, 0.8]],
                           [[float('nan'), 0.0], [0.72, 0.29]]])
    weight = torch.tensor([[1.0, 0.5], [0.0, 1.0]])
    total = 0.0
    for b in range(2):
        for k in range(2):
            w = float(weight[b, k])
            if w == 0:
                continue
            mu, s, y = pred[b, k].tolist(), sigma[b, k].tolist(), \
                target[b, k].tolist()
            bar = [(mu[i] - y[i]) / s[i] for i in range(2)]
            log_phi = -math.log(2 * math.pi) - 0.5 * sum(
                (v - 0.5)**2 for v in bar)
            for i in range(2):
                nf = math.log(s[i]) - log_phi
                log_q = math.log(s[i] * math.sqrt(2 * math.pi)) + abs(
                    y[i] - mu[i]) / (math.sqrt(2) * s[i] + 1e-9)
                total += nf * w + log_q * w
    expect = total / 2  # divided by the batch size only
    got = loss(pred, sigma, target, weight)
    assert got.dtype == torch.float32
    assert abs(float(got.detach()) - expect) < 1e-4 * max(1.0, abs(expect))
    # The later release divides by batch x predictions (2 x 2).
    loss.normalize = 'batch_queries'
    got_q = float(loss(pred, sigma, target, weight).detach())
    assert abs(got_q - total / 4) < 1e-4 * max(1.0, abs(total / 4))
    loss.normalize = 'batch'
    # loss_weight scales it.
    loss.loss_weight = 2.5
    scaled = float(loss(pred, sigma, target, weight).detach())
    assert abs(scaled - 2.5 * expect) < 1e-4 * max(1.0, abs(expect))


def test_loss_matches_formula_random_flow():
    """Random flow and inputs: the vectorised formula with the flow's
    (separately verified) log_prob, float64."""
    loss = random_flow_loss(seed=2)
    g = torch.Generator().manual_seed(0)
    B, K = 3, 4
    pred = torch.rand(B, K, 2, generator=g, dtype=torch.float64)
    target = torch.rand(B, K, 2, generator=g, dtype=torch.float64)
    sigma = torch.rand(B, K, 2, generator=g, dtype=torch.float64) * 0.5 + .01
    weight = (torch.rand(B, K, generator=g) > 0.3).double()
    log_phi = loss.flow.log_prob((pred - target) / sigma)  # (B, K)
    nf = torch.log(sigma) - log_phi[..., None]
    log_q = torch.log(sigma / (1 / math.sqrt(2 * math.pi))) + (
        target - pred).abs() / (math.sqrt(2) * sigma + 1e-9)
    expect = ((nf + log_q) * weight[..., None]).sum() / B
    got = loss(pred, sigma, target, weight)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expect, atol=1e-9, rtol=1e-9)
    # Not divided by the number of (visible) keypoints: doubling K doubles
    # the loss.
    got2 = loss(pred.repeat(1, 2, 1), sigma.repeat(1, 2, 1),
                target.repeat(1, 2, 1), weight.repeat(1, 2))
    torch.testing.assert_close(got2, 2 * expect, atol=1e-9, rtol=1e-9)
    # normalize='batch_queries' (the authors' code from February 2023 on)
    # divides by B * K instead: doubling K leaves it unchanged.
    loss.normalize = 'batch_queries'
    got_q = loss(pred, sigma, target, weight)
    torch.testing.assert_close(got_q, expect * B / (B * K), atol=1e-9,
                               rtol=1e-9)
    got_q2 = loss(pred.repeat(1, 2, 1), sigma.repeat(1, 2, 1),
                  target.repeat(1, 2, 1), weight.repeat(1, 2))
    torch.testing.assert_close(got_q2, got_q, atol=1e-9, rtol=1e-9)
    with pytest.raises(ValueError, match='normalize'):
        PoseurRLELoss(normalize='keypoints')


def test_numerical_safety():
    loss = PoseurRLELoss()
    g = torch.Generator().manual_seed(3)
    B, K = 2, 5
    pred = torch.rand(B, K, 2, generator=g).requires_grad_()
    target = torch.rand(B, K, 2, generator=g)
    # sigma down to 1e-9 (and an underflowed 0, clamped to 1e-9).
    for value in (1e-9, 0.0):
        sigma = torch.full((B, K, 2), value).requires_grad_()
        out = loss(pred, sigma, target, torch.ones(B, K))
        out.backward()
        assert torch.isfinite(out)
        assert torch.isfinite(pred.grad).all()
        assert torch.isfinite(sigma.grad).all()
        pred.grad = None
    # All-zero weights, NaN/inf targets where ignored: exactly 0, finite
    # zero gradients.
    sigma = torch.full((B, K, 2), 0.1).requires_grad_()
    bad_target = target.clone()
    bad_target[0, 0] = float('nan')
    bad_target[1, 2, 0] = float('inf')
    out = loss(pred, sigma, bad_target, torch.zeros(B, K))
    out.backward()
    assert float(out.detach()) == 0.0
    assert torch.all(pred.grad == 0) and torch.all(sigma.grad == 0)
    w = torch.ones(B, K)
    w[0, 0] = w[1, 2] = 0
    assert torch.isfinite(loss(pred, sigma, bad_target, w))


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_half_precision(dtype):
    """Predictions from a layer under CPU autocast (bf16), and fp16/bf16
    input tensors: the loss runs in float32, finite, close to fp32."""
    loss = PoseurRLELoss()
    g = torch.Generator().manual_seed(4)
    B, K = 2, 3
    feats = torch.randn(B, K, 8, generator=g)
    lin = torch.nn.Linear(8, 4)
    target = torch.rand(B, K, 2, generator=g)
    w = torch.ones(B, K)

    def predict():
        out = lin(feats)
        return out[..., :2], torch.sigmoid(out[..., 2:]) * 0.1 + 1e-9

    pred32, sigma32 = predict()
    ref = loss(pred32, sigma32, target, w)
    if dtype is torch.bfloat16:
        with torch.autocast('cpu', dtype=torch.bfloat16):
            pred, sigma = predict()
            assert pred.dtype == torch.bfloat16
            out = loss(pred, sigma, target, w)
        out.backward()
        assert torch.isfinite(lin.weight.grad).all()
    else:
        out = loss(pred32.half(), sigma32.half(), target.half(), w.half())
    assert out.dtype == torch.float32 and torch.isfinite(out)
    out, ref = float(out.detach()), float(ref.detach())
    assert abs(out - ref) < 0.05 * abs(ref) + 0.05
    # Tiny sigma in half precision.
    tiny = torch.full((B, K, 2), 1e-9).to(dtype)
    assert torch.isfinite(loss(pred32.to(dtype), tiny, target.to(dtype),
                               w.to(dtype)))


def test_state_dict_layout_and_registry():
    loss = MODELS.build(dict(type='PoseurRLELoss'))
    assert isinstance(loss, PoseurRLELoss)
    sd = loss.state_dict()
    expect = {'flow.mask'}
    for net in ('s', 't'):
        for i in range(6):
            for j in (0, 2, 4):
                expect |= {f'flow.{net}.{i}.{j}.weight',
                           f'flow.{net}.{i}.{j}.bias'}
    assert set(sd) == expect  # official enc_flow.* / dec_flow.* layout
    assert sd['flow.mask'].tolist() == [[0, 1], [1, 0]] * 3
    assert sd['flow.s.0.0.weight'].shape == (64, 2)
    assert sd['flow.s.0.2.weight'].shape == (64, 64)
    assert sd['flow.t.5.4.weight'].shape == (2, 64)
    assert isinstance(loss.flow.s[0][5], torch.nn.Tanh)
    assert len(loss.flow.t[0]) == 5  # no Tanh
    # Prior: buffers outside the state dict.
    assert loss.flow.prior_loc.tolist() == [0.5, 0.5]
    assert loss.flow.prior_scale.tolist() == [1.0, 1.0]


def test_shape_errors():
    loss = PoseurRLELoss()
    p = torch.rand(2, 3, 2)
    w = torch.ones(2, 3)
    with pytest.raises(ValueError, match='pred must have shape'):
        loss(p[..., :1], p[..., :1], p[..., :1], w)
    with pytest.raises(ValueError, match='sigma must have the shape'):
        loss(p, p[:, :2], p, w)
    with pytest.raises(ValueError, match='target must have the shape'):
        loss(p, p, p[:1], w)
    with pytest.raises(ValueError, match=r'target_weight must have shape'):
        loss(p, p, p, w[..., None])
    with pytest.raises(ValueError, match='sigma_min'):
        PoseurRLELoss(sigma_min=0)

"""Tests of Poseur's head (``PoseurHead``): encodings, noisy reference
points, group isolation, Laplace scores, flip fusion, losses, EMSDA/MSDA
option, argument checks. Tiny shapes: 5 keypoints, width 32, 4 heads."""
import math

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData
from scipy import stats

import mmkp_ext  # noqa: F401  (registration)
from mmkp_ext.models.heads.poseur_head import (PoseurHead,
                                               fuse_flip_predictions,
                                               inverse_sigmoid,
                                               laplace_keypoint_scores,
                                               sine_map_encoding,
                                               sine_point_encoding)
from mmpose.structures import PoseDataSample

K = 5
FLIP = [0, 2, 1, 4, 3]
C = 32
INPUT = (24, 32)  # (w, h)
SHAPES = [(8, 6), (4, 3)]  # (H, W) per level


def make_head(**kw):
    cfg = dict(
        num_joints=K, in_channels=C, num_feature_levels=len(SHAPES),
        num_decoder_layers=2, num_heads=4, num_points=2,
        feedforward_channels=64,
        decoder=dict(type='RegressionLabel', input_size=INPUT))
    cfg.update(kw)
    head = PoseurHead(**cfg)
    head.init_weights()
    return head


def make_feats(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, C, h, w, generator=g) for h, w in SHAPES]


def samples(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(batch):
        s = PoseDataSample()
        s.set_metainfo(dict(flip_indices=FLIP, input_size=INPUT))
        w = (torch.rand(1, K, generator=g) > 0.3).float()
        s.gt_instance_labels = InstanceData(
            keypoint_labels=torch.rand(1, K, 2, generator=g),
            keypoint_weights=w)
        out.append(s)
    return out


def test_sine_encodings_written_out():
    pts = torch.tensor([[0.3, -0.2]])
    pe = sine_point_encoding(pts, num_feats=8, temperature=100.0)[0]
    expect = []
    for v in (0.3, -0.2):  # x features, then y features
        for i in range(8):
            t = 100.0**(2 * (i // 2) / 8)
            a = v * 2 * math.pi / t
            expect.append(math.sin(a) if i % 2 == 0 else math.cos(a))
    np.testing.assert_allclose(pe.numpy(), expect, atol=1e-6)

    H, W = 3, 2
    pos = sine_map_encoding(H, W, num_feats=4, temperature=10.0)
    assert pos.shape == (8, H, W)
    for i in range(H):
        for j in range(W):
            expect = []
            # y first, then x (mmcv's SinePositionalEncoding, offset -0.5)
            for v, n in (((i + 0.5) / H, H), ((j + 0.5) / W, W)):
                for f in range(4):
                    a = v * 2 * math.pi / 10.0**(2 * (f // 2) / 4)
                    expect.append(math.sin(a) if f % 2 == 0 else math.cos(a))
            np.testing.assert_allclose(pos[:, i, j].numpy(), expect,
                                       atol=1e-5)


def test_inverse_sigmoid_clamps():
    x = torch.tensor([-0.5, 0.0, 0.25, 1.0, 1.5])
    y = inverse_sigmoid(x)
    assert torch.isfinite(y).all()
    np.testing.assert_allclose(
        y.numpy(), [
            math.log(1e-5), math.log(1e-5),
            math.log(0.25 / 0.75), -math.log(1e-5), -math.log(1e-5)
        ], rtol=1e-5)


def test_noisy_reference_statistics():
    head = make_head(num_joints=17, num_noise_groups=3, num_noise_points=4,
                     noise_variance=0.2, noise_sampling='per_group')
    B = 4000
    coarse = torch.full((B, 17, 2), 0.5)
    coarse[:, 16] = torch.tensor([1.5, -0.6])  # near the position clips
    coarse[:, 15] = torch.tensor([2.5, -1.0])  # outside them
    torch.manual_seed(0)
    refs = head.noisy_references(coarse).reshape(B, 3, 17, 2)
    moved = (refs != coarse[:, None]).any(-1)  # (B, 3, 17)
    # 4 keypoints per group move, the same ones for the whole batch
    # (a sample whose noise is exactly 0 does not exist in float32).
    assert torch.equal(moved, moved[:1].expand_as(moved))
    assert (moved[0].sum(-1) == 4).all()
    # Untouched keypoints are exact copies, even outside [-0.7, 1.7].
    assert torch.equal(refs[~moved], coarse[:, None].expand_as(refs)[~moved])
    # Moved positions within [-0.7, 1.7], noise within [-1, 1].
    d = (refs - coarse[:, None])[moved]
    assert refs[moved].min() >= -0.7 and refs[moved].max() <= 1.7
    assert d.abs().max() <= 1.0 + 1e-6
    # Noise of the keypoints at 0.5 (no position clip reachable): variance
    # of N(0, 0.2) clipped to [-1, 1], written out with scipy.
    mid = moved.clone()
    mid[..., 15:] = False
    noise = (refs - coarse[:, None])[mid].flatten().double().numpy()
    s = math.sqrt(0.2)
    z = 1.0 / s
    tail = stats.norm.sf(z)
    clipped_var = (0.2 * (1 - 2 * tail - 2 * z * stats.norm.pdf(z)) +
                   2 * tail * 1.0)
    assert noise.size > 2000
    assert abs(noise.mean()) < 0.03
    assert noise.var() == pytest.approx(clipped_var, rel=0.08)
    # Some noise hits the +-1 clip (P = 2.5 % per coordinate).
    assert 0.01 < np.mean(np.abs(noise) == 1.0) < 0.05
    # Keypoints at 1.5: moved x often clipped at 1.7 (P(noise > 0.2) ~ 0.33).
    for g in range(3):
        if moved[0, g, 16]:
            x = refs[:, g, 16, 0]
            assert 0.2 < (x == 1.7).float().mean() < 0.45
    # Different groups / calls choose different keypoints.
    choices = {tuple(moved[0, g].nonzero().flatten().tolist())
               for g in range(3)}
    for _ in range(5):
        m = (head.noisy_references(coarse[:1]).reshape(1, 3, 17, 2) !=
             coarse[:1, None]).any(-1)[0]
        choices |= {tuple(m[g].nonzero().flatten().tolist())
                    for g in range(3)}
    assert len(choices) > 3


def test_noise_sampling_joint_is_the_authors_draw():
    """noise_sampling='joint' (default, the authors' ref_po_gua): S*n of the
    S*K noisy queries drawn without replacement, jointly: the number in one
    group is hypergeometric (K of S*K, S*n drawn), the total is always S*n,
    the same queries for the whole batch."""
    Kj, S, n = 6, 3, 2
    head = make_head(num_joints=Kj, num_noise_groups=S, num_noise_points=n)
    assert head.noise_sampling == 'joint'
    coarse = torch.full((3, Kj, 2), 0.5)
    torch.manual_seed(1)
    draws = 3000
    counts = np.zeros((draws, S), dtype=int)
    for i in range(draws):
        moved = (head.noisy_references(coarse).reshape(3, S, Kj, 2) !=
                 coarse[:, None]).any(-1)
        assert torch.equal(moved, moved[:1].expand_as(moved))
        counts[i] = moved[0].sum(-1).numpy()
    assert (counts.sum(1) == S * n).all()
    pmf = stats.hypergeom(S * Kj, Kj, S * n).pmf(np.arange(S * n + 1))
    freq = np.bincount(counts.ravel(), minlength=S * n + 1) / counts.size
    np.testing.assert_allclose(freq, pmf, atol=0.02)
    assert pmf[n] < 0.5  # far from 'exactly n per group'
    # per_group: exactly n in every group
    head.noise_sampling = 'per_group'
    moved = (head.noisy_references(coarse).reshape(3, S, Kj, 2) !=
             coarse[:, None]).any(-1)
    assert (moved.sum(-1) == n).all()


def test_reference_gradient_through_inverse_sigmoid():
    """ref_1 = sigmoid(branch_1(q_1) + logit(ref_0)) keeps the gradient of
    ref_0 (not detached). With layer 1's cross-attention output projection
    zeroed (q_1 does not see where ref_0 samples) and layer 1's output
    branch zeroed (coords_1 = ref_1), the gradient of sum(coords_1) with
    respect to the bias of layer 0's coordinate branch is, per axis,
    sum over queries of ref_1 (1 - ref_1): d logit(sigmoid(z)) / dz = 1."""
    head = make_head().eval()
    with torch.no_grad():
        head.coarse_coord.linear.bias.copy_(torch.linspace(0.1, 0.9, 2 * K))
        head.layers[1].cross_attn.output_proj.weight.zero_()
        head.coord_output_branches[1][-1].weight.zero_()
        head.coord_output_branches[1][-1].bias.zero_()
        head.coord_branches[0][-1].bias.copy_(torch.tensor([0.3, -0.2]))
    out = head(make_feats(2))
    ref1 = out['coords'][1].detach()
    assert ((ref1 > 0.01) & (ref1 < 0.99)).all()
    out['coords'][1].sum().backward()
    grad = head.coord_branches[0][-1].bias.grad
    expect = (ref1 * (1 - ref1)).sum(dim=(0, 1))
    torch.testing.assert_close(grad, expect, atol=1e-6, rtol=1e-5)


def _xavier_std(p, gain=1.0):
    fan_out, fan_in = p.shape[0], p.shape[1]
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


@pytest.mark.parametrize('init', ['intended', 'authors'])
def test_init_statistics(init):
    """What each init scheme leaves, checked on std ranges (C = 256 so the
    estimates are tight): 'intended' = the documented one, 'authors' = the
    authors' code as it runs (see PoseurHead._init_authors)."""
    torch.manual_seed(0)
    Cb, Kb, L, P, M = 256, 17, 4, 4, 8
    head = PoseurHead(num_joints=Kb, in_channels=Cb, num_feature_levels=L,
                      num_decoder_layers=2, num_heads=M, num_points=P,
                      init=init)
    # matrices start from something no scheme leaves, so every step shows
    with torch.no_grad():
        for name, p in head.named_parameters():
            if p.dim() > 1 and not name.startswith('loss_'):
                p.fill_(3.0)
    head.init_weights()
    prm = dict(head.named_parameters())

    def std(name):
        return prm[name].std().item()

    def close(name, value, rel=0.12):
        assert std(name) == pytest.approx(value, rel=rel), name

    att = 'layers.0.cross_attn.'
    default_std = 1.0 / math.sqrt(3 * Cb)  # nn.Linear's kaiming(a=sqrt 5)
    # Common to both: radial offset bias, zero attention biases, N(0, 1)
    # level embeddings, Xavier query projection, zero self-attn biases.
    bias = prm[att + 'sampling_offsets.bias'].view(M, L, P, 2)
    assert bias[0, 0, :, 0].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert bias[2, 1, 1].tolist() == pytest.approx([0.0, 2.0], abs=1e-6)
    assert not prm[att + 'attention_weights.bias'].any()
    assert not prm['layers.1.self_attn.out_proj.bias'].any()
    assert not prm['layers.1.self_attn.in_proj_bias'].any()
    close('level_embeds', 1.0, rel=0.15)
    close('query_proj.weight', _xavier_std(prm['query_proj.weight']))
    close('class_embed.weight', _xavier_std(prm['class_embed.weight']))
    close('layers.1.ffn_in.weight', _xavier_std(prm['layers.1.ffn_in.weight']))
    if init == 'intended':
        for name in ('sampling_offsets.weight', 'attention_weights.weight',
                     'value_proj_bias'):
            assert not prm[att + name].any(), name
        close(att + 'value_proj_weight',
              math.sqrt(2.0 / (Cb + Cb // M)))  # per head C -> C/M
        for name in ('coarse_coord.linear.weight', 'coarse_sigma.weight',
                     'coord_branches.1.0.weight',
                     'coord_output_branches.0.4.weight',
                     'sigma_branches.1.2.weight'):
            close(name, _xavier_std(prm[name], gain=0.01))
        close('sigma_branches.1.0.weight',
              _xavier_std(prm['sigma_branches.1.0.weight']))
        assert not torch.equal(prm['coord_branches.0.0.weight'],
                               prm['coord_branches.1.0.weight'])
    else:
        for name in ('sampling_offsets.weight', 'attention_weights.weight',
                     'value_proj_weight', 'value_proj_bias'):
            close(att + name, _xavier_std(prm[att + name]), rel=0.15)
        close('coarse_coord.linear.weight',
              _xavier_std(prm['coarse_coord.linear.weight']))
        close('coarse_sigma.weight', _xavier_std(prm['coarse_sigma.weight']))
        for name in ('coord_branches.1.0.weight', 'coord_branches.1.2.weight',
                     'coord_output_branches.0.2.weight',
                     'sigma_branches.1.0.weight',
                     'sigma_branches.1.1.weight'):
            close(name, default_std)
        # last layers (2 outputs): default bound 1/sqrt(C), few entries
        for name in ('coord_branches.0.4.weight',
                     'coord_output_branches.1.4.weight'):
            w = prm[name]
            assert w.abs().max() <= 1 / math.sqrt(Cb) + 1e-7
            assert w.std().item() > 0.5 * default_std
        close('sigma_branches.1.2.weight',
              _xavier_std(prm['sigma_branches.1.2.weight'], gain=0.01),
              rel=0.3)
        assert prm['coord_branches.0.0.bias'].abs().max() <= \
            1 / math.sqrt(Cb)
        # deep copies of one branch: all layers start identical
        for prefix in ('coord_branches', 'coord_output_branches',
                       'sigma_branches'):
            for k in ('0.weight', '2.bias'):
                assert torch.equal(prm[f'{prefix}.0.{k}'],
                                   prm[f'{prefix}.1.{k}'])


def test_keypoint_score_factor():
    """keypoint_score_factor=0.7 (the official get_p) scales every
    keypoint score; coordinates are unchanged."""
    torch.manual_seed(0)
    a = make_head().eval()
    b = make_head(keypoint_score_factor=0.7).eval()
    b.load_state_dict(a.state_dict())
    feats = make_feats(2)
    with torch.no_grad():
        pa = a.predict(feats, samples(2), test_cfg={})
        pb = b.predict(feats, samples(2), test_cfg={})
    for x, y in zip(pa, pb):
        np.testing.assert_allclose(y.keypoint_scores, 0.7 * x.keypoint_scores,
                                   rtol=1e-6)
        np.testing.assert_array_equal(y.keypoints, x.keypoints)


def test_noise_groups_only_in_training_and_isolated():
    torch.manual_seed(0)
    head = make_head(dropout=0.0)
    feats = make_feats(2)
    head.eval()
    with torch.no_grad():
        ev = head(feats)
        ev2 = head(feats)
    assert ev['coords'].shape == (2, 2, K, 2)
    assert torch.equal(ev['coords'], ev2['coords'])  # no noise at eval
    assert torch.equal(ev['references'], ev['coarse_coords'])
    head.train()
    with torch.no_grad():
        tr = head(feats)
    assert tr['coords'].shape == (2, 2, 4 * K, 2)
    assert tr['sigmas'].shape == (2, 2, 4 * K, 2)
    refs = tr['references'].reshape(2, 4, K, 2)
    assert torch.equal(refs[:, 0], tr['coarse_coords'])
    assert not torch.equal(refs[:, 1:], refs[:, :1].expand(-1, 3, -1, -1))
    # Self-attention stays within each group of K queries: the clean group
    # of a training pass (no dropout) equals the inference pass exactly.
    torch.testing.assert_close(tr['coords'][:, :, :K], ev['coords'])
    torch.testing.assert_close(tr['sigmas'][:, :, :K], ev['sigmas'])
    # num_noise_groups=0: a single group in training too.
    head0 = make_head(num_noise_groups=0).train()
    assert head0(feats)['coords'].shape == (2, 2, K, 2)


def test_reference_refinement_chain():
    """coords_l = sigmoid(branch_l(q) + logit(ref_{l-1})) + output_l(q):
    with zero query-dependent branches the references stay the clipped
    coarse ones and the predictions equal them plus the output biases."""
    head = make_head().eval()
    with torch.no_grad():
        for branches in (head.coord_branches, head.coord_output_branches):
            for br in branches:
                br[-1].weight.zero_()
                br[-1].bias.zero_()
        head.coord_output_branches[1][-1].bias.copy_(torch.tensor([0.1,
                                                                  -0.2]))
        # Push the coarse proposals partly outside [0, 1].
        head.coarse_coord.linear.bias.copy_(
            torch.linspace(-0.4, 1.4, 2 * K))
        out = head(make_feats(1))
    ref = out['coarse_coords'].clamp(1e-5, 1 - 1e-5)
    torch.testing.assert_close(out['coords'][0], ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(out['coords'][1],
                               ref + torch.tensor([0.1, -0.2]), atol=1e-5,
                               rtol=0)


def test_laplace_score_formula():
    sigma = torch.tensor([[0.1, 0.2], [0.05, 0.4], [1.0, 1.0]])
    s = laplace_keypoint_scores(sigma, a=0.2)
    expect = [(1 - math.exp(-2)) * (1 - math.exp(-1)),
              (1 - math.exp(-4)) * (1 - math.exp(-0.5)),
              (1 - math.exp(-0.2))**2]
    np.testing.assert_allclose(s.numpy(), expect, rtol=1e-6)
    # a = 0.4 on sigma 0.1 -> (1 - e^-4)^2
    assert laplace_keypoint_scores(torch.tensor([0.1, 0.1]), a=0.4).item() \
        == pytest.approx((1 - math.exp(-4))**2, rel=1e-6)


def test_predict_scores_are_laplace_of_last_layer_sigma():
    head = make_head(laplace_a=0.3).eval()
    feats = make_feats(3)
    with torch.no_grad():
        preds = head.predict(feats, samples(3), test_cfg={})
        out = head(feats)
    sig = out['sigmas'][-1].numpy()
    expect = ((1 - np.exp(-0.3 / sig[..., 0])) *
              (1 - np.exp(-0.3 / sig[..., 1])))
    for i, p in enumerate(preds):
        np.testing.assert_allclose(p.keypoint_scores[0], expect[i],
                                   rtol=1e-5)
        np.testing.assert_allclose(p.keypoints[0],
                                   out['coords'][-1, i].numpy() * INPUT,
                                   rtol=1e-5)
        np.testing.assert_allclose(p.keypoint_sigmas[0], sig[i])


def test_fuse_flip_formula():
    c = torch.tensor([[[0.2, 0.4]]])
    cf = torch.tensor([[[0.6, 0.8]]])
    s = torch.tensor([[0.9]])
    sf = torch.tensor([[0.3]])
    fused, score = fuse_flip_predictions(c, s, cf, sf, power=5)
    w, wf = 0.9**5, 0.3**5
    np.testing.assert_allclose(fused[0, 0].numpy(),
                               [(0.2 * w + 0.6 * wf) / (w + wf),
                                (0.4 * w + 0.8 * wf) / (w + wf)], rtol=1e-5)
    assert score.item() == pytest.approx(0.6)


def test_flip_fusion_symmetric_under_flipped_input():
    """The flip-test prediction for the mirror image (features [B, A] when
    the crop gives [A, B]) is the mirror of the crop's prediction: pixel x
    -> w - 1 - x, left/right keypoints swapped, same scores swapped."""
    head = make_head().eval()
    A, Bf = make_feats(2, seed=1), make_feats(2, seed=2)
    cfg = dict(flip_test=True, shift_coords=True)
    with torch.no_grad():
        p1 = head.predict([A, Bf], samples(2), test_cfg=cfg)
        p2 = head.predict([Bf, A], samples(2), test_cfg=cfg)
        plain = head.predict(A, samples(2), test_cfg={})
    w = INPUT[0]
    for a, b, c in zip(p1, p2, plain):
        kp1, kp2 = a.keypoints[0], b.keypoints[0]
        np.testing.assert_allclose(kp2[FLIP, 0], w - 1 - kp1[:, 0],
                                   atol=1e-4)
        np.testing.assert_allclose(kp2[FLIP, 1], kp1[:, 1], atol=1e-4)
        np.testing.assert_allclose(b.keypoint_scores[0][FLIP],
                                   a.keypoint_scores[0], rtol=1e-5)
        # and the flipped branch really contributed
        assert np.abs(kp1 - c.keypoints[0]).max() > 1e-3
    with pytest.raises(ValueError, match='flip_indices'):
        bad = samples(2)
        for s in bad:
            s.set_metainfo(dict(flip_indices=[0, 1]))
        head.predict([A, Bf], bad, test_cfg=cfg)


def test_loss_is_coarse_plus_every_layer():
    head = make_head().train()
    feats = make_feats(3)
    data = samples(3)
    torch.manual_seed(7)
    losses = head.loss(feats, data)
    assert set(losses) == {'loss_coarse', 'loss_dec0', 'loss_dec1',
                           'acc_pose'}
    torch.manual_seed(7)
    out = head(feats)
    target = torch.cat([d.gt_instance_labels.keypoint_labels for d in data])
    weight = torch.cat([d.gt_instance_labels.keypoint_weights for d in data])
    torch.testing.assert_close(
        losses['loss_coarse'],
        head.loss_coarse(out['coarse_coords'], out['coarse_sigma'], target,
                         weight))
    for lid in range(2):
        # every one of the 4 groups against the same targets
        torch.testing.assert_close(
            losses[f'loss_dec{lid}'],
            head.loss_decoder(out['coords'][lid], out['sigmas'][lid],
                              target.repeat(1, 4, 1), weight.repeat(1, 4)))
    # Two separate flows: coarse and decoder losses do not share parameters.
    assert head.loss_coarse is not head.loss_decoder
    assert not set(map(id, head.loss_coarse.parameters())) & set(
        map(id, head.loss_decoder.parameters()))
    # Gradients reach the features and every decoder layer.
    feats = [f.requires_grad_() for f in make_feats(3)]
    total = sum(v for k, v in head.loss(feats, data).items()
                if k.startswith('loss'))
    total.backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in feats)
    for layer in head.layers:
        assert layer.cross_attn.sampling_offsets.weight.grad.abs().sum() > 0


def test_emsda_and_msda_heads_agree_with_zero_value_bias():
    torch.manual_seed(0)
    ems = make_head(cross_attention='EMSDA').eval()
    ms = make_head(cross_attention='MSDA').eval()
    state = ems.state_dict()
    M, d = 4, C // 4
    for i in range(2):
        p = f'layers.{i}.cross_attn.'
        w = state.pop(p + 'value_proj_weight').view(M, C, d)
        state.pop(p + 'value_proj_bias')
        state[p + 'value_proj.weight'] = w.transpose(1, 2).reshape(C, C)
        state[p + 'value_proj.bias'] = torch.zeros(C)
    ms.load_state_dict(state, strict=True)
    for i in range(2):
        ems.layers[i].cross_attn.value_proj_bias.data.zero_()
    feats = make_feats(2)
    with torch.no_grad():
        a, b = ems(feats), ms(feats)
    torch.testing.assert_close(a['coords'], b['coords'], atol=1e-5,
                               rtol=1e-4)
    torch.testing.assert_close(a['sigmas'], b['sigmas'], atol=1e-5,
                               rtol=1e-4)


@pytest.mark.parametrize('kw, match', [
    (dict(cross_attention='DCN'), 'cross_attention'),
    (dict(num_noise_points=9), 'num_noise_points'),
    (dict(in_channels=30), 'divisible'),
    (dict(laplace_a=0.0), 'laplace_a'),
    (dict(num_decoder_layers=0), 'num_decoder_layers'),
    (dict(noise_variance=-1.0), 'noise_variance'),
    (dict(noise_sampling='per_batch'), 'noise_sampling'),
    (dict(init='xavier'), 'init'),
    (dict(keypoint_score_factor=0.0), 'keypoint_score_factor'),
    (dict(keypoint_score_factor=1.5), 'keypoint_score_factor'),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        make_head(**kw)


def test_bad_inputs():
    head = make_head().eval()
    with pytest.raises(ValueError, match='2 feature levels'):
        head(make_feats(1)[:1])
    bad = make_feats(1)
    bad[1] = torch.randn(1, C + 1, 4, 3)
    with pytest.raises(ValueError, match='level 1'):
        head(bad)
    with pytest.raises(ValueError, match='flipped_feats'):
        head.predict(make_feats(1), samples(1),
                     test_cfg=dict(flip_test=True))

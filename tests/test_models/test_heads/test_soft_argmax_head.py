"""Tests of the HRNet++ soft-argmax head (``SoftArgmaxHead``).

Most tests build the head with ``final_layer=None`` so that the input
features ARE the heatmap logits; the expected values can then be written out
by hand from chosen logits.
"""
import math

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData, PixelData

import mmkp_ext  # noqa: F401  (compat fixes + registration)
from mmkp_ext.models.heads import SoftArgmaxHead, soft_argmax_2d
from mmpose.codecs import RegressionLabel
from mmpose.models.heads import HeatmapHead, IntegralRegressionHead
from mmpose.registry import MODELS
from mmpose.structures import PoseDataSample


def np_soft_argmax(logits, alpha):
    """Reference soft-argmax in numpy, written out from the definition.

    logits: (K, H, W). Returns coords (K, 2) = (sum p*j/W, sum p*i/H) and the
    probabilities (K, H, W), p = exp(a*l - max) / sum exp(a*l - max).
    """
    K, H, W = logits.shape
    z = alpha * logits.astype(np.float64)
    z = z - z.reshape(K, -1).max(axis=1)[:, None, None]
    e = np.exp(z)
    p = e / e.reshape(K, -1).sum(axis=1)[:, None, None]
    coords = np.zeros((K, 2))
    for k in range(K):
        for i in range(H):
            for j in range(W):
                coords[k, 0] += p[k, i, j] * j / W
                coords[k, 1] += p[k, i, j] * i / H
    return coords, p


def np_window_mass(p, row, col, window):
    """Mass of p (H, W) in the window x window box centred on (row, col),
    clipped at the borders."""
    r = window // 2
    return p[max(row - r, 0):row + r + 1, max(col - r, 0):col + r + 1].sum()


def identity_head(num_joints, **kwargs):
    """Head whose input features are used directly as heatmap logits."""
    return SoftArgmaxHead(
        in_channels=num_joints,
        num_joints=num_joints,
        final_layer=None,
        **kwargs)


def make_samples(labels, weights, input_size=(48, 64), flip_indices=None):
    """PoseDataSamples with regression targets.

    labels: (B, K, 2) normalised targets; weights: (B, K).
    """
    w, h = input_size
    K = labels.shape[1]
    samples = []
    for lab, wt in zip(labels, weights):
        s = PoseDataSample(
            metainfo=dict(
                input_size=input_size,
                input_center=np.array([w / 2, h / 2], dtype=np.float32),
                input_scale=np.array([w, h], dtype=np.float32),
                flip_indices=flip_indices or list(range(K))))
        s.gt_instances = InstanceData(
            bboxes=np.array([[0, 0, w, h]], dtype=np.float32),
            bbox_scores=np.ones(1, dtype=np.float32))
        s.gt_instance_labels = InstanceData(
            keypoint_labels=torch.as_tensor(lab, dtype=torch.float32)[None],
            keypoint_weights=torch.as_tensor(wt, dtype=torch.float32)[None])
        samples.append(s)
    return samples


# 1. Hand-computed coordinates ------------------------------------------------


def test_closed_form_2x2():
    # logits ln3 at (row 0, col 0), 0 elsewhere, alpha 1:
    # p = [[3/6, 1/6], [1/6, 1/6]]; x = (p01 + p11) * 1/2 = 1/6, same for y.
    logits = torch.tensor([[[[math.log(3.0), 0.0], [0.0, 0.0]]]])
    coords = identity_head(1, alpha=1.0)((logits, ))
    assert torch.allclose(coords, torch.tensor([[[1 / 6, 1 / 6]]]), atol=1e-6)


def test_hand_computed_3x4():
    logits = np.array([[[0.0, 1.0, 0.0, 0.0],
                        [0.0, 2.0, 0.5, 0.0],
                        [-1.0, 0.0, 0.0, 1.0]]], dtype=np.float32)
    alpha = 1.5
    expected, _ = np_soft_argmax(logits, alpha)
    coords = identity_head(1, alpha=alpha)((torch.from_numpy(logits)[None], ))
    assert coords.shape == (1, 1, 2)
    np.testing.assert_allclose(coords[0].numpy(), expected, atol=1e-6)


def test_peaked_logit_gives_pixel_position():
    # One logit far above the rest: all mass on (row 2, col 1) of a 3x4 map,
    # so (x, y) = (1/W, 2/H) = (1/4, 2/3).
    logits = torch.zeros(1, 1, 3, 4)
    logits[0, 0, 2, 1] = 10.0
    coords = identity_head(1, alpha=60.0)((logits, ))
    assert torch.allclose(coords, torch.tensor([[[0.25, 2 / 3]]]), atol=1e-6)


def test_large_logits_are_stable():
    # alpha * logits ~ 6e4 overflows a naive exp; the result must stay finite
    # and equal the arg-max pixel.
    logits = torch.full((1, 1, 4, 5), 900.0)
    logits[0, 0, 3, 4] = 1000.0
    coords = identity_head(1, alpha=60.0)((logits, ))
    assert torch.isfinite(coords).all()
    assert torch.allclose(coords, torch.tensor([[[4 / 5, 3 / 4]]]))


# 2. Agreement with mmpose's IntegralRegressionHead ---------------------------


def test_matches_mmpose_integral_regression_head():
    # mmpose's head (debias=False, no deconvs) computes x = sum p * j / W and
    # y = sum p * i / H with p = softmax(beta * logits) -- the same units as
    # ours, so no conversion is applied: beta = alpha and coordinates compare
    # directly. Its in_featuremap_size is (W, H); H != W catches a swap.
    torch.manual_seed(0)
    C, K, H, W, alpha = 6, 3, 7, 5, 4.0
    theirs = IntegralRegressionHead(
        in_channels=C,
        in_featuremap_size=(W, H),
        num_joints=K,
        beta=alpha,
        debias=False,
        deconv_out_channels=None,
        final_layer=dict(kernel_size=1))
    ours = SoftArgmaxHead(in_channels=C, num_joints=K, alpha=alpha)
    torch.nn.init.normal_(theirs.final_layer.weight, std=1.0)
    torch.nn.init.normal_(theirs.final_layer.bias, std=1.0)
    ours.final_layer.load_state_dict(theirs.final_layer.state_dict())

    feats = (torch.randn(2, C, H, W), )
    their_coords, their_probs = theirs(feats)
    our_coords, our_probs = soft_argmax_2d(ours.forward_heatmaps(feats), alpha)
    # The maps are far from flat, so agreement is not a coincidence of
    # everything sitting at the centre.
    assert (their_coords.amax() - their_coords.amin()) > 0.1
    assert torch.allclose(ours(feats), their_coords, atol=1e-6)
    assert torch.allclose(our_coords, their_coords, atol=1e-6)
    assert torch.allclose(our_probs, their_probs, atol=1e-7)


# 3. Keypoint scores ----------------------------------------------------------


def _scores(head, logits):
    coords, probs = soft_argmax_2d(logits, head.alpha)
    return head.keypoint_scores(probs, coords)


def test_scores_concentrated_vs_flat():
    H, W = 5, 7
    logits = torch.zeros(1, 2, H, W)
    logits[0, 0, 2, 3] = 10.0  # keypoint 0: all mass on one pixel
    # keypoint 1: flat, p = 1/35 everywhere
    expected = {
        # flat arg-max is the first pixel (0, 0): clipped window of 2x2 cells
        'peak_mass': [1.0, 4 / 35],
        # flat expectation is (x, y) = (3/7, 2/5) -> pixel (3, 2): 3x3 cells
        'expected_mass': [1.0, 9 / 35],
        'max_prob': [1.0, 1 / 35],
    }
    for mode, exp in expected.items():
        s = _scores(identity_head(2, score_mode=mode), logits)
        assert s.shape == (1, 2)
        assert ((s >= 0) & (s <= 1)).all()
        np.testing.assert_allclose(s[0].numpy(), exp, atol=1e-5, err_msg=mode)


def test_peak_mass_matches_numpy_window_sums():
    # Non-square random map; the arg-max window is summed by slicing in numpy
    # (row/col order and border clipping are checked this way).
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 6, 9)).astype(np.float32)
    logits[1, 0, 8] += 3.0  # arg-max in a corner: clipped window
    alpha = 2.0
    _, p = np_soft_argmax(logits, alpha)
    for window in (1, 3, 5):
        head = identity_head(3, alpha=alpha, score_window=window)
        s = _scores(head, torch.from_numpy(logits)[None])[0].numpy()
        exp = []
        for k in range(3):
            row, col = np.unravel_index(p[k].argmax(), p[k].shape)
            exp.append(np_window_mass(p[k], row, col, window))
        np.testing.assert_allclose(s, exp, atol=1e-5, err_msg=str(window))
    assert len(np.unique(np.round(s, 4))) == 3  # per keypoint, not constant

    # expected_mass: window around the pixel nearest to the expected
    # coordinate (coords * (W, H) rounded to the closest integer).
    coords, _ = np_soft_argmax(logits, alpha)
    pix = coords * [9, 6]
    centre = np.rint(pix).astype(int)
    assert (centre != np.floor(pix)).any()  # rounding, not truncation, matters
    head = identity_head(3, alpha=alpha, score_mode='expected_mass')
    s = _scores(head, torch.from_numpy(logits)[None])[0].numpy()
    exp = [
        np_window_mass(p[k], centre[k, 1], centre[k, 0], 3)
        for k in range(3)
    ]
    np.testing.assert_allclose(s, exp, atol=1e-5)


def test_expected_mass_penalises_bimodal_maps():
    # Two equal peaks: the expected coordinate lies between them, where there
    # is no mass; the arg-max window holds one of the two peaks (0.5).
    logits = torch.zeros(1, 1, 5, 7)
    logits[0, 0, 1, 1] = 10.0
    logits[0, 0, 3, 5] = 10.0
    peak = _scores(identity_head(1, score_mode='peak_mass'), logits)
    expected = _scores(identity_head(1, score_mode='expected_mass'), logits)
    assert peak.item() == pytest.approx(0.5, abs=1e-5)
    assert expected.item() < 1e-5


# 4. Loss ---------------------------------------------------------------------


def test_loss_value_weights_and_gradients():
    torch.manual_seed(0)
    B, K, H, W = 2, 3, 4, 5
    head = identity_head(K, alpha=3.0)
    feats = torch.randn(B, K, H, W, requires_grad=True)
    labels = torch.rand(B, K, 2)
    weights = torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.5]])

    losses = head.loss((feats, ), make_samples(labels, weights))
    pred = np.stack([
        np_soft_argmax(f.detach().numpy(), 3.0)[0] for f in feats
    ])
    by_hand = np.mean(
        np.abs(pred - labels.numpy()) * weights.numpy()[..., None])
    assert losses['loss_kpt'].item() == pytest.approx(by_hand, rel=1e-5)

    # Weight-0 keypoint (sample 0, keypoint 1): its target does not matter.
    moved = labels.clone()
    moved[0, 1] += 0.7
    losses_moved = head.loss((feats, ), make_samples(moved, weights))
    assert losses_moved['loss_kpt'].item() == pytest.approx(
        losses['loss_kpt'].item(), abs=1e-7)
    # ...while moving a weighted target does change it.
    moved[0, 0] += 0.7
    assert head.loss((feats, ), make_samples(moved, weights))[
        'loss_kpt'].item() != pytest.approx(losses['loss_kpt'].item())

    losses['loss_kpt'].backward()
    grad = feats.grad
    assert torch.isfinite(grad).all()
    assert grad[0, 1].abs().max() == 0  # weight 0: no gradient
    for b, k in [(0, 0), (0, 2), (1, 0), (1, 1), (1, 2)]:
        assert grad[b, k].abs().max() > 0


def test_loss_gradient_reaches_conv_weights():
    torch.manual_seed(0)
    head = SoftArgmaxHead(
        in_channels=4,
        num_joints=2,
        conv_out_channels=(4, ),
        conv_kernel_sizes=(3, ))
    head.init_weights()
    losses = head.loss((torch.randn(2, 4, 6, 5), ),
                       make_samples(torch.rand(2, 2, 2), torch.ones(2, 2)))
    losses['loss_kpt'].backward()
    for name in ('final_layer.weight', 'conv_layers.0.weight'):
        g = dict(head.named_parameters())[name].grad
        assert g is not None and g.abs().sum() > 0, name


def test_loss_rejects_non_finite_targets():
    head = identity_head(2)
    feats = (torch.randn(1, 2, 3, 3), )
    labels = torch.rand(1, 2, 2)
    labels[0, 1, 0] = float('nan')
    with pytest.raises(ValueError, match='NaN/inf.*keypoint 1'):
        head.loss(feats, make_samples(labels, torch.ones(1, 2)))
    labels[0, 1, 0] = float('inf')
    with pytest.raises(ValueError, match='NaN/inf'):
        head.loss(feats, make_samples(labels, torch.ones(1, 2)))
    with pytest.raises(ValueError, match='keypoint_weights'):
        head.loss(feats,
                  make_samples(torch.rand(1, 2, 2),
                               torch.tensor([[1.0, float('nan')]])))

    # A non-finite target with weight 0 is ignored instead of poisoning the
    # loss through 0 * nan = nan.
    weights = torch.tensor([[1.0, 0.0]])
    nan_loss = head.loss(feats, make_samples(labels, weights))['loss_kpt']
    finite = labels.clone()
    finite[0, 1] = 0.3
    ref_loss = head.loss(feats, make_samples(finite, weights))['loss_kpt']
    assert torch.isfinite(nan_loss)
    assert nan_loss.item() == pytest.approx(ref_loss.item(), abs=1e-7)


def test_loss_reports_pck_accuracy():
    head = identity_head(3, alpha=3.0)
    feats = (torch.randn(2, 3, 4, 4), )
    pred = head(feats).detach()
    labels = pred.clone()
    labels[:, 1, 0] += 0.2  # keypoint 1: off by 0.2 > PCK threshold 0.05
    labels[:, 2, 0] += 0.2  # keypoint 2 also wrong, but has weight 0
    weights = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    acc = head.loss(feats, make_samples(labels, weights))['acc_pose']
    # keypoint 0 always right, keypoint 1 always wrong, keypoint 2 ignored
    assert acc.item() == pytest.approx(0.5)


# 5. Predict and flip test ----------------------------------------------------


def _conv_head(K, C, **kwargs):
    torch.manual_seed(0)
    head = SoftArgmaxHead(
        in_channels=C,
        num_joints=K,
        alpha=2.0,
        decoder=dict(type='RegressionLabel', input_size=(48, 64)),
        **kwargs)
    # Large weights so that the heatmaps are far from flat.
    torch.nn.init.normal_(head.final_layer.weight, std=1.0)
    torch.nn.init.normal_(head.final_layer.bias, std=1.0)
    return head.eval()


def test_predict_decodes_to_input_pixels():
    head = _conv_head(3, 4)
    feats = (torch.randn(2, 4, 8, 6), )
    samples = make_samples(torch.zeros(2, 3, 2), torch.ones(2, 3))
    preds, fields = head.predict(
        feats, samples, dict(flip_test=False, output_heatmaps=True))
    logits = head.forward_heatmaps(feats).detach().numpy()
    for b in range(2):
        coords, probs = np_soft_argmax(logits[b], 2.0)
        assert isinstance(preds[b], InstanceData)
        assert preds[b].keypoints.shape == (1, 3, 2)
        assert preds[b].keypoint_scores.shape == (1, 3)
        # RegressionLabel: input pixels = normalised * (w, h) = (48, 64)
        np.testing.assert_allclose(
            preds[b].keypoints[0], coords * [48, 64], atol=1e-4)
        exp_scores = [
            np_window_mass(probs[k], *np.unravel_index(probs[k].argmax(),
                                                       probs[k].shape), 3)
            for k in range(3)
        ]
        np.testing.assert_allclose(
            preds[b].keypoint_scores[0], exp_scores, atol=1e-5)
        assert isinstance(fields[b], PixelData)
        np.testing.assert_allclose(
            fields[b].heatmaps.numpy(), probs, atol=1e-6)


@pytest.mark.parametrize('shift_heatmap', [False, True])
def test_flip_fusion_matches_manual_computation(shift_heatmap):
    K, C = 3, 4
    flip_indices = [1, 0, 2]
    head = _conv_head(K, C)
    feats = (torch.randn(2, C, 8, 6), )
    feats_flip = (torch.randn(2, C, 8, 6), )
    samples = make_samples(
        torch.zeros(2, K, 2), torch.ones(2, K), flip_indices=flip_indices)
    preds = head.predict([feats, feats_flip], samples,
                         dict(flip_test=True, shift_heatmap=shift_heatmap))

    # Manual: flip the flipped image's logits back along x, swap symmetric
    # channels, optionally shift one column right, average the logits, then
    # soft-argmax.
    logits = head.forward_heatmaps(feats).detach().numpy()
    back = head.forward_heatmaps(feats_flip).detach().numpy()[..., ::-1]
    back = back[:, flip_indices].copy()
    if shift_heatmap:
        back[..., 1:] = back[..., :-1].copy()
    fused = (logits + back) / 2
    for b in range(2):
        coords, _ = np_soft_argmax(fused[b], 2.0)
        np.testing.assert_allclose(
            preds[b].keypoints[0], coords * [48, 64], atol=1e-4)
        # Averaging coordinates instead of logits gives a different answer,
        # so the check above pins down where the fusion happens.
        c0, _ = np_soft_argmax(logits[b], 2.0)
        c1, _ = np_soft_argmax(back[b], 2.0)
        assert np.abs((c0 + c1) / 2 - coords).max() > 1e-3


def test_flip_test_is_consistent_for_flip_equivariant_head():
    # A 1x1 conv commutes with a horizontal flip, so with identity
    # flip_indices the flipped branch, flipped back, equals the original and
    # flip-test predictions equal plain predictions.
    K, C = 3, 4
    head = _conv_head(K, C)
    f = torch.randn(1, C, 8, 6)
    samples = make_samples(torch.zeros(1, K, 2), torch.ones(1, K))
    plain = head.predict((f, ), samples, dict(flip_test=False))[0]
    fused = head.predict([(f, ), (f.flip(-1), )], samples,
                         dict(flip_test=True))[0]
    mirrored = head.predict((f.flip(-1), ), samples, dict(flip_test=False))[0]
    assert np.abs(plain.keypoints - mirrored.keypoints).max() > 1.0
    np.testing.assert_allclose(fused.keypoints, plain.keypoints, atol=1e-4)
    np.testing.assert_allclose(
        fused.keypoint_scores, plain.keypoint_scores, atol=1e-6)


def test_predict_without_decoder_raises():
    head = identity_head(2)
    with pytest.raises(RuntimeError, match='decoder'):
        head.predict((torch.randn(1, 2, 3, 3), ), None, {})


# 6. Registry and argument validation ----------------------------------------


def test_builds_from_registry():
    head = MODELS.build(
        dict(
            type='SoftArgmaxHead',
            in_channels=8,
            num_joints=5,
            alpha=60.0,
            deconv_out_channels=(8, ),
            deconv_kernel_sizes=(4, ),
            score_mode='max_prob',
            decoder=dict(type='RegressionLabel', input_size=(48, 64))))
    assert isinstance(head, SoftArgmaxHead)
    assert isinstance(head.decoder, RegressionLabel)
    # one stride-2 deconv doubles the 4x3 map
    assert head.forward_heatmaps((torch.randn(1, 8, 4, 3), )).shape == (1, 5,
                                                                         8, 6)


@pytest.mark.parametrize('kwargs, match', [
    (dict(alpha=0.0), 'alpha'),
    (dict(alpha=-1.0), 'alpha'),
    (dict(alpha=float('nan')), 'alpha'),
    (dict(num_joints=0), 'num_joints'),
    (dict(in_channels=0), 'in_channels'),
    (dict(score_mode='mean'), 'score_mode'),
    (dict(score_window=4), 'score_window'),
    (dict(deconv_out_channels=(8, 8), deconv_kernel_sizes=(4, )),
     'deconv_out_channels and deconv_kernel_sizes'),
    (dict(deconv_out_channels=(8, ), deconv_kernel_sizes=(5, )),
     'deconv_kernel_sizes'),
    (dict(conv_out_channels=(8, ), conv_kernel_sizes=()),
     'conv_out_channels and conv_kernel_sizes'),
    (dict(conv_out_channels=(8, ), conv_kernel_sizes=(2, )),
     'conv_kernel_sizes'),
    (dict(final_layer=None), 'num_joints'),
])
def test_bad_arguments_raise(kwargs, match):
    args = dict(in_channels=8, num_joints=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        SoftArgmaxHead(**args)


def test_loads_heatmap_head_checkpoint():
    # The paper fine-tunes a heatmap model with soft-argmax: a HeatmapHead
    # state dict with the same layer config must load strictly and give the
    # same logits.
    torch.manual_seed(0)
    layers = dict(
        deconv_out_channels=(4, ),
        deconv_kernel_sizes=(4, ),
        conv_out_channels=(4, ),
        conv_kernel_sizes=(3, ))
    heatmap_head = HeatmapHead(in_channels=6, out_channels=3, **layers)
    for p in heatmap_head.parameters():
        torch.nn.init.normal_(p)
    ours = SoftArgmaxHead(in_channels=6, num_joints=3, **layers)
    ours.load_state_dict(heatmap_head.state_dict(), strict=True)
    heatmap_head.eval()
    ours.eval()
    feats = (torch.randn(1, 6, 4, 3), )
    assert torch.allclose(
        ours.forward_heatmaps(feats), heatmap_head(feats), atol=1e-6)


# End-to-end smoke with mmpose's TopdownPoseEstimator -------------------------


def test_topdown_estimator_loss_and_predict():
    torch.manual_seed(0)
    K, w, h = 3, 48, 64
    model = MODELS.build(
        dict(
            type='TopdownPoseEstimator',
            backbone=dict(
                type='ResNet',
                depth=18,
                num_stages=2,
                strides=(1, 2),
                dilations=(1, 1),
                out_indices=(1, ),
                stem_channels=16,
                base_channels=16),
            head=dict(
                type='SoftArgmaxHead',
                in_channels=32,  # stage 2 of a base-16 ResNet-18
                num_joints=K,
                deconv_out_channels=(16, ),
                deconv_kernel_sizes=(4, ),
                decoder=dict(type='RegressionLabel', input_size=(w, h))),
            test_cfg=dict(flip_test=True)))
    model.init_weights()

    codec = RegressionLabel(input_size=(w, h))
    keypoints = np.array([[[10.0, 20.0], [38.0, 20.0], [24.0, 50.0]],
                          [[5.0, 5.0], [40.0, 60.0], [60.0, 10.0]]])
    enc = [codec.encode(k[None]) for k in keypoints]  # last one is outside
    labels = np.concatenate([e['keypoint_labels'] for e in enc])
    weights = np.concatenate([e['keypoint_weights'] for e in enc])
    assert weights[1, 2] == 0
    inputs = torch.randn(2, 3, h, w)

    model.train()
    losses = model.loss(
        inputs, make_samples(labels, weights, (w, h), flip_indices=[1, 0, 2]))
    assert set(losses) == {'loss_kpt', 'acc_pose'}
    assert torch.isfinite(losses['loss_kpt']) and losses['loss_kpt'] > 0
    losses['loss_kpt'].backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        results = model.predict(
            inputs,
            make_samples(labels, weights, (w, h), flip_indices=[1, 0, 2]))
    for r in results:
        kpts = r.pred_instances.keypoints
        scores = r.pred_instances.keypoint_scores
        assert kpts.shape == (1, K, 2) and scores.shape == (1, K)
        # the crop is the whole input, so image pixels = input pixels and
        # soft-argmax coordinates lie inside the input
        assert (kpts >= 0).all() and (kpts[..., 0] <= w).all() \
            and (kpts[..., 1] <= h).all()
        assert ((scores > 0) & (scores <= 1)).all()

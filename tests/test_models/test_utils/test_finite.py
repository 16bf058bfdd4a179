"""Non-finite head outputs (``mmkp_ext.models.utils.finite``): the shared
helper on hand-built tensors, and each of our heads other than CenterNet
(soft-argmax, Poseur, HigherHRNet/SWAHR) given NaN/Inf outputs: a warning
naming the output and its count, score 0 for exactly the affected
keypoints, finite coordinates, every other keypoint as in a clean run.
Before the helper, these heads returned NaN coordinates or NaN scores
silently (a NaN heatmap pixel poisons the whole softmax; NaN sigmas give
NaN Laplace scores)."""
import warnings

import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope

import mmkp_ext  # noqa: F401
from mmkp_ext.models.heads import PoseurHead, SoftArgmaxHead
from mmkp_ext.models.utils import NonFiniteOutputWarning, sanitize_outputs
from mmpose.registry import MODELS
from mmpose.structures import PoseDataSample

NAN, INF = float('nan'), float('inf')


def _no_warning(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter('error', NonFiniteOutputWarning)
        return fn(*args, **kwargs)


# ---------------------------------------------------------------- helper
def test_sanitize_outputs_masks_cleans_and_counts():
    g = torch.Generator().manual_seed(0)
    heatmaps = torch.rand(2, 3, 4, 4, generator=g)
    tags = torch.rand(2, 6, 4, 4, generator=g)  # L=2 tags per keypoint
    heatmaps[0, 1, 2, 2] = NAN
    heatmaps[1, 2, 0, 0] = INF
    heatmaps[1, 2, 3, 1] = -INF
    tags[1, 3, 1, 1] = NAN  # channel 3 = keypoint 0 of the second group
    with pytest.warns(NonFiniteOutputWarning) as rec:
        (hm, tg), bad = sanitize_outputs('MyHead', 3, heatmaps=heatmaps,
                                         tags=tags)
    msg = str(rec[0].message)
    assert msg.startswith('MyHead: non-finite head outputs: ')
    assert 'heatmaps 3 of 96 values (NaN 1, Inf 2)' in msg
    assert 'tags 1 of 192 values (NaN 1, Inf 0)' in msg
    assert msg.endswith('3 keypoint(s) get score 0')
    assert bad.tolist() == [[False, True, False], [True, False, True]]
    expected_hm = heatmaps.clone()
    expected_hm[~torch.isfinite(expected_hm)] = 0
    expected_tg = tags.clone()
    expected_tg[1, 3, 1, 1] = 0
    assert torch.equal(hm, expected_hm) and torch.equal(tg, expected_tg)


def test_sanitize_outputs_clean_input_bf16_and_shared_channels():
    x = torch.tensor([[0.5, 1.25], [2.0, -3.0]], dtype=torch.bfloat16)
    (out, ), bad = _no_warning(sanitize_outputs, 'H', 2, scores=x)
    assert out.dtype == torch.float32 and torch.equal(out, x.float())
    assert not bad.any() and bad.shape == (2, 2)
    # (B, K, 2) coordinates: a NaN x marks that keypoint only
    c = torch.zeros(2, 3, 2)
    c[1, 2, 0] = NAN
    with pytest.warns(NonFiniteOutputWarning, match='coords 1 of 12'):
        (c2, ), bad = sanitize_outputs('H', 3, coords=c)
    assert bad.tolist() == [[False] * 3, [False, False, True]]
    assert torch.isfinite(c2).all()
    # one tag map shared by the K keypoints: a NaN there marks all of them
    shared = torch.zeros(2, 1, 4, 4)
    shared[0, 0, 0, 0] = NAN
    with pytest.warns(NonFiniteOutputWarning):
        _, bad = sanitize_outputs('H', 3, tags=shared)
    assert bad.tolist() == [[True] * 3, [False] * 3]


# ------------------------------------------------------------ soft-argmax
def test_soft_argmax_head_nonfinite_logits():
    K, H, W = 4, 8, 6
    head = SoftArgmaxHead(
        in_channels=K, num_joints=K, alpha=1.0, final_layer=None,
        decoder=dict(type='RegressionLabel', input_size=(24, 32)))
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, K, H, W, generator=g)
    clean = _no_warning(head.predict, [feats], [PoseDataSample()] * 2)
    bad_feats = feats.clone()
    bad_feats[0, 1, 3, 3] = NAN
    bad_feats[1, 3, 0, 5] = INF
    with pytest.warns(NonFiniteOutputWarning,
                      match=r'SoftArgmaxHead: .*heatmap_logits 2 of 384 '
                      r'values \(NaN 1, Inf 1\); 2 keypoint'):
        preds = head.predict([bad_feats], [PoseDataSample()] * 2)
    for b, (p, c) in enumerate(zip(preds, clean)):
        assert np.isfinite(p.keypoints).all()
        assert np.isfinite(p.keypoint_scores).all()
        hit = [1] if b == 0 else [3]
        ok = [k for k in range(K) if k not in hit]
        assert np.all(p.keypoint_scores[0, hit] == 0)
        assert np.all(c.keypoint_scores[0, hit] > 0)
        np.testing.assert_array_equal(p.keypoints[0, ok], c.keypoints[0, ok])
        np.testing.assert_array_equal(p.keypoint_scores[0, ok],
                                      c.keypoint_scores[0, ok])


# ----------------------------------------------------------------- Poseur
def test_poseur_head_nonfinite_coordinates_and_sigmas():
    K = 5
    head = PoseurHead(
        num_joints=K, in_channels=32, num_feature_levels=2,
        num_decoder_layers=1, num_heads=4, num_points=2,
        feedforward_channels=64,
        decoder=dict(type='RegressionLabel', input_size=(24, 32))).eval()
    head.init_weights()
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 32, 8, 6, generator=g),
             torch.randn(2, 32, 4, 3, generator=g)]
    samples = [PoseDataSample(metainfo=dict(input_size=(24, 32)))] * 2
    with torch.no_grad():
        clean = _no_warning(head.predict, feats, samples)
        original = head._predict_one

        def poisoned(f):
            coords, sigma, scores = original(f)
            coords, sigma = coords.clone(), sigma.clone()
            coords[0, 2, 0] = NAN
            sigma[1, 0, 1] = INF  # its Laplace score becomes 0 or NaN
            return coords, sigma, scores

        head._predict_one = poisoned
        with pytest.warns(NonFiniteOutputWarning) as rec:
            preds = head.predict(feats, samples)
    msg = str(rec[0].message)
    assert 'PoseurHead' in msg and 'coordinates 1 of 20' in msg
    assert 'sigmas 1 of 20 values (NaN 0, Inf 1)' in msg
    hits = {0: [2], 1: [0]}
    for b, (p, c) in enumerate(zip(preds, clean)):
        assert np.isfinite(p.keypoints).all()
        assert np.isfinite(p.keypoint_scores).all()
        ok = [k for k in range(K) if k not in hits[b]]
        assert np.all(p.keypoint_scores[0, hits[b]] == 0)
        np.testing.assert_array_equal(p.keypoints[0, ok], c.keypoints[0, ok])
        np.testing.assert_allclose(p.keypoint_scores[0, ok],
                                   c.keypoint_scores[0, ok], rtol=1e-6)


# ------------------------------------------------------ HigherHRNet / SWAHR
def _higherhrnet_head():
    with DefaultScope.overwrite_default_scope('mmpose'):
        return MODELS.build(
            dict(
                type='HigherHRNetHead', in_channels=8, num_keypoints=3,
                deconv_channels=8, num_basic_blocks=1,
                decoder=dict(
                    type='AssociativeEmbedding', input_size=(64, 64),
                    heatmap_size=(64, 64), decode_keypoint_thr=0.3,
                    decode_keypoint_order=[0, 1, 2],
                    decode_max_instances=5)))


def _people_maps():
    """Two images, each with two people of 3 keypoints: Gaussian heatmaps
    (B, 3, 64, 64) and tags (B, 3, 64, 64) with 0 / 3 per person."""
    people = np.array([[[12, 12], [20, 16], [16, 28]],
                       [[44, 40], [52, 44], [48, 56]]], dtype=np.float64)
    yy, xx = np.mgrid[:64, :64]
    hm = np.zeros((3, 64, 64))
    tags = np.zeros((3, 64, 64))
    for p, person in enumerate(people):
        for k, (x, y) in enumerate(person):
            hm[k] = np.maximum(hm[k],
                               np.exp(-((xx - x)**2 + (yy - y)**2) / 32))
            tags[k, int(y) - 4:int(y) + 5, int(x) - 4:int(x) + 5] = 3.0 * p
    hm = torch.tensor(np.stack([hm, hm]), dtype=torch.float32)
    tags = torch.tensor(np.stack([tags, tags]), dtype=torch.float32)
    return hm, tags


def test_higherhrnet_head_nonfinite_heatmaps_and_tags():
    head = _higherhrnet_head()
    hm, tags = _people_maps()
    samples = [PoseDataSample(metainfo=dict(input_size=(64, 64)))] * 2
    head.fuse_outputs = lambda *a, **k: (hm, tags)
    clean = _no_warning(head.predict, None, samples)
    bad_hm, bad_tags = hm.clone(), tags.clone()
    bad_hm[0, 1, 30, 30] = NAN  # image 0, keypoint 1
    bad_tags[1, 2, 5, 5] = -INF  # image 1, keypoint 2
    head.fuse_outputs = lambda *a, **k: (bad_hm, bad_tags)
    with pytest.warns(NonFiniteOutputWarning) as rec:
        preds = head.predict(None, samples)
    msg = str(rec[0].message)
    assert 'HigherHRNetHead' in msg and 'heatmaps 1 of 24576' in msg
    assert 'tags 1 of 24576 values (NaN 0, Inf 1)' in msg
    hits = {0: 1, 1: 2}
    for b, (p, c) in enumerate(zip(preds, clean)):
        assert p.keypoints.shape == c.keypoints.shape == (2, 3, 2)
        assert np.isfinite(p.keypoints).all()
        assert np.isfinite(p.keypoint_scores).all()
        assert np.all(c.keypoint_scores > 0.5)
        k = hits[b]
        assert np.all(p.keypoint_scores[:, k] == 0)
        ok = [j for j in range(3) if j != k]
        order_p = np.argsort(p.keypoints[:, 0, 0])
        order_c = np.argsort(c.keypoints[:, 0, 0])
        np.testing.assert_allclose(p.keypoint_scores[order_p][:, ok],
                                   c.keypoint_scores[order_c][:, ok])
        np.testing.assert_allclose(p.keypoints[order_p][:, ok],
                                   c.keypoints[order_c][:, ok])
        # instance score = mean keypoint score where keypoints were zeroed
        np.testing.assert_allclose(p.bbox_scores,
                                   p.keypoint_scores.mean(-1))

"""Tests of ``MultiResolutionAELabel`` (HigherHRNet / SWAHR targets + AE
grouping): hand-worked targets, packing through mmpose's GenerateTarget and
PackPoseInputs, bad input, and on the real COCO / CrowdPose fixtures through
mmpose's bottom-up datasets and pipelines: peaks, indices, ignore masks and
AP 1.0 from perfect heatmaps + tags through mmpose's CocoMetric."""
import numpy as np
import pytest
import torch

import mmkp_ext  # noqa: F401  (registration)
from mmkp_ext.codecs import MultiResolutionAELabel
from mmpose.datasets.transforms import GenerateTarget, PackPoseInputs
from mmpose.registry import KEYPOINT_CODECS


def small_codec(**kwargs):
    cfg = dict(
        type='MultiResolutionAELabel',
        input_size=(64, 64),
        heatmap_sizes=[(16, 16), (32, 32)],
        sigma=2)
    cfg.update(kwargs)
    return KEYPOINT_CODECS.build(cfg)


def gaussian_reference(size, centers, sigma):
    """Brute force: max over centres of exp(-d^2 / 2 s^2), cut at 3 s per
    axis; ``centers`` a list of integer (x, y) cells."""
    W, H = size
    out = np.zeros((H, W))
    for cx, cy in centers:
        for y in range(H):
            for x in range(W):
                if abs(x - cx) <= 3 * sigma and abs(y - cy) <= 3 * sigma:
                    out[y, x] = max(
                        out[y, x],
                        np.exp(-((x - cx)**2 + (y - cy)**2) / (2 * sigma**2)))
    return out


# ----------------------------------------------------------------------
# hand-worked encoding
# ----------------------------------------------------------------------
def test_encode_hand_worked_two_people_two_resolutions():
    codec = small_codec(sigma=[1.5, 2.0])
    # person 0: (10, 20) and (30, 5); person 1: (50, 50), (70, 3) unlabelled
    kpts = np.array([[[10., 20.], [30., 5.]], [[50., 50.], [70., 3.]]],
                    dtype=np.float32)
    vis = np.array([[1, 1], [1, 0]], dtype=np.float32)
    enc = codec.encode(kpts, vis)
    # resolution 0 (stride 4): (2.5, 5) -> cell (3, 5); (7.5, 1.25) -> (8, 1);
    # (12.5, 12.5) -> (13, 13)   [round(v) = floor(v + 0.5)]
    # resolution 1 (stride 2): (5, 10), (15, 2.5) -> (15, 3), (25, 25)
    hm0, hm1 = enc['heatmaps']
    assert hm0.shape == (2, 16, 16) and hm1.shape == (2, 32, 32)
    assert hm0.dtype == np.float32
    np.testing.assert_allclose(
        hm0[0], gaussian_reference((16, 16), [(3, 5), (13, 13)], 1.5),
        atol=1e-6)
    np.testing.assert_allclose(
        hm0[1], gaussian_reference((16, 16), [(8, 1)], 1.5), atol=1e-6)
    np.testing.assert_allclose(
        hm1[0], gaussian_reference((32, 32), [(5, 10), (25, 25)], 2.0),
        atol=1e-6)
    np.testing.assert_allclose(
        hm1[1], gaussian_reference((32, 32), [(15, 3)], 2.0), atol=1e-6)
    np.testing.assert_array_equal(
        enc['keypoint_indices'],
        [[[5 * 16 + 3, 1], [1 * 16 + 8, 1]], [[13 * 16 + 13, 1], [0, 0]]])
    assert enc['keypoint_indices'].dtype == np.int64
    np.testing.assert_array_equal(enc['keypoint_weights'], [[1, 1], [1, 0]])
    # no mask given: every pixel used
    assert [m.shape for m in enc['heatmap_mask']] == [(16, 16), (32, 32)]
    assert all(m.dtype == np.float32 and (m == 1).all()
               for m in enc['heatmap_mask'])


def test_keypoints_outside_are_invalid_and_draw_nothing():
    codec = small_codec()
    # -1.9 / 4 = -0.475 -> cell 0 (inside); -2.1 / 4 -> cell -1 (outside);
    # 63 / 4 = 15.75 -> cell 16 at res 0 (outside), 31.5 -> 32 at res 1
    kpts = np.array([[[-1.9, 10.], [-2.1, 10.], [63., 10.]]], np.float32)
    enc = codec.encode(kpts, np.ones((1, 3), np.float32))
    np.testing.assert_array_equal(enc['keypoint_indices'][0, :, 1], [1, 0, 0])
    assert enc['keypoint_indices'][0, 0, 0] == 3 * 16 + 0  # y 2.5 -> 3
    np.testing.assert_array_equal(enc['keypoint_weights'], [[1, 0, 0]])
    assert enc['heatmaps'][0][1].max() == 0 and enc['heatmaps'][0][2].max() == 0
    assert enc['heatmaps'][0][0].max() == 1


def test_mask_is_area_downsized_per_resolution():
    codec = small_codec()
    mask = np.ones((64, 64), dtype=bool)
    mask[:, :10] = False  # columns 0..9 invalid
    enc = codec.encode(np.zeros((0, 2, 2), np.float32),
                       np.zeros((0, 2), np.float32), heatmap_mask=mask)
    m0, m1 = enc['heatmap_mask']
    # res 0, stride 4: cells 0, 1 fully invalid, cell 2 = cols 8..11 half
    # invalid (not > half valid) -> ignored; cell 3 valid
    np.testing.assert_array_equal(m0[0, :5], [0, 0, 0, 1, 1])
    # res 1, stride 2: cells 0..4 = cols 0..9 invalid, cell 5 valid
    np.testing.assert_array_equal(m1[0, :7], [0, 0, 0, 0, 0, 1, 1])
    assert (m0 == m0[:1]).all() and (m1 == m1[:1]).all()
    assert enc['keypoint_indices'].shape == (0, 2, 2)
    assert all(h.max() == 0 for h in enc['heatmaps'])


def test_packed_through_generate_target_and_pack_pose_inputs():
    codec_cfg = dict(
        type='MultiResolutionAELabel',
        input_size=(64, 64),
        heatmap_sizes=[(16, 16), (32, 32)])
    kpts = np.array([[[10., 20.], [30., 5.]]], np.float32)
    mask = np.ones((64, 64), bool)
    mask[40:, 40:] = False
    results = dict(
        img=np.zeros((64, 64, 3), np.uint8),
        keypoints=kpts,
        keypoints_visible=np.ones((1, 2), np.float32),
        heatmap_mask=mask,
        bbox=np.array([[5., 0., 35., 25.]], np.float32),
        id=[7])
    results = GenerateTarget(encoder=codec_cfg)(results)
    sample = PackPoseInputs()(results)['data_samples']
    direct = small_codec().encode(kpts, np.ones((1, 2)), heatmap_mask=mask)
    levels = sample.gt_fields
    assert levels.nlevel == 2
    for r in range(2):
        assert isinstance(levels[r].heatmaps, torch.Tensor)
        np.testing.assert_array_equal(levels[r].heatmaps.numpy(),
                                      direct['heatmaps'][r])
        assert levels[r].heatmap_mask.dtype == torch.float32
        np.testing.assert_array_equal(levels[r].heatmap_mask.numpy(),
                                      direct['heatmap_mask'][r])
        assert levels.heatmaps[r] is levels[r].heatmaps
    labels = sample.gt_instance_labels
    np.testing.assert_array_equal(labels.keypoint_indices.numpy(),
                                  direct['keypoint_indices'])
    np.testing.assert_array_equal(labels.keypoint_weights.numpy(), [[1, 1]])
    # the instance table keeps mmpose's defaults (boxes for the metric)
    np.testing.assert_array_equal(sample.gt_instances.bboxes,
                                  results['bbox'])


@pytest.mark.parametrize('kwargs, match', [
    (dict(heatmap_sizes=[]), 'heatmap_sizes'),
    (dict(heatmap_sizes=[(16, 0)]), r'heatmap_sizes\[0\]'),
    (dict(sigma=[2.0]), 'sigma'),
    (dict(sigma=-1), 'sigma'),
    (dict(input_size=(64, )), 'input_size'),
    (dict(decode_nms_kernel=4), 'decode_nms_kernel'),
])
def test_bad_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        small_codec(**kwargs)


def test_bad_input_errors():
    codec = small_codec()
    with pytest.raises(ValueError, match='keypoints must be'):
        codec.encode(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match='keypoints_visible'):
        codec.encode(np.zeros((1, 2, 2)), np.ones((1, 3)))
    with pytest.raises(ValueError, match='NaN'):
        codec.encode(np.full((1, 2, 2), np.nan), np.ones((1, 2)))
    # NaN at an unlabelled keypoint is fine (mmpose parks them anywhere)
    enc = codec.encode(
        np.array([[[np.nan, np.nan], [8., 8.]]]), np.array([[0., 1.]]))
    np.testing.assert_array_equal(enc['keypoint_indices'][0, :, 1], [0, 1])
    with pytest.raises(ValueError, match='does not match the input size'):
        codec.encode(np.zeros((1, 2, 2)), heatmap_mask=np.ones((32, 64)))
    with pytest.raises(ValueError, match='decode_keypoint_order'):
        small_codec(decode_keypoint_order=[0, 1, 2]).encode(
            np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match='tags have'):
        codec.batch_decode(torch.zeros(1, 2, 8, 8), torch.zeros(1, 3, 8, 8))


def test_decode_groups_two_synthetic_people():
    """Decoding at the 1/2 map (decode_heatmap_size): perfect heatmaps from
    encode and tags 0 / 5 per person give both people back."""
    codec = small_codec(decode_heatmap_size=(32, 32), decode_keypoint_thr=0.1)
    kpts = np.array([[[10., 20.], [30., 6.]], [[50., 50.], [40., 30.]]],
                    np.float32)
    enc = codec.encode(kpts, np.ones((2, 2)))
    hm = enc['heatmaps'][1]
    tags = np.zeros_like(hm)
    # tag of person 1 around its keypoints (Voronoi-free: far apart)
    tags[:, 13:, 18:] = 5.0
    keypoints, scores = codec.decode(hm, tags)
    assert keypoints.shape == (2, 2, 2) and scores.shape == (2, 2)
    order = np.argsort(keypoints[:, 0, 0])
    # +-0.25 sub-pixel shift on a symmetric peak is 0: exact cells x stride
    np.testing.assert_allclose(keypoints[order], kpts, atol=1e-4)
    np.testing.assert_allclose(scores, 1.0, atol=1e-6)

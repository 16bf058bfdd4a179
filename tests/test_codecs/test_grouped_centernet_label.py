"""Tests of the grouped multi-class CenterNet codec
(``GroupedCenterNetLabel``): hand-worked targets, bad input, grouping rules,
packing through mmpose's transforms, decoding against a brute-force numpy
reference, and encode -> decode round trips (synthetic and real data)."""
import json
import math
import os.path as osp
import warnings

import numpy as np
import pytest
import torch
from _helpers import shared_data_dir

import mmkp_ext  # noqa: F401  (registration)
from mmkp_ext.codecs import GroupedCenterNetLabel, gaussian_radius
from mmkp_ext.grouping import save_grouping
from mmpose.datasets.transforms import GenerateTarget, PackPoseInputs
from mmpose.registry import KEYPOINT_CODECS


def centernet_radius(h, w, m=0.7):
    """CenterNet's three roots (utils/image.py), smallest one."""
    a1, b1, c1 = 1, h + w, w * h * (1 - m) / (1 + m)
    r1 = (b1 + math.sqrt(b1**2 - 4 * a1 * c1)) / 2
    a2, b2, c2 = 4, 2 * (h + w), (1 - m) * w * h
    r2 = (b2 + math.sqrt(b2**2 - 4 * a2 * c2)) / 2
    a3, b3, c3 = 4 * m, -2 * m * (h + w), (m - 1) * w * h
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def small_codec(**kwargs):
    """Input 32x32, output 8x8, K=4 in two classes (0-1, 2-3)."""
    cfg = dict(
        input_size=(32, 32),
        heatmap_size=(8, 8),
        num_keypoints=4,
        category_keypoints=[(0, 1), (2, 3)],
        reg_group=[0, 1, 0, 1],
        hm_group=[0, 1, 2, 0])
    cfg.update(kwargs)
    return GroupedCenterNetLabel(**cfg)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


# ----------------------------------------------------------------------
# encoding
# ----------------------------------------------------------------------
@pytest.mark.parametrize('h, w', [(4, 4), (5, 5), (3, 17), (40, 12),
                                  (128, 128), (1, 1)])
def test_gaussian_radius_matches_three_root_formula(h, w):
    assert gaussian_radius(h, w) == pytest.approx(
        centernet_radius(h, w), rel=1e-12)
    assert gaussian_radius(h, w, 0.5) == pytest.approx(
        centernet_radius(h, w, 0.5), rel=1e-12)


def test_encode_hand_worked_case():
    codec = small_codec()
    # box (4, 8, 22, 26) input px -> (1, 2, 5.5, 6.5) output px
    bbox = np.array([[4.0, 8.0, 22.0, 26.0]])
    kpts = np.array([[[10.0, 12.0], [0.0, 0.0], [8.0, 8.0], [9.0, 9.0]]])
    vis = np.array([[1.0, 0.0, 1.0, 1.0]])  # 2, 3: other class -> ignored
    enc = codec.encode(kpts, vis, bbox, np.array([1]))

    r = max(0, int(centernet_radius(math.ceil(4.5), math.ceil(4.5))))
    assert r == 1
    sigma = (2 * r + 1) / 6
    ch = enc['center_heatmap']
    assert ch.shape == (2, 8, 8)
    # centre (3.25, 4.25) -> cell (x=3, y=4)
    assert ch[0, 4, 3] == 1.0
    assert ch[0, 4, 4] == pytest.approx(math.exp(-1 / (2 * sigma**2)))
    assert ch[0, 5, 4] == pytest.approx(math.exp(-2 / (2 * sigma**2)))
    assert ch[0, 4, 5] == 0.0  # outside the 3x3 window
    assert ch[1].max() == 0.0  # class 1 absent
    assert (ch[0] > 0).sum() == 9
    assert enc['center_index'].tolist() == [4 * 8 + 3]
    np.testing.assert_allclose(enc['center_offset'], [[0.25, 0.25]])
    np.testing.assert_allclose(enc['box_size'], [[4.5, 4.5]])
    assert enc['center_mask'].tolist() == [1.0]
    assert enc['class_index'].tolist() == [0]
    # keypoint 0 at (2.5, 3.0) output px: reg = kp - ct_int = (-0.5, -1)
    # in group reg_group[0] = 0; keypoint 1 unlabelled -> group 1 masked
    np.testing.assert_allclose(enc['keypoint_reg'], [[-0.5, -1.0, 0, 0]])
    np.testing.assert_array_equal(enc['keypoint_reg_mask'], [[1, 1, 0, 0]])
    assert enc['keypoint_index'].tolist() == [[3 * 8 + 2, 0, 0, 0]]
    np.testing.assert_allclose(enc['keypoint_offset'][0, 0], [0.5, 0.0])
    np.testing.assert_array_equal(enc['keypoint_offset_mask'][0],
                                  [[1, 1], [0, 0], [0, 0], [0, 0]])
    kh = enc['keypoint_heatmap']
    assert kh.shape == (3, 8, 8)
    assert kh[0, 3, 2] == 1.0  # hm_group[0] = 0, same radius as the centre
    assert kh[0, 3, 3] == pytest.approx(math.exp(-1 / (2 * sigma**2)))
    assert kh[1].max() == 0.0 and kh[2].max() == 0.0
    # class 0 owns keypoints 0, 1 -> channels hm_group[0, 1] = {0, 1}
    assert enc['keypoint_channel_mask'].tolist() == [True, True, False]


def test_gaussians_are_max_merged():
    codec = small_codec()
    bbox = np.array([[4.0, 8.0, 22.0, 26.0], [8.0, 8.0, 26.0, 26.0]])
    enc = codec.encode(
        np.zeros((2, 4, 2)), np.zeros((2, 4)), bbox, np.array([1, 1]))
    # centres at cells (3, 4) and (4, 4), radius 1, sigma 0.5: each one's
    # peak stays 1 and the neighbour value exp(-2) does not add up
    ch = enc['center_heatmap'][0]
    assert ch[4, 3] == 1.0 and ch[4, 4] == 1.0
    assert ch[4, 5] == pytest.approx(math.exp(-2))
    assert ch[3, 3] == pytest.approx(math.exp(-2))  # max(e^-2, e^-4)


def test_encode_is_vectorised_over_objects_consistently():
    """Encoding objects together equals the elementwise max / union of
    encoding them one by one."""
    codec = small_codec()
    rng = np.random.default_rng(0)
    bbox = np.array([[2, 3, 20, 25], [10, 1, 31, 14], [0, 16, 12, 31.0]])
    kpts = rng.uniform(0, 32, (3, 4, 2))
    vis = np.ones((3, 4))
    cats = np.array([1, 2, 1])
    full = codec.encode(kpts, vis, bbox, cats)
    parts = [
        codec.encode(kpts[i:i + 1], vis[i:i + 1], bbox[i:i + 1], cats[i:i + 1])
        for i in range(3)
    ]
    for key in ('center_heatmap', 'keypoint_heatmap'):
        np.testing.assert_array_equal(full[key],
                                      np.max([p[key] for p in parts], axis=0))
    for key in ('keypoint_reg', 'keypoint_reg_mask', 'keypoint_index',
                'keypoint_offset', 'center_index', 'box_size'):
        np.testing.assert_array_equal(full[key],
                                      np.concatenate([p[key] for p in parts]))


def test_zero_area_box_skips_the_object():
    codec = small_codec()
    bbox = np.array([[4.0, 8.0, 4.0, 26.0], [4.0, 8.0, 22.0, 26.0]])
    kpts = np.full((2, 4, 2), 12.0)
    enc = codec.encode(kpts, np.ones((2, 4)), bbox, np.array([2, 1]))
    assert enc['center_mask'].tolist() == [0.0, 1.0]
    assert enc['center_heatmap'][1].max() == 0.0  # class of object 0
    assert enc['box_size'][0].tolist() == [0.0, 0.0]
    assert enc['keypoint_reg_mask'][0].sum() == 0
    assert enc['keypoint_offset_mask'][0].sum() == 0
    # object 1 (class 0) draws on channels {0, 1}; object 0's channel 2
    # stays empty and does not count as present
    assert enc['keypoint_heatmap'][2].max() == 0.0
    assert enc['keypoint_channel_mask'].tolist() == [True, True, False]
    # a box entirely outside the image clips to zero area as well
    enc = codec.encode(kpts[:1], np.ones((1, 4)),
                       np.array([[40.0, 2.0, 50.0, 9.0]]), np.array([1]))
    assert enc['center_mask'].tolist() == [0.0]
    assert enc['center_heatmap'].max() == 0.0


def test_keypoints_outside_the_map_and_nan_are_dropped():
    codec = small_codec()
    bbox = np.array([[0.0, 0.0, 31.0, 31.0]])
    kpts = np.array([[[-0.5, 10.0], [32.0, 4.0], [np.nan, 3.0], [5.0,
                                                                 np.inf]]])
    # one class owning all keypoints, ungrouped
    codec2 = small_codec(
        category_keypoints=None, reg_group=None, hm_group=None)
    for c in (codec, codec2):
        enc = c.encode(kpts, np.ones((1, 4)), bbox, np.array([1]))
        assert enc['keypoint_offset_mask'].sum() == 0
        assert enc['keypoint_reg_mask'].sum() == 0
        assert enc['keypoint_heatmap'].max() == 0.0
        for key, value in enc.items():
            assert np.isfinite(value).all(), key
    # x = 31.9 input px -> 7.975 output px is still inside
    enc = codec2.encode(
        np.array([[[31.9, 1.0], [0, 0], [0, 0], [0, 0]]]),
        np.array([[1, 0, 0, 0]]), bbox, None)
    assert enc['keypoint_offset_mask'][0, 0].tolist() == [1, 1]
    assert enc['keypoint_index'][0, 0] == 0 * 8 + 7


def test_nan_box_is_skipped():
    codec = small_codec()
    enc = codec.encode(
        np.full((1, 4, 2), 8.0), np.ones((1, 4)),
        np.array([[np.nan, 2, 20, 20]]), np.array([1]))
    assert enc['center_mask'].tolist() == [0.0]
    assert all(np.isfinite(v).all() for v in enc.values())


@pytest.mark.parametrize('cat, shown', [(3, '3'), (0, '0'), (1.5, '1.5'),
                                        (np.nan, 'nan')])
def test_unknown_category_id_names_the_id(cat, shown):
    codec = small_codec()
    with pytest.raises(ValueError, match=f'unknown category_id {shown}'):
        codec.encode(
            np.zeros((2, 4, 2)), np.ones((2, 4)),
            np.array([[0, 0, 9, 9], [1, 1, 8, 8.0]]), np.array([1, cat]))


def test_missing_category_id_with_several_classes():
    with pytest.raises(ValueError, match='category_id is required'):
        small_codec().encode(
            np.zeros((1, 4, 2)), np.ones((1, 4)), np.array([[0, 0, 9, 9.]]))


def test_no_objects_gives_empty_shaped_targets():
    codec = small_codec()
    enc = codec.encode(
        np.zeros((0, 4, 2)), np.zeros((0, 4)), np.zeros((0, 4)),
        np.zeros(0, dtype=np.int64))
    assert enc['center_heatmap'].shape == (2, 8, 8)
    assert enc['keypoint_heatmap'].shape == (3, 8, 8)
    assert enc['center_heatmap'].max() == 0 == enc['keypoint_heatmap'].max()
    shapes = dict(
        center_index=(0, ),
        center_mask=(0, ),
        center_offset=(0, 2),
        box_size=(0, 2),
        class_index=(0, ),
        keypoint_reg=(0, 4),
        keypoint_reg_mask=(0, 4),
        keypoint_index=(0, 4),
        keypoint_offset=(0, 4, 2),
        keypoint_offset_mask=(0, 4, 2))
    for key, shape in shapes.items():
        assert enc[key].shape == shape, key
    assert enc['keypoint_channel_mask'].tolist() == [False] * 3


def test_bad_shapes_and_arguments():
    codec = small_codec()
    with pytest.raises(ValueError, match=r'keypoints must have shape'):
        codec.encode(
            np.zeros((1, 3, 2)), None, np.zeros((1, 4)), np.array([1]))
    with pytest.raises(ValueError, match=r'bbox must have shape \(1, 4\)'):
        codec.encode(
            np.zeros((1, 4, 2)), None, np.zeros((2, 4)), np.array([1]))
    with pytest.raises(ValueError, match=r'keypoints_visible must have'):
        codec.encode(
            np.zeros((1, 4, 2)), np.ones((1, 3)), np.zeros((1, 4)),
            np.array([1]))
    with pytest.raises(ValueError, match='category_id has 2 entries'):
        codec.encode(
            np.zeros((1, 4, 2)), None, np.zeros((1, 4)), np.array([1, 1]))
    with pytest.raises(
            ValueError,
            match='reg_group has 3 entries but there '
            'are 4 keypoints'):
        small_codec(reg_group=[0, 1, 0])
    with pytest.raises(ValueError, match='hm_group has 5 entries'):
        small_codec(hm_group=[0, 1, 2, 0, 1])
    with pytest.raises(ValueError, match='decode_mode'):
        small_codec(decode_mode='argmax')
    with pytest.raises(ValueError, match='heatmap_size'):
        small_codec(heatmap_size=(8, 0))


def test_grouping_file_argument(tmp_path):
    path = tmp_path / 'g.json'
    save_grouping(path, [0, 1, 0, 1], [0, 1, 2, 0], 'manual', 'test')
    codec = small_codec(reg_group=None, hm_group=None, grouping_file=str(path))
    assert codec.reg_group == [0, 1, 0, 1] and codec.hm_group == [0, 1, 2, 0]
    assert codec.num_output_channels == 2 + 2 + 2 + 4 + 3 + 2
    with pytest.raises(ValueError, match='either grouping_file'):
        small_codec(grouping_file=str(path))
    save_grouping(path, [0, 1, 0], [0, 1, 2], 'manual', 'test')
    with pytest.raises(ValueError, match='for 3 keypoints but 4'):
        small_codec(reg_group=None, hm_group=None, grouping_file=str(path))


def test_identity_grouping_channel_count_deepfashion2():
    codec = GroupedCenterNetLabel((512, 512), (128, 128), 294, 'deepfashion2')
    assert codec.num_output_channels == 901
    assert codec.num_classes == 13


def test_inconsistent_grouping_is_refused_with_pairs():
    with pytest.raises(ValueError, match=r'2 pair\(s\).*\(0, 1\), \(2, 3\)'):
        small_codec(reg_group=[0, 0, 1, 1])


def test_allow_inconsistent_rule_lowest_index_wins():
    with pytest.warns(
            UserWarning, match=r'keypoints \[1, 3\] get no '
            'regression target'):
        codec = small_codec(
            reg_group=[0, 0, 1, 1],
            hm_group=[0, 1, 2, 3],
            allow_inconsistent=True)
    bbox = np.array([[0.0, 0.0, 31.0, 31.0], [0.0, 0.0, 31.0, 31.0]])
    kpts = np.array([[[4.0, 4.0], [20.0, 8.0], [0, 0], [0, 0]],
                     [[0, 0], [0, 0], [8.0, 8.0], [12.0, 24.0]]])
    vis = np.array([[1, 1, 0, 0], [0, 0, 0, 1.0]])
    enc = codec.encode(kpts, vis, bbox, np.array([1, 2]))
    ct_int = np.array([3, 3])  # centre (3.875, 3.875)
    # object 0: keypoint 0 owns group 0; keypoint 1 is masked out
    np.testing.assert_allclose(enc['keypoint_reg'][0, :2],
                               np.array([1.0, 1.0]) - ct_int)
    assert enc['keypoint_reg_mask'][0].tolist() == [1, 1, 0, 0]
    # object 1: only keypoint 3 is labelled, but keypoint 2 owns group 1
    # for class 1, so nothing is written (static rule)
    assert enc['keypoint_reg_mask'][1].tolist() == [0, 0, 0, 0]
    # heatmaps and offsets of the masked keypoints are still targets
    assert enc['keypoint_heatmap'][1, 2, 5] == 1.0
    assert enc['keypoint_heatmap'][3, 6, 3] == 1.0
    assert enc['keypoint_offset_mask'][1, 3].tolist() == [1, 1]


def test_undecodable_pairs_are_named_in_the_warning():
    with pytest.warns(
            UserWarning, match=r'pairs \[\(0, 1\)\] also share a '
            'heatmap group'):
        small_codec(
            reg_group=[0, 0, 1, 2],
            hm_group=[0, 0, 1, 2],
            allow_inconsistent=True)


# ----------------------------------------------------------------------
# packing through mmpose's transforms
# ----------------------------------------------------------------------
def test_generate_target_and_pack_deliver_every_key():
    cfg = dict(
        type='GroupedCenterNetLabel',
        input_size=(32, 32),
        heatmap_size=(8, 8),
        num_keypoints=4,
        category_keypoints=[(0, 1), (2, 3)],
        reg_group=[0, 1, 0, 1],
        hm_group=[0, 1, 2, 0])
    codec = KEYPOINT_CODECS.build(cfg)
    packed_keys = (
        set(codec.label_mapping_table) | set(codec.field_mapping_table))
    enc = small_codec().encode(
        np.zeros((0, 4, 2)), None, np.zeros((0, 4)), np.zeros(0))
    assert packed_keys == set(enc) - {'keypoint_channel_mask'}

    for n in (2, 0):
        results = dict(
            img=np.zeros((32, 32, 3), np.uint8),
            keypoints=np.full((n, 4, 2), 10.0, np.float32),
            keypoints_visible=np.ones((n, 4), np.float32),
            bbox=np.tile(np.array([[2, 2, 20, 20]], np.float32), (n, 1)),
            category_id=np.array([1, 2][:n]),
            id=list(range(n)),
            img_id=7)
        results = GenerateTarget(encoder=cfg)(results)
        sample = PackPoseInputs()(results)['data_samples']
        assert sample.gt_fields.center_heatmap.shape == (2, 8, 8)
        assert sample.gt_fields.keypoint_heatmap.shape == (3, 8, 8)
        labels = sample.gt_instance_labels
        for key in codec.label_mapping_table:
            assert isinstance(labels.get(key), torch.Tensor), key
            assert labels.get(key).shape[0] == n, key
        assert labels.keypoint_reg.shape == (n, 4)
        assert labels.center_index.dtype == torch.int64
        assert sample.gt_instances.category_id.tolist() == [1, 2][:n]
        assert sample.gt_instances.bboxes.shape == (n, 4)


# ----------------------------------------------------------------------
# decoding
# ----------------------------------------------------------------------
def ref_nms(h):
    """3x3 local maxima (-inf padding) of (C, H, W) in numpy."""
    C, H, W = h.shape
    p = np.full((C, H + 2, W + 2), -np.inf)
    p[:, 1:-1, 1:-1] = h
    m = np.max([p[:, i:i + H, j:j + W] for i in range(3) for j in range(3)],
               axis=0)
    return h == m


def ref_decode(codec, out, mode, sigma, topk):
    """Brute-force decode of one image, written from the spec with loops
    over objects and keypoints (numpy, float64)."""
    ch = out['center_heatmap'].astype(np.float64)
    C, H, W = ch.shape
    peaks = np.where(ref_nms(ch), sigmoid(ch), 0.0).reshape(-1)
    order = np.argsort(-peaks, kind='stable')[:topk]
    kh = sigmoid(out['keypoint_heatmap'].astype(np.float64))
    koff = out['keypoint_offset']
    rows, cols = np.mgrid[0:H, 0:W]
    res = []
    for ind in order:
        c, pix = divmod(int(ind), H * W)
        y, x = divmod(pix, W)
        cx = x + out['center_offset'][0, y, x]
        cy = y + out['center_offset'][1, y, x]
        bw, bh = out['box_size'][:, y, x]
        box = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
        kps = np.zeros((codec.num_keypoints, 2))
        scores = np.zeros(codec.num_keypoints)
        first, last = codec.category_ranges[c]
        for k in range(first, last + 1):
            g = codec.reg_group[k]
            px = x + out['keypoint_reg'][2 * g, y, x]
            py = y + out['keypoint_reg'][2 * g + 1, y, x]
            hmap = kh[codec.hm_group[k]]
            if mode == 'rescore':
                # distance to cell centres: cell j covers [j, j + 1)
                mask = np.exp(-((cols + 0.5 - px)**2 + (rows + 0.5 - py)**2)
                              / (2 * sigma**2))
                i, j = np.unravel_index(np.argmax(hmap * mask), hmap.shape)
                kps[k] = (j + koff[0, i, j], i + koff[1, i, j])
                scores[k] = hmap[i, j]
            else:
                pk = np.where(ref_nms(hmap[None])[0], hmap, 0).reshape(-1)
                top = np.argsort(-pk, kind='stable')[:topk]
                best, best_d = None, np.inf
                for t in top:
                    if pk[t] < codec.nearest_score_thr:
                        continue
                    i, j = divmod(int(t), W)
                    qx, qy = j + koff[0, i, j], i + koff[1, i, j]
                    d = math.hypot(qx - px, qy - py)
                    if d < best_d:
                        best, best_d = (qx, qy, pk[t]), d
                size = max(box[2] - box[0], box[3] - box[1])
                if (best is None or not box[0] <= best[0] <= box[2]
                        or not box[1] <= best[1] <= box[3]
                        or best_d > codec.nearest_dist_ratio * size):
                    kps[k] = (px, py)
                    fx, fy = math.floor(px), math.floor(py)
                    inside = 0 <= fx < W and 0 <= fy < H
                    scores[k] = hmap[fy, fx] if inside else 0.0
                else:
                    kps[k] = best[:2]
                    scores[k] = best[2]
        res.append((c + 1, peaks[ind], box, kps, scores))
    return res


def random_outputs(codec, H, W, seed, B=1):
    g = torch.Generator().manual_seed(seed)
    chans = dict(
        center_heatmap=codec.num_classes,
        center_offset=2,
        box_size=2,
        keypoint_reg=2 * codec.num_reg_groups,
        keypoint_heatmap=codec.num_hm_groups,
        keypoint_offset=2)
    out = {k: torch.randn(B, c, H, W, generator=g) for k, c in chans.items()}
    out['center_heatmap'] = out['center_heatmap'] * 3
    out['keypoint_heatmap'] = out['keypoint_heatmap'] * 3
    out['box_size'] = out['box_size'].abs() * 6 + 2
    out['keypoint_reg'] = out['keypoint_reg'] * 5
    out['keypoint_offset'] = out['keypoint_offset'].sigmoid()
    out['center_offset'] = out['center_offset'].sigmoid()
    return out


# window 0.3: most queries take the exact whole-map fallback; 50: the
# window covers the map; chunk 400: objects / channels in several chunks.
@pytest.mark.parametrize('mode, window, chunk', [('rescore', 4.0, 1 << 22),
                                                 ('rescore', 0.3, 1 << 22),
                                                 ('rescore', 50.0, 1 << 22),
                                                 ('rescore', 1.0, 400),
                                                 ('nearest', 4.0, 1 << 22),
                                                 ('nearest', 4.0, 400)])
def test_batch_decode_matches_brute_force_reference(mode, window, chunk):
    codec = small_codec(
        input_size=(80, 64),
        heatmap_size=(20, 16),
        num_keypoints=7,
        category_keypoints=[(0, 2), (3, 6)],
        reg_group=[0, 1, 2, 0, 1, 2, 3],
        hm_group=[0, 1, 2, 3, 0, 1, 2],
        rescore_sigma=1.5,
        rescore_window=window,
        chunk_elements=chunk,
        topk=12,
        nearest_score_thr=0.6)
    out = random_outputs(codec, 16, 20, seed=3, B=2)
    dec = codec.batch_decode(**out, decode_mode=mode)
    assert dec['keypoints'].shape == (2, 12, 7, 2)
    stride = np.array([4.0, 4.0])
    for b in range(2):
        ref = ref_decode(codec, {
            k: v[b].numpy()
            for k, v in out.items()
        }, mode, 1.5, 12)
        for n, (cat, score, box, kps, scores) in enumerate(ref):
            assert dec['category_id'][b, n].item() == cat
            assert dec['bbox_scores'][b, n].item() == pytest.approx(
                score, abs=1e-6)
            np.testing.assert_allclose(
                dec['bboxes'][b, n].numpy(),
                box * np.tile(stride, 2),
                atol=1e-4)
            np.testing.assert_allclose(
                dec['keypoints'][b, n].numpy(), kps * stride, atol=1e-4)
            np.testing.assert_allclose(
                dec['keypoint_scores'][b, n].numpy(), scores, atol=1e-6)


def test_numpy_decode_equals_batch_decode_and_probabilities_input():
    codec = small_codec(topk=5)
    out = random_outputs(codec, 8, 8, seed=1)
    batch = codec.batch_decode(**out)
    single = codec.decode({k: v[0].numpy() for k, v in out.items()})
    for key in batch:
        np.testing.assert_allclose(single[key], batch[key][0].numpy())
    probs = dict(out)
    probs['center_heatmap'] = out['center_heatmap'].sigmoid()
    probs['keypoint_heatmap'] = out['keypoint_heatmap'].sigmoid()
    for mode in ('rescore', 'nearest'):
        a = codec.batch_decode(**out, decode_mode=mode)
        p = codec.batch_decode(**probs, logits=False, decode_mode=mode)
        for key in a:
            np.testing.assert_allclose(
                a[key].numpy(), p[key].numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match='keypoint_reg must have shape'):
        bad = dict(out)
        bad['keypoint_reg'] = out['keypoint_reg'][:, :2]
        codec.batch_decode(**bad)


def hand_outputs(codec, H=16, W=16):
    """One class-0 object at cell (8, 8) of a 16x16 map, box 14x14, whose
    keypoint 0 regresses to (11, 8). Keypoint channel 0 (keypoint 0) has a
    weak peak P1 = (12, 8), 1 px from the coarse point, prob 0.3, and a
    strong peak P2 = (14, 8), 3 px away, prob 0.95; offsets (0.25, 0.5) at
    P1 and (0.1, 0.2) at P2."""
    lo = math.log(1e-4 / (1 - 1e-4))

    def logit(p):
        return math.log(p / (1 - p))

    out = {
        'center_heatmap': np.full((codec.num_classes, H, W), lo),
        'center_offset': np.zeros((2, H, W)),
        'box_size': np.zeros((2, H, W)),
        'keypoint_reg': np.zeros((2 * codec.num_reg_groups, H, W)),
        'keypoint_heatmap': np.full((codec.num_hm_groups, H, W), lo),
        'keypoint_offset': np.zeros((2, H, W)),
    }
    out['center_heatmap'][0, 8, 8] = logit(0.9)
    out['box_size'][:, 8, 8] = 14.0
    out['keypoint_reg'][0:2, 8, 8] = (3.0, 0.0)
    out['keypoint_heatmap'][0, 8, 12] = logit(0.3)
    out['keypoint_heatmap'][0, 8, 14] = logit(0.95)
    out['keypoint_offset'][:, 8, 12] = (0.25, 0.5)
    out['keypoint_offset'][:, 8, 14] = (0.1, 0.2)
    return out


def test_rescore_and_nearest_differ_on_a_hand_built_case():
    # topk=5: object 0 is the only real one (the rest are background
    # cells); also 5 peaks per channel for 'nearest'
    codec = small_codec(input_size=(64, 64), heatmap_size=(16, 16), topk=5)
    out = hand_outputs(codec)
    nearest = codec.batch_decode(
        **{
            k: torch.as_tensor(v)[None].float()
            for k, v in out.items()
        },
        decode_mode='nearest')
    # nearest: P1 is the nearest peak above 0.1, inside the box [1, 15] and
    # within 0.3 * 14 = 4.2 px -> (12.25, 8.5) output px, score 0.3
    np.testing.assert_allclose(
        nearest['keypoints'][0, 0, 0].numpy() / 4, [12.25, 8.5], atol=1e-5)
    assert nearest['keypoint_scores'][0, 0, 0].item() == pytest.approx(0.3)

    def rescore(sigma):
        return codec.batch_decode(
            **{
                k: torch.as_tensor(v)[None].float()
                for k, v in out.items()
            },
            decode_mode='rescore',
            rescore_sigma=sigma)

    # sigma 3: P2 0.95 * exp(-9/18) = 0.576 > P1 0.3 * exp(-1/18) = 0.284
    wide = rescore(3.0)
    np.testing.assert_allclose(
        wide['keypoints'][0, 0, 0].numpy() / 4, [14.1, 8.2], atol=1e-5)
    assert wide['keypoint_scores'][0, 0, 0].item() == pytest.approx(0.95)
    # sigma 1: P2 0.95 * exp(-4.5) = 0.0106 < P1 0.3 * exp(-0.5) = 0.182
    narrow = rescore(1.0)
    np.testing.assert_allclose(
        narrow['keypoints'][0, 0, 0].numpy() / 4, [12.25, 8.5], atol=1e-5)
    # keypoint 1 (class 0, channel 1: background) and the other class's
    # keypoints (2, 3: zero, score 0)
    assert wide['keypoint_scores'][0, 0, 2:].tolist() == [0.0, 0.0]
    assert wide['keypoints'][0, 0, 2:].abs().sum().item() == 0.0


def test_nearest_falls_back_to_the_coarse_point():
    codec = small_codec(input_size=(64, 64), heatmap_size=(16, 16), topk=5)
    lo = math.log(1e-4 / (1 - 1e-4))
    # box 6x6 -> 0.3 * 6 = 1.8 px < 3 px to P2; P1 removed -> coarse kept
    out = hand_outputs(codec)
    out['box_size'][:, 8, 8] = 6.0
    out['keypoint_heatmap'][0, 8, 12] = lo
    t = {k: torch.as_tensor(v)[None].float() for k, v in out.items()}
    dec = codec.batch_decode(**t, decode_mode='nearest')
    np.testing.assert_allclose(
        dec['keypoints'][0, 0, 0].numpy() / 4, [11.0, 8.0], atol=1e-5)
    assert dec['keypoint_scores'][0, 0, 0].item() == pytest.approx(1e-4)
    # a peak below the 0.1 threshold right at the coarse point is ignored
    out['box_size'][:, 8, 8] = 14.0
    out['keypoint_heatmap'][0, 8, 14] = lo
    out['keypoint_heatmap'][0, 8, 11] = math.log(0.05 / 0.95)
    t = {k: torch.as_tensor(v)[None].float() for k, v in out.items()}
    dec = codec.batch_decode(**t, decode_mode='nearest')
    np.testing.assert_allclose(
        dec['keypoints'][0, 0, 0].numpy() / 4, [11.0, 8.0], atol=1e-5)
    assert dec['keypoint_scores'][0, 0, 0].item() == pytest.approx(0.05)
    # ... while rescore takes it (it is the only non-background cell)
    dec = codec.batch_decode(**t, decode_mode='rescore')
    np.testing.assert_allclose(
        dec['keypoints'][0, 0, 0].numpy() / 4, [11.0, 8.0], atol=1e-5)


# ----------------------------------------------------------------------
# round trips
# ----------------------------------------------------------------------
def check_round_trip(codec,
                     kpts,
                     vis,
                     bbox,
                     cats,
                     modes=('rescore', 'nearest')):
    """Decode ideal outputs built from the targets; every encoded object is
    found once with its category and box, every labelled keypoint of its
    category within one output pixel."""
    enc = codec.encode(kpts, vis, bbox, cats)
    out = codec.targets_to_outputs(enc)
    stride = codec.stride
    W, H = codec.heatmap_size
    wanted = np.flatnonzero(enc['center_mask'] > 0)
    # boxes as encoded: clipped to the output map
    clip = bbox / np.tile(stride, 2)
    clip[:, 0::2] = clip[:, 0::2].clip(0, W - 1)
    clip[:, 1::2] = clip[:, 1::2].clip(0, H - 1)
    clip *= np.tile(stride, 2)
    for mode in modes:
        dec = codec.batch_decode(
            **{
                k: torch.as_tensor(v)[None]
                for k, v in out.items()
            },
            decode_mode=mode)
        dec = {k: v[0].numpy() for k, v in dec.items()}
        found = np.flatnonzero(dec['bbox_scores'] > 0.5)
        assert len(found) == len(wanted), mode
        for j in found:
            i = int(np.argmin(np.abs(clip[wanted] - dec['bboxes'][j]).sum(1)))
            i = wanted[i]
            assert dec['category_id'][j] == cats[i]
            np.testing.assert_allclose(dec['bboxes'][j], clip[i], atol=1e-3)
            lab = enc['keypoint_offset_mask'][i, :, 0] > 0
            err = np.abs(dec['keypoints'][j] - kpts[i, :, :2]) / stride
            assert err[lab].max(initial=0) <= 1.0, (mode, i, err[lab].max())
            assert (dec['keypoint_scores'][j][lab] > 0.5).all()
            first, last = codec.category_ranges[cats[i] - 1]
            outside = np.ones(codec.num_keypoints, bool)
            outside[first:last + 1] = False
            assert (dec['keypoint_scores'][j][outside] == 0).all()
            assert (dec['keypoints'][j][outside] == 0).all()
    return enc


def test_round_trip_grouped_multi_class():
    """Three classes; regression groups merge keypoints of different
    classes, heatmap groups too (never two of one class)."""
    ranges = [(0, 4), (5, 9), (10, 12)]
    reg = [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2]
    hm = [0, 1, 2, 3, 4, 1, 2, 3, 4, 5, 5, 0, 1]
    codec = GroupedCenterNetLabel((128, 96), (32, 24),
                                  13,
                                  ranges,
                                  reg_group=reg,
                                  hm_group=hm,
                                  topk=20,
                                  rescore_sigma=1.0)
    rng = np.random.default_rng(7)
    boxes = np.array([[4, 4, 60, 50], [70, 10, 124, 90], [20, 52, 70, 95],
                      [64, 2, 100, 30]], float)
    cats = np.array([1, 2, 3, 2])
    kpts = np.zeros((4, 13, 2))
    vis = np.zeros((4, 13))
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        first, last = ranges[cats[i] - 1]
        n = last - first + 1
        kpts[i, first:last + 1] = np.stack(
            [rng.uniform(x1, x2, n),
             rng.uniform(y1, y2, n)], -1)
        vis[i, first:last + 1] = rng.uniform(size=n) > 0.2
    check_round_trip(codec, kpts, vis, boxes, cats)


def resized_annotations(json_path, input_size, num_keypoints):
    """Per image: keypoints (N, K, 2), visibility, xyxy boxes and category
    ids scaled from the image to ``input_size`` (a plain resize)."""
    with open(json_path) as f:
        coco = json.load(f)
    w_in, h_in = input_size
    out = []
    for img in coco['images']:
        anns = [a for a in coco['annotations'] if a['image_id'] == img['id']]
        sx, sy = w_in / img['width'], h_in / img['height']
        k = np.array([a['keypoints'] for a in anns],
                     float).reshape(len(anns), num_keypoints, 3)
        kpts = k[..., :2] * (sx, sy)
        vis = np.minimum(k[..., 2], 1)
        b = np.array([a['bbox'] for a in anns], float)
        boxes = np.stack([
            b[:, 0] * sx, b[:, 1] * sy, (b[:, 0] + b[:, 2]) * sx,
            (b[:, 1] + b[:, 3]) * sy
        ], -1)
        cats = np.array([a['category_id'] for a in anns])
        out.append((kpts, vis, boxes, cats))
    return out


def real_file(*parts):
    path = osp.join(shared_data_dir(), *parts)
    if not osp.isfile(path):
        pytest.skip(f'real-data fixture {path} not available')
    return path


def test_round_trip_real_deepfashion2():
    path = real_file('deepfashion2', 'deepfashion2.json')
    codec = GroupedCenterNetLabel((512, 512), (128, 128), 294, 'deepfashion2')
    total = 0
    for kpts, vis, boxes, cats in resized_annotations(path, (512, 512), 294):
        assert set(cats.tolist()) == {11}
        enc = check_round_trip(codec, kpts, vis, boxes, cats)
        # every labelled keypoint of the annotation is a target
        assert enc['keypoint_offset_mask'][..., 0].sum() == (vis > 0).sum()
        total += int((vis > 0).sum())
    assert total > 50


def test_round_trip_real_coco():
    path = real_file('coco', 'test_coco.json')
    codec = GroupedCenterNetLabel((512, 512), (128, 128), 17, 'coco')
    total = 0
    for kpts, vis, boxes, cats in resized_annotations(path, (512, 512), 17):
        enc = check_round_trip(codec, kpts, vis, boxes, cats)
        assert enc['keypoint_offset_mask'][..., 0].sum() == (vis > 0).sum()
        total += int((vis > 0).sum())
    assert total > 100


def test_warnings_are_not_raised_for_consistent_groupings():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        small_codec()

"""Tests of ``MultiResolutionAELabel`` (HigherHRNet / SWAHR targets + AE
grouping): hand-worked targets, packing through mmpose's GenerateTarget and
PackPoseInputs, bad input, and on the real COCO / CrowdPose fixtures through
mmpose's bottom-up datasets and pipelines: peaks, indices, ignore masks and
AP 1.0 from perfect heatmaps + tags through mmpose's CocoMetric."""
import json
import os.path as osp
import warnings

import cv2
import numpy as np
import pytest
import torch
import xtcocotools.mask as cocomask
from mmengine.registry import init_default_scope
from _helpers import shared_data_dir

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


def authors_heatmaps(joints, size, sigma):
    """Transcription of the authors' ``HeatmapGenerator.__call__``
    (HigherHRNet ``lib/dataset/target_generators/target_generators.py``,
    same in SWAHR), generalised to a (W, H) map: a kernel of
    ``6 sigma + 3`` samples centred at ``3 sigma + 1`` is pasted at
    ``[round(c - 3 sigma - 1), round(c + 3 sigma + 2))`` around the cell
    ``c = int(joint)`` of every joint with visibility > 0, clipped to the
    map, max-merged. ``joints``: ``(N, K, 3)`` in map pixels + visibility.
    Returns float32 ``(K, H, W)``."""
    W, H = size
    ticks = np.arange(0, 6 * sigma + 3, 1, float)
    mid = 3 * sigma + 1
    kernel = np.exp(-((ticks[None, :] - mid)**2 +
                      (ticks[:, None] - mid)**2) / (2 * sigma**2))
    out = np.zeros((joints.shape[1], H, W), dtype=np.float32)
    for person in joints:
        for k, (jx, jy, v) in enumerate(person):
            if v <= 0:
                continue
            cx, cy = int(jx), int(jy)
            if not (0 <= cx < W and 0 <= cy < H):
                continue
            left = int(np.round(cx - 3 * sigma - 1))
            top = int(np.round(cy - 3 * sigma - 1))
            right = int(np.round(cx + 3 * sigma + 2))
            bottom = int(np.round(cy + 3 * sigma + 2))
            x0, x1 = max(0, left), min(right, W)
            y0, y1 = max(0, top), min(bottom, H)
            patch = kernel[y0 - top:y1 - top, x0 - left:x1 - left]
            out[k, y0:y1, x0:x1] = np.maximum(out[k, y0:y1, x0:x1], patch)
    return out


def gaussian_reference(size, centers, sigma):
    """The authors' target of one keypoint channel with Gaussians on the
    integer cells ``centers`` (list of (x, y))."""
    joints = np.array([[[x, y, 1.0]] for x, y in centers], float)
    return authors_heatmaps(joints.reshape(-1, 1, 3), size, sigma)[0]


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
    # resolution 0 (stride 4): (2.5, 5) -> cell (2, 5); (7.5, 1.25) -> (7, 1);
    # (12.5, 12.5) -> (12, 12)   [cell = floor(v)]
    # resolution 1 (stride 2): (5, 10), (15, 2.5) -> (15, 2), (25, 25)
    hm0, hm1 = enc['heatmaps']
    assert hm0.shape == (2, 16, 16) and hm1.shape == (2, 32, 32)
    assert hm0.dtype == np.float32
    np.testing.assert_allclose(
        hm0[0], gaussian_reference((16, 16), [(2, 5), (12, 12)], 1.5),
        atol=1e-6)
    np.testing.assert_allclose(
        hm0[1], gaussian_reference((16, 16), [(7, 1)], 1.5), atol=1e-6)
    np.testing.assert_allclose(
        hm1[0], gaussian_reference((32, 32), [(5, 10), (25, 25)], 2.0),
        atol=1e-6)
    np.testing.assert_allclose(
        hm1[1], gaussian_reference((32, 32), [(15, 2)], 2.0), atol=1e-6)
    np.testing.assert_array_equal(
        enc['keypoint_indices'],
        [[[5 * 16 + 2, 1], [1 * 16 + 7, 1]], [[12 * 16 + 12, 1], [0, 0]]])
    assert enc['keypoint_indices'].dtype == np.int64
    np.testing.assert_array_equal(enc['keypoint_weights'], [[1, 1], [1, 0]])
    # no mask given: every pixel used
    assert [m.shape for m in enc['heatmap_mask']] == [(16, 16), (32, 32)]
    assert all(m.dtype == np.float32 and (m == 1).all()
               for m in enc['heatmap_mask'])


def test_window_reaches_3_sigma_plus_1_like_the_authors():
    """Hand-worked, sigma 2 at the 1/2 map: the authors' window is 15 x 15
    (offsets -7..7), so the pixel 7 to the right of the centre holds
    exp(-49 / 8) and the one 8 away is 0; all 225 window pixels are > 0,
    i.e. SWAHR's foreground (gt > 0) covers them."""
    codec = small_codec()
    enc = codec.encode(np.array([[[33., 31.]]], np.float32))  # cell (16, 15)
    hm = enc['heatmaps'][1][0]
    assert hm[15, 16] == 1.0
    np.testing.assert_allclose(hm[15, 16 + 7], np.exp(-49 / 8), rtol=1e-6)
    np.testing.assert_allclose(hm[15 - 7, 16 - 7], np.exp(-98 / 8),
                               rtol=1e-6)
    assert hm[15, 16 + 8] == 0 and hm[15 - 8, 16] == 0
    assert (hm > 0).sum() == 225
    ys, xs = np.nonzero(hm)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (9, 23, 8, 22)


@pytest.mark.parametrize('sigma', [1.0, 1.2, 1.5, 2.0, 2.5, 3.0])
def test_targets_match_authors_generator(sigma):
    """Random people with sub-pixel keypoints, keypoints on and next to the
    map borders, unlabelled ones, on a non-square input: both resolutions
    equal the transcription of the authors' generator (values and
    support) for integer and non-integer ``3 sigma``."""
    rng = np.random.default_rng(int(sigma * 10))
    w_in, h_in = 64, 48
    sizes = [(16, 12), (32, 24)]
    codec = small_codec(input_size=(w_in, h_in), heatmap_sizes=sizes,
                        sigma=[sigma, sigma * 1.5])
    N, K = 6, 5
    kpts = rng.uniform(0, 1, (N, K, 2)) * (w_in, h_in)
    # border cases in input pixels: first / last pixel of each map, just
    # inside the last cell, exactly on the far edge (outside)
    kpts[0] = [[0, 0], [w_in - 0.01, 5.3], [3.7, h_in - 0.01], [w_in, 10],
               [2.0, 47.5]]
    kpts = kpts.astype(np.float32)
    vis = (rng.uniform(size=(N, K)) > 0.2).astype(np.float32)
    vis[0] = 1
    enc = codec.encode(kpts, vis)
    for (W, H), s, hm in zip(sizes, codec.sigmas, enc['heatmaps']):
        joints = np.concatenate(
            [kpts * np.float32(W / w_in), vis[..., None]], -1)
        ref = authors_heatmaps(joints, (W, H), s)
        np.testing.assert_array_equal(hm > 0, ref > 0)
        np.testing.assert_allclose(hm, ref, rtol=1e-6, atol=1e-8)


def test_keypoints_outside_are_invalid_and_draw_nothing():
    codec = small_codec()
    # 0 -> cell 0 (inside); -0.1 / 4 -> cell -1 (outside); 64 / 4 -> cell 16
    # at res 0 and 32 at res 1 (outside); 63.9 -> 15 / 31 (inside)
    kpts = np.array([[[0., 10.], [-0.1, 10.], [64., 10.], [63.9, 10.]]],
                    np.float32)
    enc = codec.encode(kpts, np.ones((1, 4), np.float32))
    np.testing.assert_array_equal(enc['keypoint_indices'][0, :, 1],
                                  [1, 0, 0, 1])
    # y 10 / 4 = 2.5 -> row 2
    np.testing.assert_array_equal(enc['keypoint_indices'][0, [0, 3], 0],
                                  [2 * 16 + 0, 2 * 16 + 15])
    np.testing.assert_array_equal(enc['keypoint_weights'], [[1, 0, 0, 1]])
    for r in (0, 1):
        assert enc['heatmaps'][r][1].max() == 0
        assert enc['heatmaps'][r][2].max() == 0
        assert enc['heatmaps'][r][0].max() == 1
        assert enc['heatmaps'][r][3].max() == 1


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
    # NaN at an unlabelled keypoint is fine (mmpose parks them anywhere)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
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


def test_non_finite_labelled_keypoint_is_unlabelled_and_named():
    """Policy (as GroupedCenterNetLabel): a labelled keypoint with a NaN /
    inf coordinate becomes unlabelled, training goes on, and a warning names
    the image and the annotation. Through mmpose's GenerateTarget, which
    hands the codec img_id / img_path / id from the bottom-up results."""
    kpts = np.array([[[10., 20.], [30., 5.]], [[np.nan, 50.], [40., np.inf]]],
                    np.float32)
    vis = np.ones((2, 2), np.float32)
    results = dict(
        img=np.zeros((64, 64, 3), np.uint8),
        keypoints=kpts.copy(),
        keypoints_visible=vis.copy(),
        img_id=397133,
        img_path='data/coco/000000397133.jpg',
        id=[101, 202])
    codec_cfg = dict(type='MultiResolutionAELabel', input_size=(64, 64),
                     heatmap_sizes=[(16, 16), (32, 32)])
    with pytest.warns(UserWarning) as record:
        out = GenerateTarget(encoder=codec_cfg)(results)
    msg = str(record[0].message)
    assert 'image id 397133 (data/coco/000000397133.jpg)' in msg
    assert 'annotation id 202: keypoints [0, 1]' in msg
    assert '101' not in msg and '2 labelled keypoint(s)' in msg
    np.testing.assert_array_equal(out['keypoint_weights'], [[1, 1], [0, 0]])
    # the same targets as with those keypoints marked unlabelled
    clean = small_codec().encode(
        np.nan_to_num(kpts), np.array([[1, 1], [0, 0]], np.float32))
    for r in range(2):
        np.testing.assert_array_equal(out['heatmaps'][r],
                                      clean['heatmaps'][r])
    np.testing.assert_array_equal(out['keypoint_indices'],
                                  clean['keypoint_indices'])
    # called directly (no ids): named by instance index
    with pytest.warns(UserWarning, match=r'an image: instance 1: keypoints'
                      r' \[0, 1\]'):
        small_codec().encode(kpts, vis)


def test_decode_groups_two_synthetic_people():
    """Decoding at the 1/2 map (decode_heatmap_size): perfect heatmaps from
    encode and tags 0 / 5 per person give both people back; keypoints at
    cell centres (odd input pixels: cell j covers [2 j, 2 j + 2)) come back
    at cell + 0.5 (decode_center_shift) - 0.25 (tie) per axis."""
    codec = small_codec(decode_heatmap_size=(32, 32), decode_keypoint_thr=0.1)
    kpts = np.array([[[11., 21.], [31., 7.]], [[51., 51.], [41., 31.]]],
                    np.float32)
    enc = codec.encode(kpts, np.ones((2, 2)))
    hm = enc['heatmaps'][1]
    tags = np.zeros_like(hm)
    # tag of person 1 around its keypoints (Voronoi-free: far apart)
    tags[:, 13:, 18:] = 5.0
    keypoints, scores = codec.decode(hm, tags)
    assert keypoints.shape == (2, 2, 2) and scores.shape == (2, 2)
    order = np.argsort(keypoints[:, 0, 0])
    # on a symmetric peak the neighbours tie and the authors' quarter offset
    # is -0.25 (map px) per axis: cell + 0.5 - 0.25, i.e. 0.5 input px before
    # the keypoint at stride 2
    np.testing.assert_allclose(keypoints[order], kpts - 0.5, atol=1e-4)
    np.testing.assert_allclose(scores, 1.0, atol=1e-6)


# ----------------------------------------------------------------------
# decoding: the authors' adjust + refine
# ----------------------------------------------------------------------
def authors_quarter(hm, x, y):
    """Quarter offset of the authors' ``adjust`` / ``refine`` at integer
    (x, y) of one (H, W) heatmap: towards the larger neighbour, -0.25 on
    ties, neighbours clamped at the border."""
    H, W = hm.shape
    ox = 0.25 if hm[y, min(x + 1, W - 1)] > hm[y, max(x - 1, 0)] else -0.25
    oy = 0.25 if hm[min(y + 1, H - 1), x] > hm[max(y - 1, 0), x] else -0.25
    return ox, oy


def authors_adjust_refine(people, det, tag):
    """Transcription of HigherHRNet's ``HeatmapParser.parse`` after the
    grouping (``adjust``, person scores, ``refine``; ``lib/core/group.py``)
    for one image, loops and all.

    Args:
        people: ``(G, K, 3)`` grouped ``[x, y, value]`` at integer cells.
        det: ``(K, H, W)`` heatmaps. tag: ``(K, H, W, L)`` tags.

    Returns:
        keypoints ``(G, K, 2)`` and scores ``(G, K)`` in map pixels, person
        scores ``(G,)``.
    """
    people = np.array(people, np.float32)
    G, K = people.shape[:2]
    for g in range(G):
        for k in range(K):
            if people[g, k, 2] > 0:
                x, y = int(people[g, k, 0]), int(people[g, k, 1])
                ox, oy = authors_quarter(det[k], x, y)
                people[g, k, :2] = (x + ox + 0.5, y + oy + 0.5)
    person_scores = people[..., 2].mean(1)
    for person in people:
        seen = []
        for k in range(K):
            if person[k, 2] > 0:
                x, y = person[k, :2].astype(np.int32)
                seen.append(tag[k, y, x])
        mean_tag = np.mean(seen, axis=0)
        for k in range(K):
            dist = ((tag[k] - mean_tag[None, None, :])**2).sum(axis=2)**0.5
            y, x = np.unravel_index(np.argmax(det[k] - np.round(dist)),
                                    det[k].shape)
            value = det[k, y, x]
            ox, oy = authors_quarter(det[k], x, y)
            if value > 0 and person[k, 2] == 0:
                person[k] = (x + 0.5 + ox, y + 0.5 + oy, value)
    return people[..., :2], people[..., 2], person_scores


def grouped_by_mmpose(codec, heatmaps, tags):
    """mmpose's NMS, top-k and Munkres grouping (the part of the parser
    the codec inherits unchanged): ``(G, K, 3)`` of the first image."""
    from mmpose.codecs.utils import batch_heatmap_nms
    peaks = batch_heatmap_nms(heatmaps, codec.decode_nms_kernel)
    vals, tg, locs = (t.numpy() for t in codec._get_batch_topk(
        peaks, tags, k=codec.decode_topk))
    return codec._group_keypoints(vals, tg, locs)[0]


def random_scene(seed, K=4, size=24, people=3, L=2):
    """Heatmaps ``(1, K, H, W)`` with Gaussian blobs of random heights
    (some below the detection threshold), peaks on the border, a channel
    that is <= 0 everywhere, small noise; tags ``(1, L*K, H, W)`` with a
    value per person (Voronoi over that channel's keypoints) + noise."""
    rng = np.random.default_rng(seed)
    H = W = size
    yy, xx = np.mgrid[:H, :W]
    pos = rng.uniform(0, size - 1, (people, K, 2))
    pos[0, 0] = (0, rng.uniform(3, size - 4))          # left border
    pos[1, 1] = (size - 1, rng.integers(3, size - 4))  # right border
    pos[2, 0] = (rng.uniform(3, size - 4), 0)          # top border
    height = rng.uniform(0.3, 1.0, (people, K))
    height[rng.uniform(size=(people, K)) < 0.35] = 0.05  # missed by grouping
    hm = rng.uniform(-0.01, 0.01, (K, H, W))
    tags = np.zeros((L, K, H, W))
    for k in range(K):
        d2 = ((xx[None] - pos[:, k, 0, None, None])**2 +
              (yy[None] - pos[:, k, 1, None, None])**2)
        hm[k] += (height[:, k, None, None] * np.exp(-d2 / 4)).max(0)
        tags[:, k] = 3.0 * np.argmin(d2, 0)
    hm[K - 1] = -np.abs(hm[K - 1]) - 0.01  # never placed
    tags += rng.normal(0, 0.05, tags.shape)
    return (torch.tensor(hm, dtype=torch.float32)[None],
            torch.tensor(tags.reshape(L * K, H, W), dtype=torch.float32)[None])


@pytest.mark.parametrize('seed', range(6))
def test_decode_matches_authors_adjust_and_refine(seed):
    """Random scenes (borders, missed keypoints, a channel <= 0, two tag
    copies as with flip): keypoints, keypoint scores and person scores of
    ``batch_decode`` equal the transcription of the authors' adjust +
    refine applied to mmpose's grouping, scaled to input pixels."""
    codec = small_codec(input_size=(48, 48), heatmap_sizes=[(12, 12),
                                                            (24, 24)],
                        decode_heatmap_size=(24, 24), decode_topk=8)
    hm, tags = random_scene(seed)
    kpts, scores, inst = codec.batch_decode(hm, tags)
    people = grouped_by_mmpose(codec, hm, tags)
    K = hm.shape[1]
    tag_hwl = tags[0].reshape(2, K, 24, 24).permute(1, 2, 3, 0).numpy()
    ref_k, ref_s, ref_i = authors_adjust_refine(people, hm[0].numpy(),
                                                tag_hwl)
    assert len(people) >= 2
    np.testing.assert_allclose(kpts[0], ref_k * 2, atol=1e-5)
    np.testing.assert_array_equal(scores[0], ref_s)
    np.testing.assert_allclose(inst[0], ref_i, rtol=1e-6)
    # the scene exercises what it should: keypoints filled in with a small
    # value, a channel left unplaced with score 0 at (0, 0)
    filled = (people[..., 2] == 0) & (ref_s > 0)
    assert filled.any()
    assert (scores[0][:, K - 1] == 0).all()
    assert (kpts[0][:, K - 1] == 0).all()


def test_decode_hand_worked_border_refine_and_non_positive():
    """One person, 8x8 map, K = 3 (tags 0 everywhere):
    - keypoint 0 peaks at the left border (x = 0, y = 3) and its right
      neighbour is smaller: the clamped left neighbour is the peak itself,
      not larger -> x = 0 - 0.25 + 0.5; below is larger -> y = 3.75
      (mmpose's refine_keypoints would leave x at 0.5);
    - keypoint 1 is below the detection threshold (best 0.05 at (5, 6),
      right neighbour larger, upper larger): filled in at (5.75, 6.25) with
      score 0.05 (mmpose: (5, 6), no shift);
    - keypoint 2 is <= 0 everywhere: unplaced, (0, 0), score 0 (mmpose
      places it with a negative score)."""
    codec = small_codec(input_size=(8, 8), heatmap_sizes=[(8, 8)], sigma=1,
                        decode_heatmap_size=(8, 8), decode_topk=4)
    hm = np.zeros((3, 8, 8), np.float32)
    hm[0, 3, 0], hm[0, 3, 1], hm[0, 4, 0], hm[0, 2, 0] = 0.9, 0.5, 0.4, 0.3
    hm[1, 6, 5], hm[1, 6, 6], hm[1, 6, 4] = 0.05, 0.04, 0.03
    hm[1, 5, 5], hm[1, 7, 5] = 0.02, 0.01
    hm[2] = -0.5
    hm[2, 1, 1] = -0.1
    (kp, ), (sc, ), (inst, ) = codec.batch_decode(
        torch.from_numpy(hm)[None], torch.zeros(1, 3, 8, 8))
    np.testing.assert_allclose(kp, [[[0.25, 3.75], [5.75, 6.25], [0, 0]]])
    np.testing.assert_allclose(sc, [[0.9, 0.05, 0.0]])
    np.testing.assert_allclose(inst, [0.3])


def test_refine_cost_is_value_minus_rounded_tag_distance():
    """The authors' refine picks ``argmax(heatmap - round(|dtag|))``, not
    mmpose's ``argmin(round(|dtag|) * 100 - heatmap)``: person B (tag 0)
    misses keypoint 1; a strong response 1.6 at tag distance 1.2 (person
    A's keypoint 1) beats a weak 0.05 at distance 0 (1.6 - 1 > 0.05)."""
    codec = small_codec(input_size=(16, 16), heatmap_sizes=[(16, 16)],
                        decode_heatmap_size=(16, 16), decode_topk=4,
                        decode_keypoint_order=[0, 1])
    hm = np.zeros((2, 16, 16), np.float32)
    hm[0, 3, 3] = hm[0, 3, 12] = 0.9  # keypoint 0 of A (x 3), B (x 12)
    hm[1, 8, 4] = 1.6                 # keypoint 1 of A
    hm[1, 8, 12] = 0.05               # weak keypoint 1 near B
    tags = np.zeros((2, 16, 16), np.float32)
    tags[:, :, :8] = 1.2              # person A's side
    (kp, ), (sc, ), _ = codec.batch_decode(
        torch.from_numpy(hm)[None], torch.from_numpy(tags)[None])
    b = int(np.argmax(kp[:, 0, 0]))   # person B: keypoint 0 at x 12
    np.testing.assert_allclose(kp[b], [[12.25, 3.25], [4.25, 8.25]])
    np.testing.assert_allclose(sc[b], [0.9, 1.6])


# ----------------------------------------------------------------------
# real COCO / CrowdPose fixtures through mmpose's bottom-up datasets
# ----------------------------------------------------------------------
DATA = shared_data_dir()
COCO_ANN = osp.join(DATA, 'coco', 'test_coco.json')
CROWDPOSE_ANN = osp.join(DATA, 'crowdpose', 'test_crowdpose.json')
needs_data = pytest.mark.skipif(
    not (osp.isfile(COCO_ANN) and osp.isfile(CROWDPOSE_ANN)),
    reason=f'real-data fixtures not found under {DATA}')

#: a person of this image becomes a crowd region (compressed RLE)
CROWD_ANN_ID_IMAGE = 197388


def make_crowd_json(tmp_path):
    """COCO fixture copy in which the central person of image 197388 is
    turned into a crowd annotation with a compressed RLE segmentation (as
    COCO stores crowds). Returns (json path, crowd polygon in image px)."""
    coco = json.load(open(COCO_ANN))
    anns = [a for a in coco['annotations']
            if a['image_id'] == CROWD_ANN_ID_IMAGE]
    img = next(i for i in coco['images'] if i['id'] == CROWD_ANN_ID_IMAGE)
    # the person nearest the image centre (inside the square crop)
    crowd = min(
        anns,
        key=lambda a: abs(a['bbox'][0] + a['bbox'][2] / 2 - img['width'] / 2))
    polygon = crowd['segmentation']
    rle = cocomask.merge(
        cocomask.frPyObjects(polygon, img['height'], img['width']))
    crowd.update(
        iscrowd=1,
        num_keypoints=0,
        keypoints=[0] * 51,
        segmentation=dict(size=rle['size'], counts=rle['counts'].decode()))
    path = tmp_path / 'coco_crowd.json'
    path.write_text(json.dumps(coco))
    return str(path), polygon


def ignored_regions_from_json(ann_file):
    """img_id -> list of (polygons or None, bbox xywh) of crowd annotations
    and people without keypoints, read straight from the json."""
    out = {}
    for a in json.load(open(ann_file))['annotations']:
        if a.get('iscrowd', 0) or a['num_keypoints'] == 0:
            out.setdefault(a['image_id'], []).append(
                (a.get('segmentation'), a['bbox']))
    return out


def cell_corners_in_image(cells_xy, stride, warp_mat, flip_w=None):
    """Corners of heatmap cells (x, y) -> original image pixels through the
    inverse of the pipeline's affine (cell (x, y) covers input pixels
    s x .. s x + s - 1, whose centres are at those coordinates)."""
    inv = cv2.invertAffineTransform(warp_mat)
    offs = np.array([[0, 0], [1, 0], [1, 1], [0, 1]])
    pts = (cells_xy[:, None, :] + offs[None]) * stride - 0.5  # input px
    if flip_w is not None:
        pts[..., 0] = flip_w - pts[..., 0]
    return pts @ inv[:, :2].T + inv[:, 2]


def polygon_distance(polygons, pts):
    """Signed distance (px, > 0 inside) of points to the union of
    polygons (OpenCV's pointPolygonTest, max over polygons)."""
    best = np.full(len(pts), -np.inf)
    for poly in polygons:
        contour = np.asarray(poly, np.float32).reshape(-1, 1, 2)
        d = [cv2.pointPolygonTest(contour, (float(x), float(y)), True)
             for x, y in pts]
        best = np.maximum(best, d)
    return best


def box_polygon(b):
    x, y, w, h = b
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


@needs_data
@pytest.mark.parametrize('dataset', ['coco', 'crowdpose'])
def test_real_fixture_peaks_indices_and_ignore_masks(dataset, tmp_path):
    """Through mmpose's bottom-up dataset + BottomupRandomAffine (fixed
    geometry: scale, shift, rotation off; then a horizontal flip),
    BottomupIgnoreMask and GenerateTarget: every labelled keypoint inside a
    map is a peak of value 1 at ``round(kp * W_r / w)`` at both
    resolutions, ``keypoint_indices`` point at its 1/4 cell, and cells
    inside crowd regions / unlabelled people are masked while cells far
    from them are kept."""
    from mmpose.datasets import CocoDataset, CrowdPoseDataset
    init_default_scope('mmpose')
    if dataset == 'coco':
        ann_file, crowd_polygon = make_crowd_json(tmp_path)
        cls, img_dir = CocoDataset, osp.join(DATA, 'coco')
    else:
        ann_file, crowd_polygon = CROWDPOSE_ANN, None
        cls, img_dir = CrowdPoseDataset, osp.join(DATA, 'crowdpose')
    size = 256
    codec = dict(
        type='MultiResolutionAELabel',
        input_size=(size, size),
        heatmap_sizes=[(size // 4, size // 4), (size // 2, size // 2)])
    pipeline = [
        dict(type='LoadImage'),
        dict(
            type='BottomupRandomAffine',
            input_size=(size, size),
            shift_prob=0,
            scale_prob=0,
            rotate_prob=0),
        dict(type='RandomFlip', prob=1.0, direction='horizontal'),
        dict(type='BottomupIgnoreMask'),
        dict(type='GenerateTarget', encoder=codec),
    ]
    ds = cls(
        data_root='',
        ann_file=ann_file,
        data_prefix=dict(img=img_dir),
        data_mode='bottomup',
        pipeline=pipeline)
    ignored = ignored_regions_from_json(ann_file)
    checked_peaks = masked_cells = kept_cells = 0
    for i in range(len(ds)):
        res = ds[i]
        kpts, vis = res['keypoints'], res['keypoints_visible']
        for r, (hm, (W, H)) in enumerate(
                zip(res['heatmaps'], codec['heatmap_sizes'])):
            cells = np.floor(kpts * W / size).astype(int)
            inside = ((cells >= 0) & (cells < W)).all(-1) & (vis > 0.5)
            n_idx, k_idx = np.nonzero(inside)
            x, y = cells[n_idx, k_idx, 0], cells[n_idx, k_idx, 1]
            np.testing.assert_allclose(hm[k_idx, y, x], 1.0, atol=1e-6)
            # a peak: no larger value in the 3x3 neighbourhood
            pad = np.pad(hm, ((0, 0), (1, 1), (1, 1)))
            for dy in (0, 1, 2):
                for dx in (0, 1, 2):
                    assert (pad[k_idx, y + dy, x + dx] <= 1.0 + 1e-6).all()
            checked_peaks += len(n_idx)
            if r == 0:
                idx = res['keypoint_indices']
                np.testing.assert_array_equal(idx[..., 1], inside)
                np.testing.assert_array_equal(idx[n_idx, k_idx, 0],
                                              y * W + x)
                np.testing.assert_array_equal(res['keypoint_weights'],
                                              inside.astype(np.float32))
        # ignore masks, checked against the json regions
        regions = ignored.get(res['img_id'], [])
        polygons = []
        for seg, bbox in regions:
            if isinstance(seg, dict):  # our crowd: its polygon
                polygons += crowd_polygon
            elif seg:
                polygons += seg
            else:  # no segmentation (CrowdPose): the box
                polygons += box_polygon(bbox)
        h_img, w_img = res['img_shape']
        for mask, (W, H) in zip(res['heatmap_mask'], codec['heatmap_sizes']):
            assert mask.shape == (H, W) and mask.dtype == np.float32
            stride = size / W
            yy, xx = np.mgrid[0:H, 0:W]
            cells = np.stack([xx.ravel(), yy.ravel()], -1).astype(float)
            corners = cell_corners_in_image(cells, stride, res['warp_mat'],
                                            flip_w=size - 1)
            in_img = ((corners[..., 0] > 1) & (corners[..., 0] < w_img - 1) &
                      (corners[..., 1] > 1) &
                      (corners[..., 1] < h_img - 1)).all(1)
            flat = mask.ravel()
            if polygons:
                dist = polygon_distance(polygons, corners.reshape(-1, 2))
                dist = dist.reshape(-1, 4)
                deep_inside = (dist > 1.5).all(1)
                far = (dist < -3 * stride).all(1) & in_img
            else:
                deep_inside = np.zeros(len(flat), bool)
                far = in_img
            assert (flat[deep_inside] == 0).all()
            assert (flat[far] == 1).all()
            masked_cells += deep_inside.sum()
            kept_cells += far.sum()
    assert checked_peaks > 80
    assert masked_cells > 60 and kept_cells > 10000


def perfect_tags(keypoint_indices, K, W0, H0, spacing=2.0):
    """Tag maps (K, H0, W0) a perfect network would give: every pixel of
    channel k carries ``spacing * n`` of the person n whose labelled
    keypoint k is nearest (so the tag at any candidate near a keypoint is
    its owner's), built only from ``keypoint_indices``."""
    tags = np.zeros((K, H0, W0), np.float32)
    yy, xx = np.mgrid[0:H0, 0:W0]
    for k in range(K):
        owners = np.flatnonzero(keypoint_indices[:, k, 1])
        if owners.size == 0:
            continue
        idx = keypoint_indices[owners, k, 0]
        cy, cx = idx // W0, idx % W0
        d2 = (yy[None] - cy[:, None, None])**2 + (xx[None] -
                                                   cx[:, None, None])**2
        tags[k] = spacing * owners[np.argmin(d2, axis=0)]
    return tags


@needs_data
@pytest.mark.parametrize('dataset', ['coco', 'crowdpose'])
def test_perfect_heatmaps_and_tags_give_ap_1(dataset):
    """COCO / CrowdPose fixture through mmpose's bottom-up val pipeline
    (LoadImage,
    BottomupResize to 512 'expand'): ground-truth keypoints mapped into the
    input (inverse of BottomupPoseEstimator's input -> image mapping),
    encoded by the codec; the 1/4 heatmaps upsampled (bilinear) to 1/2 and
    averaged with the 1/2 ones, perfect tags from ``keypoint_indices``
    (nearest owner, upsampled nearest), grouped by the codec, mapped back to
    the image as BottomupPoseEstimator does and scored by mmpose's
    CocoMetric (bottom-up settings; CrowdPose's crowd IoU): AP 1.0."""
    import torch.nn.functional as F
    from mmpose.datasets import CocoDataset, CrowdPoseDataset
    from mmpose.evaluation import CocoMetric
    init_default_scope('mmpose')
    size = 512
    if dataset == 'coco':
        cls, ann_file, K, prefix, extra = CocoDataset, COCO_ANN, 17, 'coco', {}
        order = [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16]
    else:
        cls, ann_file, K, prefix = (CrowdPoseDataset, CROWDPOSE_ANN, 14,
                                    'crowdpose')
        extra = dict(iou_type='keypoints_crowd', use_area=False)
        order = [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13]
    ds = cls(
        data_root='',
        ann_file=ann_file,
        data_prefix=dict(img=osp.join(DATA, dataset)),
        data_mode='bottomup',
        test_mode=True,
        pipeline=[
            dict(type='LoadImage'),
            dict(
                type='BottomupResize',
                input_size=(size, size),
                size_factor=32,
                resize_mode='expand')
        ])
    metric = CocoMetric(
        ann_file=ann_file,
        score_mode='bbox',
        nms_mode='none',
        prefix=prefix,
        **extra)
    metric.dataset_meta = ds.metainfo
    samples, errors = [], []
    for i in range(len(ds)):
        res = ds[i]
        w_in, h_in = res['input_size']
        center, scale = res['input_center'], res['input_scale']
        raw = np.array([a['keypoints'] for a in res['raw_ann_info']],
                       np.float32).reshape(-1, K, 3)
        kpts_in = (raw[..., :2] - center + 0.5 * scale) / scale * (w_in, h_in)
        sizes = [(w_in // 4, h_in // 4), (w_in // 2, h_in // 2)]
        codec = MultiResolutionAELabel(
            input_size=(w_in, h_in),
            heatmap_sizes=sizes,
            decode_heatmap_size=sizes[1],
            decode_keypoint_order=order)
        enc = codec.encode(kpts_in, (raw[..., 2] > 0).astype(np.float32))
        hm0 = torch.from_numpy(enc['heatmaps'][0])[None]
        hm1 = torch.from_numpy(enc['heatmaps'][1])[None]
        up = F.interpolate(hm0, size=hm1.shape[-2:], mode='bilinear',
                           align_corners=False)
        heatmaps = (up + hm1) / 2
        tags = torch.from_numpy(
            perfect_tags(enc['keypoint_indices'], K, *sizes[0]))[None]
        tags = F.interpolate(tags, size=hm1.shape[-2:], mode='nearest')
        (kp, ), (sc, ), (inst, ) = codec.batch_decode(heatmaps, tags)
        # BottomupPoseEstimator.add_pred_to_datasample's mapping
        kp_img = kp / (w_in, h_in) * scale + center - 0.5 * scale
        labelled = raw[..., 2] > 0
        for n in range(len(raw)):
            if labelled[n].any():
                d = np.linalg.norm(kp_img - raw[n, :, :2], axis=-1)
                best = np.argmin(np.where(labelled[n], d, 0).sum(1))
                errors.append(d[best][labelled[n]])
        samples.append(
            dict(
                id=res['id'],
                img_id=res['img_id'],
                category_id=1,
                crowd_index=res.get('crowd_index'),
                ori_shape=res['ori_shape'],
                raw_ann_info=res['raw_ann_info'],
                gt_instances={},
                pred_instances=dict(
                    keypoints=kp_img,
                    keypoint_scores=sc,
                    bbox_scores=inst)))
    metric.process([], samples)
    result = metric.evaluate(size=len(samples))
    errors = np.concatenate(errors)
    print('max keypoint error (image px):', errors.max(), 'mean',
          errors.mean(), result)
    assert result[f'{prefix}/AP'] == pytest.approx(1.0)
    assert errors.max() < 2.5


@pytest.mark.parametrize('decode_size', [(128, 128), (64, 64)])
def test_fused_resolutions_decode_without_bias(decode_size):
    """The head's fusion (each resolution resized bilinearly with
    align_corners=False to the decode size, then averaged): with the
    default decode_center_shift 0.5 random keypoints come back unbiased
    (mean error ~0, the truncated cells' half-pixel offset undone), without
    it they are biased by about -0.5 decoded-map pixels."""
    import torch.nn.functional as F
    rng = np.random.default_rng(0)
    kpts = rng.uniform(20, 108, (100, 1, 1, 2)).astype(np.float32)
    errors = {}
    for shift in (0.5, 0.0):
        codec = small_codec(
            input_size=(128, 128),
            heatmap_sizes=[(32, 32), (64, 64)],
            decode_heatmap_size=decode_size,
            decode_center_shift=shift)
        err = []
        for kp in kpts:
            enc = codec.encode(kp)
            fused = torch.stack([
                F.interpolate(
                    torch.from_numpy(h)[None],
                    size=decode_size[::-1],
                    mode='bilinear',
                    align_corners=False) for h in enc['heatmaps']
            ]).mean(0)
            (dec, ), _, _ = codec.batch_decode(fused, torch.zeros_like(fused))
            err.append(dec[0, 0] - kp[0, 0])
        errors[shift] = np.array(err)
    stride = 128 / decode_size[0]
    assert np.abs(errors[0.5].mean(0)).max() < 0.2 * stride
    assert np.abs(errors[0.5]).max() < 1.5 * stride
    assert (errors[0.0].mean(0) < -0.3 * stride).all()

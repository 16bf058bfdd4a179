"""Keypoint-type distances (``mmkp_ext.grouping.distances``): mean box
offsets on a hand-worked annotation set and against a per-annotation loop,
conv-row features, Euclidean distances."""
import numpy as np
import pytest

import mmkp_ext.grouping.distances as distances_module
from mmkp_ext.grouping import (euclidean_distances, head_row_features,
                               mean_keypoint_offsets)


def hand_coco():
    def ann(bbox, kpts, **kw):
        return dict(bbox=bbox, keypoints=sum(kpts, []), **kw)
    return dict(annotations=[
        # box centre (5, 10), size 10 x 20
        ann([0, 0, 10, 20], [[5, 10, 2], [10, 0, 1], [3, 3, 0]]),
        # box centre (12, 12), size 4 x 4
        ann([10, 10, 4, 4], [[12, 14, 2], [10, 10, 2], [14, 12, 2]]),
        ann([0, 0, 10, 10], [[0, 0, 2]] * 3, iscrowd=1),  # skipped: crowd
        ann([0, 0, 0, 10], [[0, 0, 2]] * 3),  # skipped: zero width
    ])


def test_mean_offsets_hand_worked(monkeypatch):
    offsets, counts = mean_keypoint_offsets(hand_coco(), num_keypoints=3)
    # k0: (0, 0) and (0, 0.5); k1: (0.5, -0.5) and (-0.5, -0.5);
    # k2: only the second object, (0.5, 0).
    np.testing.assert_allclose(offsets, [[0, 0.25], [0, -0.5], [0.5, 0]])
    assert counts.tolist() == [2, 2, 1]
    # Block-wise accumulation gives the same.
    monkeypatch.setattr(distances_module, '_CHUNK', 1)
    again, counts2 = mean_keypoint_offsets(hand_coco())
    np.testing.assert_allclose(again, offsets)
    assert counts2.tolist() == counts.tolist()


def test_mean_offsets_equal_a_loop_on_random_annotations():
    rng = np.random.default_rng(0)
    anns = []
    for _ in range(40):
        x, y = rng.uniform(0, 100, 2)
        w, h = rng.uniform(5, 50, 2)
        kp = np.c_[rng.uniform(x, x + w, 6), rng.uniform(y, y + h, 6),
                   rng.integers(0, 3, 6)]
        anns.append(dict(bbox=[x, y, w, h], keypoints=kp.ravel().tolist()))
    offsets, counts = mean_keypoint_offsets(dict(annotations=anns))
    for k in range(6):
        vals = [((a['keypoints'][3 * k] - a['bbox'][0] - a['bbox'][2] / 2) /
                 a['bbox'][2],
                 (a['keypoints'][3 * k + 1] - a['bbox'][1] - a['bbox'][3] / 2)
                 / a['bbox'][3])
                for a in anns if a['keypoints'][3 * k + 2] > 0]
        assert counts[k] == len(vals)
        np.testing.assert_allclose(offsets[k], np.mean(vals, axis=0))


def test_mean_offsets_errors_and_missing(tmp_path):
    coco = hand_coco()
    coco['annotations'][1]['keypoints'][-1] = 0  # k2 never labelled now
    offsets, counts = mean_keypoint_offsets(coco)
    assert counts[2] == 0 and offsets[2].tolist() == [0, 0]
    with pytest.raises(ValueError, match='never labelled'):
        mean_keypoint_offsets(coco, missing='error')
    with pytest.raises(ValueError, match='3 keypoints per object but 17'):
        mean_keypoint_offsets(hand_coco(), num_keypoints=17)
    bad = hand_coco()
    del bad['annotations'][0]['bbox']
    with pytest.raises(ValueError, match='bbox'):
        mean_keypoint_offsets(bad)
    bad = hand_coco()
    bad['annotations'][0]['keypoints'] = [1, 2, 2]
    with pytest.raises(ValueError, match='different'):
        mean_keypoint_offsets(bad)
    with pytest.raises(FileNotFoundError, match='nope.json'):
        mean_keypoint_offsets(str(tmp_path / 'nope.json'))


def test_head_row_features():
    k, c = 3, 4
    w = np.arange(2 * k * c, dtype=np.float32).reshape(2 * k, c, 1, 1)
    feats = head_row_features(w, 'reg', k)
    assert feats.shape == (k, 2 * c)
    for kp in range(k):  # x row then y row of keypoint kp
        np.testing.assert_array_equal(
            feats[kp], np.r_[w[2 * kp, :, 0, 0], w[2 * kp + 1, :, 0, 0]])
    np.testing.assert_array_equal(head_row_features(w[:k], 'hm', k),
                                  w[:k, :, 0, 0])
    with pytest.raises(ValueError, match='6 output rows but 3 are expected'):
        head_row_features(w, 'hm', k)
    with pytest.raises(ValueError, match="'reg' or 'hm'"):
        head_row_features(w, 'offset', k)


def test_euclidean_distances():
    x = np.array([[0., 0.], [3., 4.], [6., 8.]])
    np.testing.assert_allclose(euclidean_distances(x),
                               [[0, 5, 10], [5, 0, 5], [10, 5, 0]])
    with pytest.raises(ValueError, match='NaN'):
        euclidean_distances(np.array([[0.], [np.nan]]))

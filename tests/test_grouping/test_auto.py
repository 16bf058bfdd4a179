"""Automatic grouping of both heads (``mmkp_ext.grouping.auto``): the
62-cluster DeepFashion2 path on the real DF2 fixture and on a synthetic
annotation set in the DF2 layout, toy fashion data, count selection and
errors."""
import os.path as osp

import numpy as np
import pytest
from _helpers import shared_data_dir

from mmkp_ext.grouping import (auto_grouping, build_linkage, cut,
                               head_distances, inconsistent_pairs,
                               keypoint_categories, load_grouping,
                               mean_keypoint_offsets, save_grouping,
                               undecodable_pairs)

DF2 = osp.join(shared_data_dir(), 'deepfashion2', 'deepfashion2.json')


def df2_62(offsets, tmp_path):
    cat = keypoint_categories('deepfashion2', 294)
    out = auto_grouping(
        head_distances('offsets', 'reg', 294, offsets=offsets),
        head_distances('anti_offsets', 'hm', 294, offsets=offsets), cat,
        reg_clusters=62, hm_clusters=62, reg_distance='offsets',
        hm_distance='anti_offsets', restrict='both')
    path = tmp_path / 'df2_62.json'
    save_grouping(path, out['reg_group'], out['hm_group'], 'offsets', 'x',
                  meta=out['meta'])
    g = load_grouping(path, num_keypoints=294)
    assert max(g['reg_group']) + 1 == max(g['hm_group']) + 1 == 62
    assert inconsistent_pairs(g['reg_group'], 'deepfashion2') == []
    assert inconsistent_pairs(g['hm_group'], 'deepfashion2') == []
    # The largest DF2 category (long-sleeved outwear) has 39 keypoints.
    assert out['meta']['restricted_minimum']['reg'] >= 39
    return g


@pytest.mark.skipif(not osp.isfile(DF2), reason='shared DF2 fixture absent')
def test_df2_62_clusters_from_real_fixture(tmp_path):
    offsets, counts = mean_keypoint_offsets(DF2, num_keypoints=294)
    # The fixture: 2 long-sleeved dresses (category 11, keypoints 219-255).
    assert counts[:219].sum() == 0 and counts[219:256].sum() > 0
    g = df2_62(offsets, tmp_path)
    # The grouped head of the paper's size: 13 + 2 + 2 + 2*62 + 62 + 2 = 205
    # channels (the spec's figure for 62 groups).
    from mmkp_ext.models.heads.centernet_pose_head import CenterNetPoseHead
    head = CenterNetPoseHead(4, 294, 'deepfashion2', head_conv=4,
                             grouping_file=g)
    assert head.num_output_channels == 205


def test_df2_62_clusters_on_synthetic_df2_layout(tmp_path):
    """Every category labelled: clustering by offsets puts keypoints with
    close mean offsets (of different categories) together."""
    rng = np.random.default_rng(0)
    cat = keypoint_categories('deepfashion2', 294)
    # A garment "shape": each keypoint's true mean offset.
    truth = rng.uniform(-0.5, 0.5, size=(294, 2))
    anns = []
    for c in range(13):
        kps = np.flatnonzero(cat == c)
        for _ in range(3):
            kp = np.zeros((294, 3))
            x, y, w, h = 10., 20., 100., 50.
            noisy = truth[kps] + rng.normal(0, 0.01, size=(len(kps), 2))
            kp[kps, 0] = x + w / 2 + noisy[:, 0] * w
            kp[kps, 1] = y + h / 2 + noisy[:, 1] * h
            kp[kps, 2] = 2
            anns.append(dict(bbox=[x, y, w, h], category_id=c + 1,
                             keypoints=kp.ravel().tolist()))
    offsets, counts = mean_keypoint_offsets(dict(annotations=anns), 294)
    assert (counts == 3).all()
    np.testing.assert_allclose(offsets, truth, atol=0.035)  # 6 sigma
    g = df2_62(offsets, tmp_path)
    # Groups are tight in offset space: mean within-group spread well below
    # the spread of all keypoints.
    reg = np.asarray(g['reg_group'])
    spread = np.mean([offsets[reg == k].std(0).sum() for k in range(62)])
    assert spread < 0.5 * offsets.std(0).sum()


def test_toy_fashion_annotations(tmp_path):
    from mmkp_ext.datasets import make_toy_dataset
    make_toy_dataset('fashion', str(tmp_path), num_images=12, image_size=64)
    offsets, counts = mean_keypoint_offsets(
        str(tmp_path / 'annotations' / 'train.json'), num_keypoints=32)
    assert (counts > 0).all()
    cat = keypoint_categories('toy_fashion', 32)
    d = head_distances('offsets', 'reg', 32, offsets=offsets)
    out = auto_grouping(d, d, cat, reg_distance='offsets',
                        hm_distance='anti_offsets', restrict='both')
    # auto: each restricted head at its smallest clean count.
    assert out['meta']['num_reg_clusters'] == \
        out['meta']['restricted_minimum']['reg']
    assert max(out['reg_group']) + 1 >= 14  # largest toy category: 14
    assert inconsistent_pairs(out['reg_group'], 'toy_fashion') == []
    assert inconsistent_pairs(out['hm_group'], 'toy_fashion') == []


def test_unrestricted_selection_and_errors():
    rng = np.random.default_rng(1)
    ranges = [(0, 5), (6, 11)]
    cat = keypoint_categories(ranges, 12)
    d_reg = head_distances('offsets', 'reg', 12,
                           offsets=rng.normal(size=(12, 2)))
    d_hm = head_distances('offsets', 'hm', 12,
                          offsets=rng.normal(size=(12, 2)))
    out = auto_grouping(d_reg, d_hm, cat, restrict='none')
    n_reg, n_hm = out['meta']['minimal_decodable']
    assert [out['meta']['num_reg_clusters'],
            out['meta']['num_hm_clusters']] == [n_reg, n_hm]
    assert undecodable_pairs(out['reg_group'], out['hm_group'], ranges) == []
    # No decodable choice is cheaper (brute force over all counts).
    z_reg, z_hm = build_linkage(d_reg), build_linkage(d_hm)
    best = min(2 * a + b for a in range(1, 13) for b in range(1, 13)
               if not undecodable_pairs(cut(z_reg, a), cut(z_hm, b), ranges))
    assert 2 * n_reg + n_hm == best
    # One head fixed: the other gets the fewest decodable clusters.
    fixed = auto_grouping(d_reg, d_hm, cat, reg_clusters=3, restrict='none')
    n = fixed['meta']['num_hm_clusters']
    assert not undecodable_pairs(cut(z_reg, 3), cut(z_hm, n), ranges)
    assert undecodable_pairs(cut(z_reg, 3), cut(z_hm, n - 1), ranges)
    with pytest.raises(ValueError, match='undecodable'):
        auto_grouping(d_reg, d_hm, cat, 1, 1, restrict='none')
    bad = auto_grouping(d_reg, d_hm, cat, 1, 1, restrict='none',
                        allow_undecodable=True)
    assert bad['meta']['undecodable_pairs'] == 30  # C(6,2) * 2
    with pytest.raises(ValueError, match='needs at least'):
        auto_grouping(d_reg, d_hm, cat, reg_clusters=5, restrict='reg')
    with pytest.raises(ValueError, match='restrict'):
        auto_grouping(d_reg, d_hm, cat, restrict='some')
    with pytest.raises(ValueError, match='12 keypoints'):
        auto_grouping(d_reg[:5, :5], d_hm, cat)
    with pytest.raises(ValueError, match='need annotation offsets'):
        head_distances('anti_offsets', 'hm', 12)

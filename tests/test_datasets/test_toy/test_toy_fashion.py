"""Tests of the synthetic multi-class ``fashion`` dataset, its metainfo and
``ToyFashionDataset``."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
from _helpers import check_coco_keypoint_split, load_json, run_python

from mmkp_ext.datasets import (FASHION_CATEGORIES, FASHION_FLIP_INDICES,
                               FASHION_KEYPOINT_NAMES, FASHION_METAINFO_FILE,
                               FASHION_NUM_KEYPOINTS, category_slice,
                               make_toy_dataset)
from mmkp_ext.datasets.toy.fashion import (annotate_garments, garment_outline,
                                           place_garment, render_garments)

from _helpers import REPO_ROOT as REPO  # noqa: E402
NUM_IMAGES = 16


@pytest.fixture(scope='module')
def fashion(tmp_path_factory):
    out = tmp_path_factory.mktemp('toy_fashion')
    return make_toy_dataset(
        'fashion', str(out), num_images=NUM_IMAGES, seed=0, val_fraction=0.25)


def _category_of(index):
    for cat in FASHION_CATEGORIES:
        if cat['start'] <= index < cat['start'] + cat['num_keypoints']:
            return cat['id']
    raise AssertionError(f'keypoint {index} in no category')


def check_fashion_split(coco, img_dir):
    """Validity checks of one split (the generic ones plus zeros outside the
    annotation's category slice); returns the number of annotations per
    category id."""
    all_kpts = check_coco_keypoint_split(coco, img_dir, FASHION_NUM_KEYPOINTS)
    per_cat = {}
    for ann, kpts in zip(coco['annotations'], all_kpts):
        outside = np.ones(FASHION_NUM_KEYPOINTS, bool)
        outside[category_slice(ann['category_id'])] = False
        assert np.all(kpts[outside] == 0)
        per_cat[ann['category_id']] = per_cat.get(ann['category_id'], 0) + 1
    return per_cat


def test_layout_tables():
    assert len(FASHION_CATEGORIES) >= 3
    assert [c['id'] for c in FASHION_CATEGORIES] == list(
        range(1, len(FASHION_CATEGORIES) + 1))
    assert len({c['num_keypoints'] for c in FASHION_CATEGORIES}) >= 3
    start = 0
    for cat in FASHION_CATEGORIES:
        assert cat['start'] == start
        start += cat['num_keypoints']
        assert category_slice(cat['id']) == slice(cat['start'], start)
    assert start == FASHION_NUM_KEYPOINTS == len(FASHION_KEYPOINT_NAMES)
    with pytest.raises(ValueError):
        category_slice(len(FASHION_CATEGORIES) + 1)


def test_metainfo_is_derived_from_layout():
    from mmengine.config import Config
    from mmpose.datasets.datasets.utils import parse_pose_metainfo

    from mmkp_ext.datasets.toy.fashion import fashion_dataset_info
    from mmkp_ext.datasets.toy_fashion_dataset import ToyFashionDataset
    assert osp.isabs(FASHION_METAINFO_FILE)
    # The config file (for configs), the function and the dataset class
    # carry the same dataset_info.
    from_file = Config.fromfile(FASHION_METAINFO_FILE)
    assert list(from_file.keys()) == ['dataset_info']
    info = fashion_dataset_info()
    assert info == ToyFashionDataset.METAINFO
    assert from_file.dataset_info.to_dict() == info
    assert fashion_dataset_info() is not fashion_dataset_info()
    meta = parse_pose_metainfo(dict(from_file=FASHION_METAINFO_FILE))
    assert meta['dataset_name'] == 'toy_fashion'
    assert meta['num_keypoints'] == FASHION_NUM_KEYPOINTS
    names = [meta['keypoint_id2name'][i] for i in range(meta['num_keypoints'])]
    assert names == list(FASHION_KEYPOINT_NAMES)
    assert list(meta['flip_indices']) == list(FASHION_FLIP_INDICES)
    # Swaps are symmetric and never cross categories; every category has
    # at least one left/right pair.
    flip = np.array(meta['flip_indices'])
    assert np.all(flip[flip] == np.arange(FASHION_NUM_KEYPOINTS))
    for a, b in meta['flip_pairs']:
        assert _category_of(a) == _category_of(b)
    for cat in FASHION_CATEGORIES:
        sl = category_slice(cat['id'])
        assert np.any(flip[sl] != np.arange(sl.start, sl.stop))
    # Skeleton: each category's closed outline, in outline order.
    expected = [link for c in FASHION_CATEGORIES for link in c['skeleton']]
    assert [tuple(link) for link in meta['skeleton_links']] == expected
    for a, b in meta['skeleton_links']:
        assert _category_of(a) == _category_of(b)
    sigmas = meta['sigmas']
    np.testing.assert_array_equal(sigmas, sigmas[flip])
    assert meta['dataset_keypoint_weights'].shape == (FASHION_NUM_KEYPOINTS, )


def test_metainfo_values():
    """Hand-checked entries, so that deriving the metainfo cannot silently
    change what the metric and the flip test see."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo

    from mmkp_ext.datasets.toy.fashion import fashion_dataset_info
    info = fashion_dataset_info()
    kp = info['keypoint_info']
    assert kp[0] == dict(name='sst_collar_center', id=0,
                         color=[255, 128, 0], type='', swap='')
    assert kp[1]['swap'] == 'sst_right_neck'
    assert kp[13]['swap'] == 'sst_left_neck'
    assert kp[19] == dict(name='trs_crotch', id=19, color=[128, 0, 128],
                          type='', swap='')
    assert kp[31]['name'] == 'skt_right_waist'
    assert kp[31]['swap'] == 'skt_left_waist'
    assert kp[31]['color'] == [64, 128, 128]
    sk = info['skeleton_info']
    assert len(sk) == 32
    assert sk[13] == dict(link=('sst_right_neck', 'sst_collar_center'),
                          id=13, color=[255, 128, 0])
    assert sk[14]['link'] == ('trs_waist_center', 'trs_left_waist')
    assert sk[31]['link'] == ('skt_right_waist', 'skt_waist_center')
    # The OKS sigmas, keypoint by keypoint (the values the dataset was
    # released with).
    np.testing.assert_array_equal(info['sigmas'], [
        0.025, 0.025, 0.035, 0.040, 0.040, 0.035, 0.045,
        0.045, 0.045, 0.035, 0.040, 0.040, 0.035, 0.025,
        0.030, 0.030, 0.050, 0.045, 0.045, 0.035, 0.045, 0.045, 0.050,
        0.030,
        0.030, 0.030, 0.040, 0.045, 0.045, 0.045, 0.040, 0.030,
    ])
    assert info['joint_weights'] == [1.0] * 32
    meta = parse_pose_metainfo(info)
    assert {tuple(sorted(p)) for p in meta['flip_pairs']} == {
        (1, 13), (2, 12), (3, 11), (4, 10), (5, 9), (6, 8), (15, 23),
        (16, 22), (17, 21), (18, 20), (25, 31), (26, 30), (27, 29)
    }
    # Garments have no upper / lower body.
    assert meta['upper_body_ids'] == [] and meta['lower_body_ids'] == []


def test_determinism(tmp_path):
    a = make_toy_dataset('fashion', str(tmp_path / 'a'), num_images=5, seed=3)
    b = make_toy_dataset('fashion', str(tmp_path / 'b'), num_images=5, seed=3)
    c = make_toy_dataset('fashion', str(tmp_path / 'c'), num_images=5, seed=4)
    for split in ('train', 'val'):
        ja = open(a[f'{split}_ann_file'], 'rb').read()
        assert ja == open(b[f'{split}_ann_file'], 'rb').read()
        for img in json.loads(ja)['images']:
            ia = cv2.imread(osp.join(a[f'{split}_img_dir'], img['file_name']))
            ib = cv2.imread(osp.join(b[f'{split}_img_dir'], img['file_name']))
            np.testing.assert_array_equal(ia, ib)
    assert open(a['train_ann_file'], 'rb').read() != open(
        c['train_ann_file'], 'rb').read()
    name = load_json(a['train_ann_file'])['images'][0]['file_name']
    assert not np.array_equal(
        cv2.imread(osp.join(a['train_img_dir'], name)),
        cv2.imread(osp.join(c['train_img_dir'], name)))


def test_validity_and_splits(fashion):
    train, val = load_json(fashion['train_ann_file']), load_json(
        fashion['val_ann_file'])
    assert train['images'] and val['images']
    assert {i['id'] for i in train['images']}.isdisjoint(
        {i['id'] for i in val['images']})
    assert len(train['images']) + len(val['images']) == NUM_IMAGES
    counts = {}
    for coco, img_dir in ((train, fashion['train_img_dir']),
                          (val, fashion['val_img_dir'])):
        for cat_id, n in check_fashion_split(coco, img_dir).items():
            counts[cat_id] = counts.get(cat_id, 0) + n
        cats = coco['categories']
        assert [c['id'] for c in cats] == [c['id'] for c in FASHION_CATEGORIES]
        for cat, layout in zip(cats, FASHION_CATEGORIES):
            assert cat['keypoints'] == list(FASHION_KEYPOINT_NAMES)
            sl = category_slice(cat['id'])
            # 1-based skeleton inside the category's own slice.
            assert all(sl.start < i <= sl.stop for link in cat['skeleton']
                       for i in link)
    assert set(counts) == {c['id'] for c in FASHION_CATEGORIES}
    ann_ids = [a['id'] for a in train['annotations'] + val['annotations']]
    assert len(ann_ids) == len(set(ann_ids))
    flags = np.concatenate([
        np.array(a['keypoints']).reshape(-1, 3)[category_slice(
            a['category_id']), 2]
        for a in train['annotations'] + val['annotations']
    ])
    assert {0.0, 1.0, 2.0} <= set(np.unique(flags))


def test_occlusion_flags_follow_later_masks():
    rng = np.random.default_rng(0)
    top = place_garment(1, garment_outline(1, rng), 100, (90, 90))
    skirt = place_garment(3, garment_outline(3, rng), 90, (120, 130))
    image = np.zeros((200, 200, 3), np.uint8)
    garments = [top, skirt]
    masks = render_garments(image, garments)
    anns = annotate_garments(garments, masks)
    ka = anns[0]['keypoints'][category_slice(1)]
    px = np.rint(top.keypoints).astype(int)
    under = masks[1][px[:, 1], px[:, 0]]
    assert under.any() and not under.all()
    np.testing.assert_array_equal(ka[:, 2] == 1, under)
    kb = anns[1]['keypoints']
    assert np.all(kb[category_slice(3), 2] == 2)
    assert np.all(kb[:category_slice(3).start] == 0)
    # Box and area come from the rendered mask, not the keypoints' box.
    assert anns[0]['area'] == int(masks[0].sum())
    ys, xs = np.nonzero(masks[0])
    assert anns[0]['bbox'] == [
        xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    ]


def test_garments_are_mirror_symmetric():
    rng = np.random.default_rng(5)
    for cat in FASHION_CATEGORIES:
        outline = garment_outline(cat['id'], rng)
        flip = np.array(FASHION_FLIP_INDICES)[category_slice(cat['id'])]
        partner = outline[flip - cat['start']]
        # Left points sit at positive x (wearer's left = image right) and
        # roughly mirror their right partners.
        lefts = [
            i for i, n in enumerate(cat['keypoints']) if '_left_' in n
        ]
        assert lefts and np.all(outline[lefts, 0] > 0)
        np.testing.assert_allclose(outline[:, 0], -partner[:, 0], atol=0.2)


def test_loads_with_pycocotools_and_mmpose(fashion):
    from pycocotools.coco import COCO
    coco = COCO(fashion['train_ann_file'])
    assert len(coco.getAnnIds()) == fashion['num_train_instances']
    import mmkp_ext  # noqa: F401  (registers ToyFashionDataset)
    from mmpose.registry import DATASETS
    ds = DATASETS.build(
        dict(
            type='ToyFashionDataset',
            data_root=fashion['out_dir'],
            data_mode='topdown',
            ann_file='annotations/train.json',
            data_prefix=dict(img='images/train/'),
            test_mode=False,
            pipeline=[]))
    assert type(ds).__name__ == 'ToyFashionDataset'
    assert len(ds) == fashion['num_train_instances']
    for i in range(len(ds)):
        item = ds[i]
        assert item['keypoints'].shape == (1, FASHION_NUM_KEYPOINTS, 2)
        assert item['keypoints_visible'].shape == (1, FASHION_NUM_KEYPOINTS)
        live = np.zeros(FASHION_NUM_KEYPOINTS, bool)
        live[category_slice(int(item['category_id']))] = True
        assert np.all(item['keypoints_visible'][0][~live] == 0)
    assert ds.metainfo['dataset_name'] == 'toy_fashion'
    assert list(ds.metainfo['flip_indices']) == list(FASHION_FLIP_INDICES)


def test_cli(tmp_path):
    out = tmp_path / 'cli'
    proc = run_python([
        osp.join(REPO, 'tools', 'dataset_converters', 'make_toy_dataset.py'),
        '--kind', 'fashion', '--out', str(out), '--num-images', '4',
        '--seed', '2', '--val-fraction', '0.25'
    ], cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stdout
    assert 'train: 3 images' in proc.stdout
    assert 'val: 1 images' in proc.stdout
    # The CLI is a thin wrapper: same files as the library call.
    ref = make_toy_dataset(
        'fashion', str(tmp_path / 'ref'), num_images=4, seed=2,
        val_fraction=0.25)
    for split in ('train', 'val'):
        assert (out / 'annotations' / f'{split}.json').read_bytes() == open(
            ref[f'{split}_ann_file'], 'rb').read()

"""Tests of the synthetic ``persons`` dataset
(:mod:`mmkp_ext.datasets.toy.persons`)."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
from _helpers import check_coco_keypoint_split, load_json

from mmkp_ext.datasets import COCO_KEYPOINT_NAMES, make_toy_dataset
from mmkp_ext.datasets.toy.persons import (annotate_persons, draw_person,
                                           figure_from_pose, neutral_pose,
                                           render_persons)

KPT = {name: i for i, name in enumerate(COCO_KEYPOINT_NAMES)}
NUM_IMAGES = 16


@pytest.fixture(scope='module')
def persons(tmp_path_factory):
    out = tmp_path_factory.mktemp('toy_persons')
    summary = make_toy_dataset(
        'persons', str(out), num_images=NUM_IMAGES, seed=0, val_fraction=0.25)
    return summary


def _read_images(img_dir, coco):
    return [
        cv2.imread(osp.join(img_dir, img['file_name']))
        for img in coco['images']
    ]


def test_determinism(tmp_path):
    a = make_toy_dataset('persons', str(tmp_path / 'a'), num_images=5, seed=7)
    b = make_toy_dataset('persons', str(tmp_path / 'b'), num_images=5, seed=7)
    c = make_toy_dataset('persons', str(tmp_path / 'c'), num_images=5, seed=8)
    for split in ('train', 'val'):
        ja = open(a[f'{split}_ann_file'], 'rb').read()
        jb = open(b[f'{split}_ann_file'], 'rb').read()
        assert ja == jb
        coco = json.loads(ja)
        for ia, ib in zip(
                _read_images(a[f'{split}_img_dir'], coco),
                _read_images(b[f'{split}_img_dir'], coco)):
            np.testing.assert_array_equal(ia, ib)
    ja = load_json(a['train_ann_file'])
    jc = load_json(c['train_ann_file'])
    assert ja['annotations'] != jc['annotations']
    img_a = _read_images(a['train_img_dir'], ja)[0]
    img_c = cv2.imread(
        osp.join(c['train_img_dir'], jc['images'][0]['file_name']))
    assert not np.array_equal(img_a, img_c)


def test_validity_and_splits(persons):
    train, val = load_json(persons['train_ann_file']), load_json(
        persons['val_ann_file'])
    assert persons['num_train_images'] + persons['num_val_images'] == \
        NUM_IMAGES
    assert persons['num_val_images'] == 4
    assert train['images'] and val['images']
    kpts = [
        check_coco_keypoint_split(train, persons['train_img_dir'], 17),
        check_coco_keypoint_split(val, persons['val_img_dir'], 17)
    ]
    ids = [i['id'] for i in train['images'] + val['images']]
    assert len(set(ids)) == NUM_IMAGES
    ann_ids = [a['id'] for a in train['annotations'] + val['annotations']]
    assert len(ann_ids) == len(set(ann_ids))
    assert len(ann_ids) == (
        persons['num_train_instances'] + persons['num_val_instances'])
    for coco in (train, val):
        img_ids = {i['id'] for i in coco['images']}
        assert all(a['image_id'] in img_ids for a in coco['annotations'])
        assert [c['id'] for c in coco['categories']] == [1]
        assert coco['categories'][0]['keypoints'] == list(COCO_KEYPOINT_NAMES)
        assert all(a['category_id'] == 1 for a in coco['annotations'])
    # The small set exercises all three flags.
    flags = np.concatenate([k[..., 2].ravel() for k in kpts])
    assert {0.0, 1.0, 2.0} <= set(np.unique(flags))


def test_area_is_body_area(persons):
    train = load_json(persons['train_ann_file'])
    ratios = [a['area'] / (a['bbox'][2] * a['bbox'][3])
              for a in train['annotations']]
    # A person covers well under its box; box areas would give ratio 1.
    assert np.median(ratios) < 0.7


def _two_figures(shift):
    image = np.zeros((200, 200, 3), np.uint8)
    a = figure_from_pose(neutral_pose(), 150, (80, 110))
    b = figure_from_pose(neutral_pose(), 150, (80 + shift, 110))
    return image, [a, b]


def test_occlusion_flags_follow_later_masks():
    image, figures = _two_figures(shift=40)
    masks = render_persons(image, figures)
    anns = annotate_persons(figures, masks)
    ka, kb = anns[0]['keypoints'], anns[1]['keypoints']
    px = np.rint(figures[0].keypoints).astype(int)
    under_b = masks[1][px[:, 1], px[:, 0]]
    np.testing.assert_array_equal(ka[:, 2] == 1, under_b)
    assert under_b.any() and not under_b.all()
    # The person's left shoulder (image right) is behind B's torso.
    assert ka[KPT['left_shoulder'], 2] == 1
    assert ka[KPT['right_wrist'], 2] == 2
    # The front figure is fully visible.
    assert np.all(kb[:, 2] == 2)
    # Order matters: drawn the other way round, A is the visible one.
    image2, figures2 = _two_figures(shift=40)
    masks2 = render_persons(image2, figures2[::-1])
    anns2 = annotate_persons(figures2[::-1], masks2)
    assert np.all(anns2[1]['keypoints'][:, 2] == 2)
    assert np.any(anns2[0]['keypoints'][:, 2] == 1)


def test_occluder_mask_and_truncation():
    image = np.zeros((160, 160, 3), np.uint8)
    fig = figure_from_pose(neutral_pose(), 150, (80, 85))
    mask = draw_person(image, fig)
    occluder = np.zeros(mask.shape, bool)
    nx, ny = np.rint(fig.keypoints[KPT['nose']]).astype(int)
    occluder[ny - 2:ny + 3, nx - 2:nx + 3] = True
    ann = annotate_persons([fig], [mask], occluder)[0]
    assert ann['keypoints'][KPT['nose'], 2] == 1
    assert ann['keypoints'][KPT['left_eye'], 2] == 2
    # Truncated at the bottom: ankles leave the image (x=y=v=0), the box
    # stays inside the image and the area counts in-image pixels only.
    image = np.zeros((120, 160, 3), np.uint8)
    fig = figure_from_pose(neutral_pose(), 150, (80, 85))
    mask = draw_person(image, fig)
    ann = annotate_persons([fig], [mask])[0]
    for name in ('left_ankle', 'right_ankle'):
        assert fig.keypoints[KPT[name], 1] > 119
        np.testing.assert_array_equal(ann['keypoints'][KPT[name]], 0)
    assert ann['bbox'][1] + ann['bbox'][3] <= 120
    assert ann['area'] == int(mask.sum())
    # Almost entirely outside: fewer than 3 labelled keypoints -> dropped.
    fig = figure_from_pose(neutral_pose(), 150, (80, -60))
    mask = draw_person(np.zeros((120, 160, 3), np.uint8), fig)
    assert annotate_persons([fig], [mask]) == [None]


def test_frontal_and_flip_symmetric():
    size = 201
    image = np.zeros((size, size, 3), np.uint8)
    fig = figure_from_pose(neutral_pose(), 170, ((size - 1) / 2, 100))
    mask = draw_person(image, fig)
    k = fig.keypoints
    # Facing the camera: the person's left is on the image's right.
    for part in ('eye', 'ear', 'shoulder', 'elbow', 'wrist', 'hip', 'knee',
                 'ankle'):
        assert k[KPT[f'left_{part}'], 0] > k[KPT[f'right_{part}'], 0]
    # Mirroring the geometry with left/right swapped gives the same pose.
    flip = [
        KPT[n.replace('left_', 'TMP_').replace('right_', 'left_').replace(
            'TMP_', 'right_')] for n in COCO_KEYPOINT_NAMES
    ]
    mirrored = k[flip].copy()
    mirrored[:, 0] = size - 1 - mirrored[:, 0]
    np.testing.assert_allclose(mirrored, k, atol=1e-6)
    # No left/right colour coding: the drawing is its own mirror image up
    # to rasterisation.
    iou = (mask & mask[:, ::-1]).sum() / (mask | mask[:, ::-1]).sum()
    assert iou > 0.95
    diff = np.abs(image.astype(int) - image[:, ::-1].astype(int)).sum(2)
    assert np.mean(diff[mask & mask[:, ::-1]] > 30) < 0.05


def test_pose_variety(persons):
    train = load_json(persons['train_ann_file'])
    heights = [a['bbox'][3] for a in train['annotations']]
    assert min(heights) < 60 and max(heights) > 120
    counts = np.bincount([a['image_id'] for a in train['annotations']])
    assert counts.max() >= 2


def test_loads_with_pycocotools(persons):
    from pycocotools.coco import COCO
    coco = COCO(persons['train_ann_file'])
    assert len(coco.getImgIds()) == persons['num_train_images']
    assert len(coco.getAnnIds()) == persons['num_train_instances']
    assert coco.loadCats(1)[0]['name'] == 'person'


# mmpose resolves the relative metainfo path to its packaged copy and warns.
@pytest.mark.filterwarnings('ignore:The metainfo config file')
def test_loads_with_mmpose_coco_dataset(persons):
    import mmkp_ext  # noqa: F401  (compat fixes before mmpose imports)
    from mmpose.datasets import CocoDataset
    common = dict(
        metainfo=dict(from_file='configs/_base_/datasets/coco.py'),
        data_root=persons['out_dir'],
        ann_file='annotations/train.json',
        data_prefix=dict(img='images/train/'),
        test_mode=False,
        pipeline=[])
    ds = CocoDataset(data_mode='topdown', **common)
    assert len(ds) == persons['num_train_instances']
    item = ds[0]
    assert item['keypoints'].shape == (1, 17, 2)
    assert item['keypoints_visible'].shape == (1, 17)
    assert osp.isfile(item['img_path'])
    assert item['flip_indices'][KPT['left_wrist']] == KPT['right_wrist']
    bu = CocoDataset(data_mode='bottomup', **common)
    train = load_json(persons['train_ann_file'])
    assert len(bu) == len({a['image_id'] for a in train['annotations']})


@pytest.mark.parametrize(
    'kwargs',
    [
        dict(kind='cats'),
        dict(num_images=0),
        dict(val_fraction=1.0),
        dict(val_fraction=-0.1),
        dict(image_size=32),
        dict(image_size=(256, 40)),
        dict(seed=-1),
        dict(image_ext='gif'),
    ])
def test_bad_arguments(tmp_path, kwargs):
    args = dict(kind='persons', out_dir=str(tmp_path), num_images=2)
    args.update(kwargs)
    with pytest.raises(ValueError):
        make_toy_dataset(**args)


def test_rectangular_png(tmp_path):
    s = make_toy_dataset(
        'persons', str(tmp_path), num_images=3, seed=1, val_fraction=0.0,
        image_size=(160, 96), image_ext='png')
    assert s['num_val_images'] == 0 and s['num_train_images'] == 3
    coco = load_json(s['train_ann_file'])
    assert load_json(s['val_ann_file'])['images'] == []
    for img in coco['images']:
        assert img['file_name'].endswith('.png')
        assert (img['width'], img['height']) == (160, 96)
    check_coco_keypoint_split(coco, s['train_img_dir'], 17)

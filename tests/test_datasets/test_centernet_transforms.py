"""Tests of ``CenterNetFilterInstances``: hand-built cases for every rule,
and the bottom-up training pipeline on toy fashion data and on the real
DeepFashion2 fixture, checking that ``category_id`` and every other
per-instance field stay aligned while instances are dropped."""
import copy
import os.path as osp

import numpy as np
import pytest
from _helpers import shared_data_dir
from mmengine.registry import DefaultScope

import mmkp_ext  # noqa: F401
from mmkp_ext.datasets import (DEEPFASHION2_CATEGORY_RANGES,
                               get_category_keypoint_ranges, make_toy_dataset)
from mmkp_ext.datasets.transforms import (INSTANCE_KEYS,
                                          CenterNetFilterInstances)
from mmpose.registry import DATASETS, TRANSFORMS

# 3 classes over 8 keypoints: class 0 -> 0..2, class 1 -> 3..5, class 2 ->
# 6..7 (category ids 1, 2, 3).
LAYOUT = [(0, 2), (3, 5), (6, 7)]
W, H = 64, 48


def _results(category_id=(1, 2, 3, 1), **overrides):
    """A bottom-up results dict of 4 instances on a W x H image; instance
    i labels keypoints of its own category only, all inside the image."""
    n, k = len(category_id), 8
    keypoints = np.zeros((n, k, 2), np.float32)
    visible = np.zeros((n, k), np.float32)
    for i, cat in enumerate(category_id):
        first, last = LAYOUT[cat - 1] if 1 <= cat <= 3 else (0, 0)
        span = np.arange(first, last + 1)
        keypoints[i, span] = np.stack(
            [10. + 3 * i + span, 5. + 2 * i + span], axis=1)
        visible[i, span] = 1.
    results = dict(
        img_id=7,
        img_path='/data/img_7.jpg',
        img=np.zeros((H, W, 3), np.uint8),
        keypoints=keypoints,
        keypoints_visible=visible,
        bbox=np.array([[5 + i, 4 + i, 30 + i, 40 + i] for i in range(n)],
                      np.float32),
        bbox_score=np.arange(1, n + 1, dtype=np.float32) / 10,
        category_id=np.array(category_id),
        area=np.arange(100, 100 + n, dtype=np.float32),
        id=[1000 + i for i in range(n)],
        iscrowd=[0] * n,
        num_keypoints=[int(v.sum()) for v in visible],
        raw_ann_info=[dict(id=1000 + i) for i in range(n)],
        segmentation=[[1, 2, 3]] * 7,  # not per-instance in mmpose
    )
    results.update(overrides)
    return results


def _transform(results, **kwargs):
    kwargs.setdefault('category_keypoints', LAYOUT)
    return CenterNetFilterInstances(**kwargs)(results)


def test_registered_and_repr():
    t = TRANSFORMS.build(
        dict(type='CenterNetFilterInstances', category_keypoints='coco'))
    assert isinstance(t, CenterNetFilterInstances)
    assert t.num_classes == 1
    assert "category_keypoints='coco'" in repr(t)
    assert CenterNetFilterInstances('deepfashion2').num_classes == 13


def test_valid_instances_pass_unchanged():
    before = _results()
    after = _transform(copy.deepcopy(before))
    for key in INSTANCE_KEYS:
        if key in before:
            np.testing.assert_array_equal(np.asarray(after[key]),
                                          np.asarray(before[key]), key)
    assert after['category_id'].dtype == np.int64
    assert after['segmentation'] == before['segmentation']


def test_drops_keep_every_field_aligned():
    before = _results(category_id=(1, 2, 3, 1, 2))
    before['bbox'][1] = [20, 10, 20, 30]  # zero width
    before['bbox'][2] = [70, 10, 90, 30]  # right of the image: clipped away
    before['iscrowd'][3] = 1  # crowd
    before['bbox'][4] = [-10, -8, 12, 9]  # partly outside: clipped, kept
    after = _transform(copy.deepcopy(before))
    kept = [0, 4]
    for key in ('bbox_score', 'category_id', 'keypoints',
                'keypoints_visible', 'area'):
        np.testing.assert_array_equal(after[key], before[key][kept], key)
    for key in ('id', 'iscrowd', 'raw_ann_info', 'num_keypoints'):
        assert after[key] == [before[key][i] for i in kept], key
    np.testing.assert_array_equal(after['bbox'],
                                  [[5, 4, 30, 40], [0, 0, 12, 9]])
    # the raw annotation still belongs to the same instance
    assert [a['id'] for a in after['raw_ann_info']] == after['id']


def test_min_bbox_size_and_crowd_switch():
    before = _results()
    before['bbox'][1] = [10, 10, 13, 30]  # 3 px wide
    before['iscrowd'][2] = 1
    after = _transform(copy.deepcopy(before), min_bbox_size=3)
    assert after['id'] == [1000, 1003]
    after = _transform(
        copy.deepcopy(before), min_bbox_size=2.9, drop_crowd=False)
    assert after['id'] == [1000, 1001, 1002, 1003]


def test_non_finite_keypoints_become_unlabelled():
    before = _results()
    before['keypoints'][0, 1] = [np.nan, 12.]
    before['keypoints'][1, 4, 1] = np.inf
    before['keypoints_visible'][2, 6] = np.nan
    after = _transform(copy.deepcopy(before))
    expected_visible = before['keypoints_visible'].copy()
    expected_visible[[0, 1, 2], [1, 4, 6]] = 0
    np.testing.assert_array_equal(after['keypoints_visible'],
                                  expected_visible)
    np.testing.assert_array_equal(after['keypoints'][0, 1], [0, 0])
    np.testing.assert_array_equal(after['keypoints'][1, 4], [0, 0])
    assert np.isfinite(after['keypoints']).all()
    assert after['num_keypoints'] == [2, 2, 1, 3]


def test_keypoints_outside_image():
    before = _results()
    # [0, W) x [0, H): x == W and y == -0.01 are outside, x == 0 and
    # y == H - 0.01 inside
    before['keypoints'][0, 0] = [W, 10]
    before['keypoints'][0, 1] = [0, H - 0.01]
    before['keypoints'][1, 3] = [20, -0.01]
    before['keypoints'][1, 4] = [W - 0.01, 0]
    after = _transform(copy.deepcopy(before))
    assert after['keypoints_visible'][0, :3].tolist() == [0, 1, 1]
    assert after['keypoints_visible'][1, 3:6].tolist() == [0, 1, 1]
    # coordinates are kept; only the label goes
    np.testing.assert_array_equal(after['keypoints'], before['keypoints'])
    assert after['num_keypoints'] == [2, 2, 2, 3]
    kept = _transform(copy.deepcopy(before), outside_image='keep')
    np.testing.assert_array_equal(kept['keypoints_visible'],
                                  before['keypoints_visible'])


def test_visibility_with_weights_channel():
    before = _results()
    weights = np.full(before['keypoints_visible'].shape, 0.5, np.float32)
    before['keypoints_visible'] = np.stack(
        [before['keypoints_visible'], weights], axis=-1)
    before['keypoints'][0, 0] = [np.nan, np.nan]
    after = _transform(copy.deepcopy(before))
    assert after['keypoints_visible'].shape == (4, 8, 2)
    assert after['keypoints_visible'][0, 0, 0] == 0
    assert after['keypoints_visible'][0, 1, 0] == 1
    assert np.all(after['keypoints_visible'][..., 1] == 0.5)


def test_corner_boxes_become_enclosing_xyxy():
    before = _results(category_id=(1, 2))
    # a rotated box (corners) and one half outside the image
    before['bbox'] = np.array([
        [[20, 5], [35, 20], [20, 35], [5, 20]],
        [[50, 30], [80, 30], [80, 60], [50, 60]],
    ], np.float32)
    after = _transform(copy.deepcopy(before))
    np.testing.assert_array_equal(after['bbox'],
                                  [[5, 5, 35, 35], [50, 30, W, H]])
    unclipped = _transform(copy.deepcopy(before), clip_bbox=False)
    np.testing.assert_array_equal(unclipped['bbox'][1], [50, 30, 80, 60])


def test_non_finite_box_is_dropped():
    before = _results()
    before['bbox'][2, 0] = np.nan
    assert _transform(copy.deepcopy(before))['id'] == [1000, 1001, 1003]


def test_min_keypoints():
    before = _results()
    before['keypoints_visible'][0, 1:] = 0  # 1 labelled keypoint left
    after = _transform(copy.deepcopy(before), min_keypoints=2)
    assert after['id'] == [1001, 1002, 1003]
    assert _transform(copy.deepcopy(before))['id'] == [
        1000, 1001, 1002, 1003
    ]


@pytest.mark.parametrize('bad', [0, 4, -1, 99])
def test_unknown_category_id_names_id_and_image(bad):
    before = _results(category_id=(1, 2, bad, 1))
    with pytest.raises(ValueError) as err:
        _transform(before)
    msg = str(err.value)
    assert f'unknown category_id {bad}' in msg
    assert 'instance 2' in msg and 'image 7' in msg and 'img_7.jpg' in msg
    assert '1..3' in msg


def test_bad_category_id_types():
    with pytest.raises(ValueError, match='integers'):
        _transform(_results() | dict(category_id=np.array([1., 2.5, 3., 1.])))
    with pytest.raises(ValueError, match='integers'):
        _transform(_results() | dict(category_id=np.array(['1'] * 4)))
    # integral floats and lists are accepted
    out = _transform(_results() | dict(category_id=[1., 2., 3., 1.]))
    assert out['category_id'].tolist() == [1, 2, 3, 1]
    assert out['category_id'].dtype == np.int64
    with pytest.raises(ValueError, match=r'shape \(3,\), expected \(4,\)'):
        _transform(_results(category_id=(1, 2, 3, 1)) | dict(
            category_id=np.array([1, 2, 3])))
    results = _results()
    del results['category_id']
    with pytest.raises(ValueError, match='no "category_id"'):
        _transform(results)


def test_keypoints_outside_category_slice():
    before = _results()
    before['keypoints_visible'][1, 7] = 1  # class 1 (id 2) labels kpt 7
    before['keypoints'][1, 7] = [20, 20]
    with pytest.raises(ValueError) as err:
        _transform(copy.deepcopy(before))
    msg = str(err.value)
    assert 'instance 1 (category_id 2)' in msg
    assert 'keypoint 7' in msg and '[3, 5]' in msg and 'image 7' in msg
    after = _transform(copy.deepcopy(before), outside_category='unlabel')
    assert after['keypoints_visible'][1, 7] == 0
    np.testing.assert_array_equal(after['keypoints_visible'][0],
                                  before['keypoints_visible'][0])
    # an unlabelled keypoint outside the slice is fine
    before['keypoints_visible'][1, 7] = 0
    _transform(copy.deepcopy(before))


def test_misaligned_field_is_refused():
    # what mmpose's FilterAnnotations leaves behind: the arrays filtered,
    # the lists not
    before = _results()
    filter_annotations = TRANSFORMS.build(
        dict(type='FilterAnnotations', by_kpt=True, min_kpt_vis=3))
    filtered = filter_annotations(copy.deepcopy(before))
    assert len(filtered['keypoints']) == 3 and len(filtered['id']) == 4
    with pytest.raises(ValueError, match='"id" has 4 entries but there are 3'):
        _transform(filtered)
    with pytest.raises(ValueError, match='"area" has 2 entries'):
        _transform(_results() | dict(area=np.ones(2)))
    with pytest.raises(ValueError, match='"my_key" has 1 entries'):
        _transform(_results() | dict(my_key=[0]),
                   extra_instance_keys=['my_key'])
    with pytest.raises(ValueError, match='"iscrowd" is a int'):
        _transform(_results() | dict(iscrowd=0))


def test_extra_instance_keys_are_filtered():
    before = _results() | dict(track=np.array([5, 6, 7, 8]))
    before['bbox'][0] = [3, 3, 3, 9]
    after = _transform(copy.deepcopy(before), extra_instance_keys=['track'])
    assert after['track'].tolist() == [6, 7, 8]
    assert _transform(copy.deepcopy(before))['track'].tolist() == [
        5, 6, 7, 8
    ]


def test_empty_image():
    before = _results()
    before['bbox'][:, 2] = before['bbox'][:, 0]  # all zero width
    after = _transform(copy.deepcopy(before))
    assert after['keypoints'].shape == (0, 8, 2)
    assert after['keypoints_visible'].shape == (0, 8)
    assert after['bbox'].shape == (0, 4)
    assert after['category_id'].shape == (0, )
    assert after['id'] == [] and after['raw_ann_info'] == []
    assert _transform(copy.deepcopy(before), drop_empty_images=True) is None
    # an image that had no instances to begin with
    empty = _results(category_id=())
    empty['bbox'] = np.zeros((0, 4), np.float32)
    out = _transform(empty)
    assert out['keypoints'].shape == (0, 8, 2)


def test_missing_or_malformed_inputs():
    with pytest.raises(ValueError, match='no "keypoints"'):
        _transform(_results() | dict(keypoints=None))
    with pytest.raises(ValueError, match=r'keypoints must be \(N, K, 2\)'):
        _transform(_results() | dict(keypoints=np.zeros((4, 8, 3))))
    with pytest.raises(ValueError, match='keypoints_visible has shape'):
        _transform(_results() | dict(keypoints_visible=np.ones((4, 7))))
    with pytest.raises(ValueError, match='no "bbox"'):
        _transform(_results() | dict(bbox=None))
    with pytest.raises(ValueError, match='bbox has shape'):
        _transform(_results() | dict(bbox=np.zeros((4, 5))))
    # a layout that does not fit the keypoint count
    with pytest.raises(ValueError, match='outside the 8 keypoints'):
        _transform(_results(),
                   category_keypoints=[(0, 2), (3, 5), (6, 8)])


def test_image_size_sources():
    # input_size is (w, h), img_shape is (h, w)
    results = _results()
    del results['img']
    results['input_size'] = (W, H)
    results['keypoints'][0, 0] = [W - 1, H - 1]
    assert _transform(copy.deepcopy(results))['keypoints_visible'][0, 0] == 1
    del results['input_size']
    results['img_shape'] = (H, W)
    assert _transform(copy.deepcopy(results))['keypoints_visible'][0, 0] == 1
    del results['img_shape']
    with pytest.raises(ValueError, match='needs the image size'):
        _transform(results)


@pytest.mark.parametrize('kwargs, match', [
    (dict(category_keypoints='nope'), 'unknown keypoint layout'),
    (dict(min_bbox_size=-1), 'min_bbox_size'),
    (dict(outside_image='drop'), 'outside_image'),
    (dict(outside_category='keep'), 'outside_category'),
    (dict(min_keypoints=-2), 'min_keypoints'),
])
def test_bad_arguments(kwargs, match):
    kwargs.setdefault('category_keypoints', LAYOUT)
    with pytest.raises(ValueError, match=match):
        CenterNetFilterInstances(**kwargs)
    with pytest.raises(TypeError, match='extra_instance_keys'):
        CenterNetFilterInstances(LAYOUT, extra_instance_keys='track')


# ---------------------------------------------------------------------------
# the bottom-up training pipeline on real files
# ---------------------------------------------------------------------------
def _pipeline(layout, input_size):
    return [
        dict(type='LoadImage'),
        # zoomed in and shifted hard, so that objects leave the image
        dict(
            type='BottomupRandomAffine',
            input_size=input_size,
            shift_factor=0.3,
            scale_factor=(0.35, 1.2),
            rotate_factor=30),
        dict(type='RandomFlip', direction='horizontal', prob=0.5),
        dict(type='CenterNetFilterInstances', category_keypoints=layout),
    ]


def _build_dataset(cfg):
    # the pipeline's transform names resolve in mmpose's scope
    with DefaultScope.overwrite_default_scope('mmpose'):
        return DATASETS.build(cfg)


def _expected_geometry(info, results):
    """The source instances' keypoints, visibilities and boxes moved by the
    sample's warp and flip (computed independently of the transforms)."""
    warp = results['warp_mat']
    img_w, img_h = results['input_size']

    def move(xy):
        xy = xy @ warp[:, :2].T + warp[:, 2]
        if results['flip']:
            xy[..., 0] = img_w - 1 - xy[..., 0]
        return xy

    keypoints = move(info['keypoints'].astype(np.float64))
    visible = info['keypoints_visible'].copy()
    if results['flip']:
        flip = np.asarray(results['flip_indices'])
        keypoints, visible = keypoints[:, flip], visible[:, flip]
    x, y = keypoints[..., 0], keypoints[..., 1]
    visible[~((x >= 0) & (x < img_w) & (y >= 0) & (y < img_h))] = 0
    x1, y1, x2, y2 = info['bbox'].T.astype(np.float64)
    corners = move(
        np.stack([
            np.stack([x1, y1], -1),
            np.stack([x2, y1], -1),
            np.stack([x2, y2], -1),
            np.stack([x1, y2], -1)
        ], 1))
    boxes = np.concatenate([corners.min(1), corners.max(1)], axis=1)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, img_w)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, img_h)
    return keypoints, visible, boxes


def _check_pipeline(dataset, ranges, rounds):
    """Run every image ``rounds`` times; check alignment; return the
    numbers of instances and of labelled keypoints before and after."""
    num_in = num_out = labelled_in = labelled_out = 0
    num_kpts = dataset.metainfo['num_keypoints']
    for seed in range(rounds):
        np.random.seed(seed)
        for idx in range(len(dataset)):
            info = dataset.get_data_info(idx)
            results = dataset[idx]
            num_in += len(info['id'])
            num_out += len(results['id'])
            labelled_in += int((info['keypoints_visible'] > 0).sum())
            labelled_out += int((results['keypoints_visible'] > 0).sum())
            cats = results['category_id']
            assert cats.dtype == np.int64
            assert results['keypoints'].shape == (len(cats), num_kpts, 2)
            keypoints, visible, boxes = _expected_geometry(info, results)
            rows = [info['id'].index(i) for i in results['id']]
            assert rows == sorted(rows)  # order preserved
            # each kept instance is the same annotation in every field
            assert cats.tolist() == [
                a['category_id'] for a in results['raw_ann_info']
            ]
            assert results['id'] == [a['id'] for a in results['raw_ann_info']]
            np.testing.assert_array_equal(cats, info['category_id'][rows])
            # BottomupRandomAffine scales the area by the warp's determinant
            np.testing.assert_allclose(
                results['area'],
                info['area'][rows] * np.linalg.det(results['warp_mat'][:, :2]),
                rtol=1e-4)
            np.testing.assert_array_equal(results['keypoints_visible'],
                                          visible[rows])
            lab = visible[rows] > 0
            np.testing.assert_allclose(
                results['keypoints'][lab], keypoints[rows][lab], atol=1e-3)
            np.testing.assert_allclose(results['bbox'], boxes[rows],
                                       atol=1e-3)
            # labelled keypoints lie in the instance's category slice
            for cat, vis in zip(cats, results['keypoints_visible']):
                first, last = ranges[cat - 1]
                labelled = np.flatnonzero(vis > 0)
                assert np.all((labelled >= first) & (labelled <= last))
            # kept boxes have an area; the dropped ones had none left
            w = results['bbox'][:, 2] - results['bbox'][:, 0]
            h = results['bbox'][:, 3] - results['bbox'][:, 1]
            assert np.all((w > 0) & (h > 0))
            dropped = sorted(set(range(len(info['id']))) - set(rows))
            bw = boxes[dropped, 2] - boxes[dropped, 0]
            bh = boxes[dropped, 3] - boxes[dropped, 1]
            assert np.all((bw <= 0) | (bh <= 0))
    return num_in, num_out, labelled_in, labelled_out


def test_pipeline_toy_fashion(tmp_path):
    from mmpose.datasets.datasets.utils import parse_pose_metainfo

    from mmkp_ext.datasets import FASHION_METAINFO_FILE
    info = make_toy_dataset('fashion', str(tmp_path), num_images=6)
    dataset = _build_dataset(
        dict(
            type='ToyFashionDataset',
            data_mode='bottomup',
            ann_file=info['train_ann_file'],
            data_prefix=dict(img=info['train_img_dir'] + '/'),
            pipeline=_pipeline('toy_fashion', (96, 96))))
    ranges = get_category_keypoint_ranges('toy_fashion')
    # the toy flip table never crosses categories (else the transform
    # would raise)
    flip = np.array(
        parse_pose_metainfo(dict(
            from_file=FASHION_METAINFO_FILE))['flip_indices'])
    owner = np.concatenate(
        [np.full(b - a + 1, c) for c, (a, b) in enumerate(ranges)])
    assert np.all(owner[flip] == owner)
    categories = np.concatenate([
        dataset.get_data_info(i)['category_id'] for i in range(len(dataset))
    ])
    assert len(set(categories.tolist())) >= 2
    num_in, num_out, _, _ = _check_pipeline(dataset, ranges, rounds=6)
    assert 0 < num_out < num_in  # some instances were dropped


def test_pipeline_real_deepfashion2():
    root = osp.join(shared_data_dir(), 'deepfashion2')
    if not osp.isdir(root):
        pytest.skip(f'real DeepFashion2 fixture not found at {root}')
    dataset = _build_dataset(
        dict(
            type='DeepFashion2FullDataset',
            data_mode='bottomup',
            ann_file=osp.join(root, 'deepfashion2.json'),
            data_prefix=dict(img=root + '/'),
            pipeline=_pipeline('deepfashion2', (128, 128))))
    assert len(dataset) == 2
    num_in, num_out, labelled_in, labelled_out = _check_pipeline(
        dataset, list(DEEPFASHION2_CATEGORY_RANGES), rounds=6)
    # the garments fill most of the photos: they stay, but some of their
    # keypoints leave the image and are unlabelled
    assert num_out == num_in == 12
    assert 0 < labelled_out < labelled_in

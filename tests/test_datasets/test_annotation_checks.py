"""Annotation files are checked when loaded (issue 16): by mmkp_ext's
dataset classes, the ``Checked*Dataset`` variants of mmpose's, and the
metrics' GT loading. Each fault gives one error naming the file, the
problem and the first annotation ids -- or, for a missing ``area``, the
documented default (0.53 * box area) with a logged count."""
import copy
import json
import os.path as osp

import numpy as np
import pytest
from _helpers import load_json, shared_data_dir

import mmkp_ext  # noqa: F401
from mmkp_ext.datasets import (AnnotationError, CheckedCocoDataset,
                               CheckedCrowdPoseDataset, ToyFashionDataset,
                               check_coco_keypoint_annotations)
from mmkp_ext.datasets import annotation_checks
from mmkp_ext.datasets.toy.fashion import FASHION_NUM_KEYPOINTS, \
    coco_categories
from mmkp_ext.evaluation import GuardedCocoMetric, MultiCategoryCocoMetric
from mmpose.datasets import CocoDataset, CrowdPoseDataset
from mmpose.datasets.datasets.utils import parse_pose_metainfo
from mmpose.registry import DATASETS


def _ann(ann_id, image_id=1, k=3, **over):
    ann = dict(id=ann_id, image_id=image_id, category_id=1,
               bbox=[10., 20., 30., 40.], area=700.,
               keypoints=[5., 6., 2.] * k, iscrowd=0)
    ann.update(over)
    return ann


def _coco(*anns):
    return dict(images=[dict(id=1, width=100, height=100, file_name='a')],
                categories=[dict(id=1, name='thing')],
                annotations=list(anns))


# ---------------------------------------------------------------------------
# the check itself, on hand-made files
# ---------------------------------------------------------------------------
def test_valid_file_passes_unchanged():
    data = _coco(_ann(1), _ann(2))
    before = copy.deepcopy(data)
    assert check_coco_keypoint_annotations(data, 'f.json', 3) == dict(
        num_annotations=2, num_filled_area=0)
    assert data == before


@pytest.mark.parametrize('edit, problem', [
    (lambda a: a.pop('bbox'), 'has no `bbox`'),
    (lambda a: a.pop('category_id'), 'has no `category_id`'),
    (lambda a: a.update(category_id=7),
     'has a `category_id` not in `categories` [1]'),
    (lambda a: a.pop('keypoints'), 'has no `keypoints`'),
    (lambda a: a.update(bbox=[1, 2, 3]), 'has a `bbox` that is not'),
    (lambda a: a.update(bbox=[1, 2, -3, 4]), 'has a `bbox` that is not'),
    (lambda a: a.update(bbox=[1, 2, float('nan'), 4]),
     'has a `bbox` that is not'),
    (lambda a: a.update(keypoints=[1., float('inf'), 2] * 3),
     'has `keypoints` that are not finite numbers'),
    (lambda a: a.update(area=-1.), 'has an `area` that is not'),
    (lambda a: a.update(area='big'), 'has an `area` that is not'),
    (lambda a: a.update(image_id=9),
     'refers to an `image_id` missing from `images`'),
    (lambda a: a.pop('image_id'), 'has no `image_id`'),
])
def test_each_fault_names_file_problem_and_ids(edit, problem):
    anns = [_ann(i) for i in range(1, 9)]
    for ann in anns[1:8]:  # ids 2..8 faulty: 5 listed and "2 more"
        edit(ann)
    with pytest.raises(AnnotationError) as err:
        check_coco_keypoint_annotations(_coco(*anns), 'my/ann.json', 3)
    msg = str(err.value)
    assert msg.startswith('invalid annotation file my/ann.json:\n')
    assert f'7 annotation(s) {problem}' in msg
    assert 'ids 2, 3, 4, 5, 6 and 2 more' in msg


def test_keypoint_count_names_both_counts_and_all_problems_at_once():
    data = _coco(_ann(1), _ann(2, k=2), _ann(3), _ann(4))
    del data['annotations'][3]['bbox']
    with pytest.raises(AnnotationError) as err:
        check_coco_keypoint_annotations(data, 'x.json', 3)
    msg = str(err.value)
    assert ("1 annotation(s) has a keypoint count other than the dataset "
            "metainfo's 3 (9 values): ids 2 (2 keypoints, 6 values)") in msg
    assert '1 annotation(s) has no `bbox`: ids 4' in msg
    # without a metainfo count, disagreeing lengths are still refused
    with pytest.raises(AnnotationError, match='disagree on the keypoint'):
        check_coco_keypoint_annotations(_coco(_ann(1), _ann(2, k=2)), 'x')
    with pytest.raises(AnnotationError, match='not a multiple of 3'):
        check_coco_keypoint_annotations(
            _coco(_ann(1, keypoints=[1., 2.])), 'x')


def test_structural_faults():
    with pytest.raises(AnnotationError, match='x.json: .*json object'):
        check_coco_keypoint_annotations([], 'x.json')
    with pytest.raises(AnnotationError, match='no `annotations` list'):
        check_coco_keypoint_annotations(dict(images=[]), 'x.json')
    with pytest.raises(AnnotationError, match=r'has no `id` .*ids #1'):
        check_coco_keypoint_annotations(
            _coco(_ann(1), {k: v
                            for k, v in _ann(2).items() if k != 'id'}), 'x')
    with pytest.raises(AnnotationError, match='repeats an annotation id'):
        check_coco_keypoint_annotations(_coco(_ann(1), _ann(1)), 'x')


def test_missing_area_gets_the_box_default_with_a_logged_count(monkeypatch):
    logged = []
    monkeypatch.setattr(annotation_checks, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    data = _coco(_ann(1), _ann(2), _ann(3))
    del data['annotations'][1]['area']
    del data['annotations'][2]['area']
    out = check_coco_keypoint_annotations(data, 'x.json', 3)
    assert out['num_filled_area'] == 2
    assert data['annotations'][0]['area'] == 700.
    assert data['annotations'][1]['area'] == pytest.approx(0.53 * 30 * 40)
    assert len(logged) == 1 and '2 of 3 annotations have no `area`' in \
        logged[0]
    data = _coco(_ann(1, area=None))
    del data['annotations'][0]['area']
    with pytest.raises(AnnotationError, match='has no `area`'):
        check_coco_keypoint_annotations(data, 'x', 3, fill_area=False)


def test_unreadable_files(tmp_path):
    bad = tmp_path / 'latin1.json'
    bad.write_bytes(b'{"images": [], "annotations": [], "x": "\xe9"}')
    with pytest.raises(AnnotationError, match='latin1.json is not UTF-8'):
        annotation_checks.load_checked_coco_json(str(bad))
    with pytest.raises(AnnotationError, match='nope.json does not exist'):
        annotation_checks.load_checked_coco_json(str(tmp_path / 'nope.json'))


# ---------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------
def _fixture(*parts):
    path = osp.join(shared_data_dir(), *parts)
    if not osp.exists(path):
        pytest.skip(f'real-data fixture not found at {path}')
    return path


def _broken(tmp_path, src, edit, name='broken.json'):
    data = load_json(src)
    edit(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path), data


def _same_data_list(a, b, skip=()):
    assert len(a) == len(b) > 0
    for i in range(len(a)):
        x, y = a.get_data_info(i), b.get_data_info(i)
        assert x.keys() == y.keys()
        for key in x:
            if key in skip:
                continue
            if isinstance(x[key], np.ndarray):
                np.testing.assert_array_equal(x[key], y[key])
            else:
                assert x[key] == y[key], key


@pytest.mark.parametrize('mode', ['topdown', 'bottomup'])
def test_checked_datasets_equal_mmpose_on_valid_files(mode):
    coco = _fixture('coco', 'test_coco.json')
    kw = dict(data_mode=mode, pipeline=[], test_mode=True)
    _same_data_list(CheckedCocoDataset(ann_file=coco, **kw),
                    CocoDataset(ann_file=coco, **kw))
    # CrowdPose files have no areas: the default replaces mmpose's clipped
    # one (and goes into raw_ann_info)
    crowd = _fixture('crowdpose', 'test_crowdpose.json')
    _same_data_list(
        CheckedCrowdPoseDataset(ann_file=crowd, **kw),
        CrowdPoseDataset(ann_file=crowd, **kw), skip=('area', 'raw_ann_info'))
    for name in ('CheckedCocoDataset', 'CheckedCrowdPoseDataset',
                 'CheckedAicDataset'):
        assert DATASETS.get(name) is not None


def test_coco_dataset_faults(tmp_path):
    coco = _fixture('coco', 'test_coco.json')
    kw = dict(pipeline=[], test_mode=True)
    first = load_json(coco)['annotations'][0]['id']

    # 14 keypoints in a 17-keypoint dataset: named at load
    path, _ = _broken(
        tmp_path, coco,
        lambda d: d['annotations'][0].update(
            keypoints=d['annotations'][0]['keypoints'][:42]))
    with pytest.raises(AnnotationError) as err:
        CheckedCocoDataset(ann_file=path, **kw)
    assert path in str(err.value)
    assert (f"metainfo's 17 (51 values): ids {first} (14 keypoints, 42 "
            'values)') in str(err.value)

    # no bbox: mmpose silently drops the instance; refused here
    path, data = _broken(tmp_path, coco,
                         lambda d: d['annotations'][2].pop('bbox'))
    assert len(CocoDataset(ann_file=path, **kw)) == len(
        CocoDataset(ann_file=coco, **kw)) - 1
    bad_id = data['annotations'][2]['id']
    with pytest.raises(AnnotationError, match=rf'has no `bbox`: ids {bad_id}'):
        CheckedCocoDataset(ann_file=path, **kw)

    # no category_id: a bare KeyError in mmpose
    path, _ = _broken(tmp_path, coco,
                      lambda d: d['annotations'][1].pop('category_id'))
    with pytest.raises(KeyError):
        CocoDataset(ann_file=path, **kw)
    with pytest.raises(AnnotationError, match='has no `category_id`'):
        CheckedCocoDataset(ann_file=path, **kw)

    # no area: default, as mmpose's dataset would compute it from the box
    path, data = _broken(tmp_path, coco,
                         lambda d: d['annotations'][0].pop('area'))
    ds = CheckedCocoDataset(ann_file=path, data_mode='bottomup', **kw)
    x, y, w, h = data['annotations'][0]['bbox']
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    info = next(i for i in infos if data['annotations'][0]['id'] in i['id'])
    k = info['id'].index(data['annotations'][0]['id'])
    assert info['area'][k] == pytest.approx(0.53 * w * h)
    assert info['raw_ann_info'][k]['area'] == pytest.approx(0.53 * w * h)


def _toy_fashion_json(tmp_path, num_keypoints=FASHION_NUM_KEYPOINTS):
    kpts = np.zeros((FASHION_NUM_KEYPOINTS, 3))
    kpts[:6] = [20., 30., 2.]
    anns = [
        dict(id=i, image_id=1, category_id=1, iscrowd=0, area=500.,
             bbox=[10., 10., 40., 40.], num_keypoints=6,
             keypoints=kpts[:num_keypoints if i == 7 else None].reshape(
                 -1).tolist()) for i in (5, 6, 7)
    ]
    data = dict(images=[dict(id=1, width=64, height=64, file_name='1.jpg')],
                categories=coco_categories(), annotations=anns)
    path = tmp_path / 'toy_fashion.json'
    path.write_text(json.dumps(data))
    return str(path)


def test_toy_fashion_31_keypoints_named_at_load(tmp_path):
    good = _toy_fashion_json(tmp_path)
    assert len(ToyFashionDataset(ann_file=good, data_mode='bottomup',
                                 pipeline=[])) == 1
    bad = _toy_fashion_json(tmp_path, num_keypoints=31)
    with pytest.raises(AnnotationError) as err:
        ToyFashionDataset(ann_file=bad, data_mode='bottomup', pipeline=[])
    msg = str(err.value)
    assert 'toy_fashion.json' in msg
    assert ("metainfo's 32 (96 values): ids 7 (31 keypoints, 93 values)"
            in msg)


# ---------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('metric_cls',
                         [GuardedCocoMetric, MultiCategoryCocoMetric])
def test_metric_gt_faults(tmp_path, metric_cls):
    import mmpose
    coco = _fixture('coco', 'test_coco.json')
    meta = parse_pose_metainfo(
        dict(from_file=osp.join(osp.dirname(mmpose.__file__), '.mim',
                                'configs', '_base_', 'datasets', 'coco.py')))
    meta['CLASSES'] = load_json(coco)['categories']

    for edit, problem in (
            (lambda d: d['annotations'][1].pop('bbox'), 'has no `bbox`'),
            (lambda d: d['annotations'][1].pop('category_id'),
             'has no `category_id`'),
    ):
        path, _ = _broken(tmp_path, coco, edit)
        with pytest.raises(AnnotationError, match=problem):
            metric_cls(ann_file=path)  # at construction, before inference

    # wrong keypoint count: found once the dataset metainfo arrives
    path, _ = _broken(
        tmp_path, coco, lambda d: [
            a.update(keypoints=a['keypoints'][:42]) for a in d['annotations']
        ])
    metric = metric_cls(ann_file=path)
    with pytest.raises(AnnotationError, match="metainfo's 17"):
        metric.dataset_meta = copy.deepcopy(meta)

    # missing area: evaluated with the default instead of a KeyError in
    # xtcocotools after inference; the figures equal those of a file whose
    # area holds that default
    def no_area(d):
        for a in d['annotations']:
            a.pop('area')

    def box_area(d):
        for a in d['annotations']:
            a['area'] = 0.53 * a['bbox'][2] * a['bbox'][3]

    path_no, _ = _broken(tmp_path, coco, no_area, 'no_area.json')
    path_box, _ = _broken(tmp_path, coco, box_area, 'box_area.json')
    samples = []
    rng = np.random.default_rng(0)
    gt = load_json(coco)
    for img in gt['images']:
        anns = [a for a in gt['annotations'] if a['image_id'] == img['id']]
        k = np.array([a['keypoints'] for a in anns], float).reshape(-1, 17, 3)
        samples.append(
            dict(img_id=img['id'], id=[a['id'] for a in anns],
                 gt_instances=dict(),
                 pred_instances=dict(
                     keypoints=k[..., :2] + rng.normal(0, 5, k[..., :2].shape),
                     keypoint_scores=np.ones(k.shape[:2]),
                     bbox_scores=np.ones(len(k)),
                     category_id=np.ones(len(k), np.int64))))
    results = []
    for path in (path_no, path_box):
        metric = metric_cls(ann_file=path)
        metric.dataset_meta = copy.deepcopy(meta)
        metric.process([], copy.deepcopy(samples))
        results.append(metric.evaluate(len(samples)))
    assert results[0] == results[1]
    assert 0 < results[0]['coco/AP'] < 1


def test_metric_checks_raw_ann_info_and_messagehub_file(tmp_path):
    from mmengine.logging import MessageHub
    import mmpose
    coco = _fixture('coco', 'test_coco.json')
    meta = parse_pose_metainfo(
        dict(from_file=osp.join(osp.dirname(mmpose.__file__), '.mim',
                                'configs', '_base_', 'datasets', 'coco.py')))
    meta['CLASSES'] = load_json(coco)['categories']
    gt = load_json(coco)
    # no dataset file announced by an earlier test
    MessageHub.get_current_instance().update_info('coco_ann_file', None)

    # GT from the samples (no ann_file): a missing bbox is named
    img = gt['images'][0]
    anns = [a for a in gt['annotations'] if a['image_id'] == img['id']]
    del anns[0]['bbox']
    k = np.array([a['keypoints'] for a in anns], float).reshape(-1, 17, 3)
    sample = dict(img_id=img['id'], id=[a['id'] for a in anns],
                  ori_shape=(img['height'], img['width']),
                  raw_ann_info=anns, gt_instances=dict(),
                  pred_instances=dict(keypoints=k[..., :2],
                                      keypoint_scores=np.ones(k.shape[:2])))
    metric = GuardedCocoMetric()
    metric.dataset_meta = copy.deepcopy(meta)
    metric.process([], [sample])
    with pytest.raises(AnnotationError,
                       match=rf'raw_ann_info.*\n.*has no `bbox`: ids '
                       rf'{anns[0]["id"]}'):
        metric.evaluate(1)

    # the dataset's file announced through the MessageHub is checked too
    path, _ = _broken(tmp_path, coco,
                      lambda d: d['annotations'][0].pop('category_id'))
    MessageHub.get_current_instance().update_info('coco_ann_file', path)
    try:
        with pytest.raises(AnnotationError, match='has no `category_id`'):
            GuardedCocoMetric().dataset_meta = copy.deepcopy(meta)
    finally:
        MessageHub.get_current_instance().update_info('coco_ann_file', None)


def test_checked_mpii_dataset(tmp_path):
    from mmkp_ext.datasets import CheckedMpiiDataset
    from mmpose.datasets import MpiiDataset
    src = _fixture('mpii', 'test_mpii.json')
    kw = dict(pipeline=[], test_mode=True)
    _same_data_list(CheckedMpiiDataset(ann_file=src, **kw),
                    MpiiDataset(ann_file=src, **kw))
    assert DATASETS.get('CheckedMpiiDataset') is CheckedMpiiDataset

    def fewer_joints(d):
        for a in d[1:]:
            a['joints'] = a['joints'][:14]

    path, data = _broken(tmp_path, src, fewer_joints)
    with pytest.raises(AnnotationError) as err:
        CheckedMpiiDataset(ann_file=path, **kw)
    msg = str(err.value)
    assert path in msg
    assert (f"{len(data) - 1} annotation(s) has a joint count other than "
            "the dataset metainfo's 16") in msg
    assert f'#1 ({data[1]["image"]}, 14 joints)' in msg

    path, data = _broken(
        tmp_path, src, lambda d: d[0].update(scale=0, joints_vis=[1] * 3))
    with pytest.raises(AnnotationError) as err:
        CheckedMpiiDataset(ann_file=path, **kw)
    assert f'has no `scale` > 0: #0 ({data[0]["image"]})' in str(err.value)
    assert 'has no `joints_vis` list of 16 numbers: #0' in str(err.value)

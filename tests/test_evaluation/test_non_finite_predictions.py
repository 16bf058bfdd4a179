"""Non-finite predictions never count (issue 16): ``GuardedCocoMetric`` and
``MultiCategoryCocoMetric`` drop a predicted instance with a NaN / inf
keypoint, keypoint score or box score, so it counts as not detected.

The reproduction: on the real COCO fixture, predictions 60 px off give
AP 0; the same with one NaN keypoint per instance gave 1.0 with
``MultiCategoryCocoMetric`` (0.34 with mmpose's stock ``CocoMetric``,
which stays as it is) because xtcocotools' OKS becomes NaN and
``NaN < threshold`` is false."""
import copy
import json
import os.path as osp

import mmpose
import numpy as np
import pytest
from _helpers import load_json, shared_data_dir

import mmkp_ext  # noqa: F401
from mmkp_ext.evaluation import GuardedCocoMetric, MultiCategoryCocoMetric
from mmkp_ext.evaluation import prediction_checks
from mmpose.datasets.datasets.utils import parse_pose_metainfo
from mmpose.evaluation.metrics import CocoMetric
from mmpose.registry import METRICS

COCO_META_FILE = osp.join(
    osp.dirname(mmpose.__file__), '.mim', 'configs', '_base_', 'datasets',
    'coco.py')
GUARDED = (GuardedCocoMetric, MultiCategoryCocoMetric)


@pytest.fixture(scope='module')
def coco():
    path = osp.join(shared_data_dir(), 'coco', 'test_coco.json')
    if not osp.exists(path):
        pytest.skip(f'real-data fixture not found at {path}')
    gt = load_json(path)
    meta = parse_pose_metainfo(dict(from_file=COCO_META_FILE))
    meta['CLASSES'] = gt['categories']
    return path, gt, meta


def _predictions(gt, shift=0., noise=0., seed=0):
    """Per image: its GT keypoints moved by ``shift`` px along x plus
    Gaussian ``noise``, all keypoint scores 1 (one sample per image, the
    bottom-up way)."""
    rng = np.random.default_rng(seed)
    samples = []
    for img in gt['images']:
        anns = [a for a in gt['annotations'] if a['image_id'] == img['id']]
        k = np.array([a['keypoints'] for a in anns], float).reshape(
            len(anns), 17, 3)[..., :2]
        k = k + rng.normal(0, noise, k.shape) + [shift, 0.]
        n = len(k)
        samples.append(
            dict(
                id=[a['id'] for a in anns],
                img_id=img['id'],
                ori_shape=(img['height'], img['width']),
                gt_instances=dict(),
                pred_instances=dict(
                    keypoints=k,
                    keypoint_scores=np.ones((n, 17)),
                    bbox_scores=np.linspace(1., .5, n),
                    category_id=np.ones(n, np.int64))))
    return samples


def _ap(metric, samples, meta, name='AP'):
    metric.dataset_meta = copy.deepcopy(meta)
    metric.process([], copy.deepcopy(samples))
    return float(metric.evaluate(len(samples))[f'coco/{name}'])


def _with_nan_keypoint(samples, value=np.nan):
    out = copy.deepcopy(samples)
    for s in out:
        s['pred_instances']['keypoints'][:, 0, 0] = value
    return out


def test_reproduction_stock_metric_is_fooled(coco):
    """The setup triggers the bug in mmpose's CocoMetric (kept as is)."""
    path, gt, meta = coco
    far = _predictions(gt, shift=60.)
    assert _ap(CocoMetric(ann_file=path), far, meta) == 0.0
    assert _ap(CocoMetric(ann_file=path), _with_nan_keypoint(far),
               meta) > 0.3


@pytest.mark.parametrize('metric_cls', GUARDED)
@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_keypoint_gives_no_match(coco, metric_cls, bad):
    path, gt, meta = coco
    far = _predictions(gt, shift=60.)
    assert _ap(metric_cls(ann_file=path), far, meta) == 0.0
    assert _ap(metric_cls(ann_file=path), _with_nan_keypoint(far, bad),
               meta) == 0.0
    # exact predictions with one NaN keypoint each: all dropped, AP 0 (and
    # no IndexError from xtcocotools on an empty result list)
    exact = _predictions(gt)
    assert _ap(metric_cls(ann_file=path), exact, meta) > 0.9
    assert _ap(metric_cls(ann_file=path), _with_nan_keypoint(exact),
               meta) == 0.0


@pytest.mark.parametrize('metric_cls', GUARDED)
@pytest.mark.parametrize('field', ['keypoints', 'keypoint_scores',
                                   'bbox_scores'])
def test_dropped_instance_equals_removed_instance(coco, metric_cls, field,
                                                  monkeypatch):
    """A non-finite value in one instance of each image gives exactly the
    figures of the same predictions without that instance (computed by
    mmpose's CocoMetric), and one warning with the count."""
    path, gt, meta = coco
    samples = _predictions(gt, noise=4., seed=1)
    bad, removed = copy.deepcopy(samples), copy.deepcopy(samples)
    for b, r in zip(bad, removed):
        inst = b['pred_instances']
        if field == 'keypoints':
            inst[field][0, 5, 1] = np.nan
        elif field == 'keypoint_scores':
            inst[field][0, 3] = np.nan
        else:
            inst[field][0] = np.inf
        r['pred_instances'] = {
            k: v[1:]
            for k, v in r['pred_instances'].items()
        }
    kwargs = dict(ann_file=path, score_mode='bbox_keypoint',
                  nms_mode='oks_nms')
    expected = {
        name: _ap(CocoMetric(**kwargs), removed, meta, name)
        for name in ('AP', 'AR', 'AP .5')
    }
    assert 0.1 < expected['AP'] < 1.0  # dropping 4 of 14 GT matches costs

    logged = []
    monkeypatch.setattr(prediction_checks, 'print_log',
                        lambda msg, **kw: logged.append(msg))
    metric = metric_cls(**kwargs)
    metric.dataset_meta = copy.deepcopy(meta)
    metric.process([], copy.deepcopy(bad))
    out = metric.evaluate(len(bad))
    for name, value in expected.items():
        assert float(out[f'coco/{name}']) == pytest.approx(value, abs=1e-12)
    drops = [m for m in logged if 'non-finite' in m]
    assert len(drops) == 1
    assert f'4 of {sum(len(s["id"]) for s in samples)} predicted' in drops[0]


def test_guarded_equals_stock_on_finite_predictions(coco):
    path, gt, meta = coco
    samples = _predictions(gt, noise=6., seed=2)
    for score_mode, nms_mode in (('bbox_keypoint', 'oks_nms'),
                                 ('bbox_rle', 'soft_oks_nms'),
                                 ('keypoint', 'none')):
        kwargs = dict(ann_file=path, score_mode=score_mode,
                      nms_mode=nms_mode)
        for name in ('AP', 'AR', 'AP (M)'):
            assert _ap(GuardedCocoMetric(**kwargs), samples, meta,
                       name) == _ap(CocoMetric(**kwargs), samples, meta,
                                    name)


def test_registered():
    cfg = dict(type='GuardedCocoMetric')
    assert isinstance(METRICS.build(cfg), GuardedCocoMetric)
    assert METRICS.get('CocoMetric') is CocoMetric  # stock untouched


def test_finite_instances_mask():
    k = np.zeros((3, 4, 2))
    s = np.ones((3, 4))
    k[0, 3, 0] = np.nan  # outside instance 0's range below
    s[1, 1] = np.inf
    mask = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]], bool)
    assert prediction_checks.finite_instances(k, s).tolist() == [
        False, False, True
    ]
    assert prediction_checks.finite_instances(k, s, mask[[0, 0, 2]]).tolist(
    ) == [True, False, True]
    assert prediction_checks.finite_instances(
        k, s, None, np.array([1., np.nan, 1.])).tolist() == [False, False,
                                                             True]
    assert prediction_checks.finite_instances(
        np.zeros((0, 4, 2)), np.zeros((0, 4))).shape == (0, )


# ---------------------------------------------------------------------------
# the PCK metrics of our LSP / MPII configs already count NaN as a miss
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('metric_cfg', [
    dict(type='PCKAccuracy', thr=0.2, norm_item='bbox'),
    dict(type='MpiiPCKAccuracy'),
])
def test_pck_metrics_count_non_finite_keypoints_as_missed(metric_cfg):
    """mmpose's PCK (``keypoint_pck_accuracy``: ``distance < thr`` is false
    for NaN) gives a non-finite keypoint exactly the figures of a keypoint
    1e6 px away, i.e. not detected. Pinned here because our configs rely on
    it (no guarded variant needed)."""
    rng = np.random.default_rng(0)
    n, k = 6, 16
    gt = rng.uniform(50, 150, (n, k, 2))

    def samples(pred):
        return [
            dict(
                gt_instances=dict(
                    keypoints=gt[i:i + 1],
                    keypoints_visible=np.ones((1, k)),
                    bboxes=np.array([[40., 40., 160., 160.]]),
                    head_size=np.array([[30.]])),
                pred_instances=dict(keypoints=pred[i:i + 1]))
            for i in range(n)
        ]

    def evaluate(pred):
        metric = METRICS.build(metric_cfg)
        metric.dataset_meta = dict(dataset_name='x', num_keypoints=k)
        metric.process([], samples(pred))
        return metric.evaluate(n)

    close = gt - 1.0 + rng.normal(0, 1, gt.shape)  # MPII adds 1 px back
    good = evaluate(close)
    bad, far = close.copy(), close.copy()
    bad[:, 9, 0] = np.nan
    bad[:, 2, 1] = np.inf
    far[:, 9, 0] = 1e6
    far[:, 2, 1] = 1e6
    with_bad = evaluate(bad)
    assert with_bad == evaluate(far)
    name = 'PCK'
    assert [v for key, v in with_bad.items() if key.endswith(name)][0] < \
        [v for key, v in good.items() if key.endswith(name)][0]


def test_crowdpose_keypoints_crowd():
    """The CrowdPose config's setting (iou_type='keypoints_crowd',
    use_area=False; the file has no areas, filled in by the GT check): GT as
    predictions give AP > 0.9 (0.95: OKS-NMS merges two of them), the same
    with one NaN keypoint each AP 0."""
    path = osp.join(shared_data_dir(), 'crowdpose', 'test_crowdpose.json')
    if not osp.exists(path):
        pytest.skip(f'real-data fixture not found at {path}')
    gt = load_json(path)
    meta = parse_pose_metainfo(
        dict(from_file=osp.join(
            osp.dirname(mmpose.__file__), '.mim', 'configs', '_base_',
            'datasets', 'crowdpose.py')))
    meta['CLASSES'] = gt['categories']
    samples = []
    for img in gt['images']:
        anns = [a for a in gt['annotations'] if a['image_id'] == img['id']]
        k = np.array([a['keypoints'] for a in anns], float).reshape(
            len(anns), 14, 3)
        samples.append(
            dict(id=[a['id'] for a in anns], img_id=img['id'],
                 gt_instances=dict(),
                 pred_instances=dict(keypoints=k[..., :2],
                                     keypoint_scores=np.ones(k.shape[:2]))))

    def ap(s):
        metric = GuardedCocoMetric(ann_file=path, iou_type='keypoints_crowd',
                                   use_area=False, prefix='crowdpose')
        metric.dataset_meta = copy.deepcopy(meta)
        metric.process([], copy.deepcopy(s))
        return float(metric.evaluate(len(s))['crowdpose/AP'])

    assert ap(samples) > 0.9
    nan = copy.deepcopy(samples)
    for s in nan:
        s['pred_instances']['keypoints'][:, 3, 1] = np.nan
    assert ap(nan) == 0.0


def test_format_only_with_an_image_info_file(coco, tmp_path):
    """format_only accepts a GT file without annotations (COCO test-dev
    image info), as the stock metric does, and writes the finite
    predictions only."""
    path, gt, meta = coco
    info = tmp_path / 'image_info.json'
    info.write_text(
        json.dumps(dict(images=gt['images'], categories=gt['categories'])))
    samples = _with_nan_keypoint(_predictions(gt, noise=2.))
    samples[0]['pred_instances']['keypoints'][:, 0, 0] = 5.  # finite again
    prefix = str(tmp_path / 'res')
    metric = GuardedCocoMetric(ann_file=str(info), format_only=True,
                               outfile_prefix=prefix, nms_mode='none')
    metric.dataset_meta = copy.deepcopy(meta)
    metric.process([], samples)
    assert metric.evaluate(len(samples)) == {}
    written = load_json(prefix + '.keypoints.json')
    assert len(written) == len(samples[0]['id'])
    assert {d['image_id'] for d in written} == {samples[0]['img_id']}

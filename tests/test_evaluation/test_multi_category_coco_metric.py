"""Tests of ``MultiCategoryCocoMetric``: equal to mmpose's ``CocoMetric`` on
single-class COCO, the DeepFashion2 protocol on hand-made 2-category cases
(figures worked out by hand), and AP 1.0 on the real DeepFashion2 fixture."""
import copy
import json
import os.path as osp

import mmpose
import numpy as np
import pytest
from _helpers import load_json, shared_data_dir

import mmkp_ext  # noqa: F401
from mmkp_ext.datasets import DEEPFASHION2_FULL_METAINFO_FILE
from mmkp_ext.evaluation import SUMMARY_NAMES, MultiCategoryCocoMetric
from mmpose.datasets.datasets.utils import parse_pose_metainfo
from mmpose.evaluation.metrics import CocoMetric
from mmpose.registry import METRICS

COCO_META_FILE = osp.join(
    osp.dirname(mmpose.__file__), '.mim', 'configs', '_base_', 'datasets',
    'coco.py')


def _shared(*parts):
    path = osp.join(shared_data_dir(), *parts)
    if not osp.exists(path):
        pytest.skip(f'real-data fixture not found at {path}')
    return path


def _evaluate(metric, samples, dataset_meta):
    metric.dataset_meta = copy.deepcopy(dataset_meta)
    metric.process([], copy.deepcopy(samples))
    return metric.evaluate(len(samples))


def _strip(metrics):
    """Drop the prefix from the metric names."""
    return {k.split('/', 1)[1]: float(v) for k, v in metrics.items()}


# ---------------------------------------------------------------------------
# single-class COCO: same figures as mmpose's CocoMetric
# ---------------------------------------------------------------------------
def _coco_predictions(gt, noise, seed, with_bboxes):
    """GT perturbed by ``noise`` px, one duplicate (slightly moved, lower
    score) and one false positive per image, random keypoint scores."""
    rng = np.random.default_rng(seed)
    by_image = {}
    for ann in gt['annotations']:
        by_image.setdefault(ann['image_id'], []).append(ann)
    samples = []
    for img in gt['images']:
        anns = by_image.get(img['id'], [])
        kpts = np.array([a['keypoints'] for a in anns], float).reshape(
            len(anns), 17, 3)[..., :2]
        kpts = kpts + rng.normal(0, noise, kpts.shape)
        kpts = np.concatenate([
            kpts, kpts[:1] + rng.normal(0, 2, (1, 17, 2)),
            rng.uniform(0, 300, (1, 17, 2))
        ])
        n = len(kpts)
        scores = rng.uniform(0.05, 1, (n, 17))
        bbox_scores = rng.uniform(0.5, 1, n)
        bbox_scores[-2:] = [0.3, 0.2]
        pred = dict(
            keypoints=kpts,
            keypoint_scores=scores,
            bbox_scores=bbox_scores,
            category_id=np.ones(n, np.int64))
        if with_bboxes:
            pred['bboxes'] = np.concatenate(
                [kpts.min(1) - 5, kpts.max(1) + 5], axis=1)
        samples.append(
            dict(
                id=[a['id'] for a in anns],
                img_id=img['id'],
                ori_shape=(img['height'], img['width']),
                gt_instances=dict(),
                pred_instances=pred))
    return samples


@pytest.mark.parametrize('score_mode, nms_mode, with_bboxes', [
    ('bbox_keypoint', 'oks_nms', False),
    ('bbox', 'none', True),
    ('keypoint', 'soft_oks_nms', False),
    ('bbox_rle', 'oks_nms', True),
])
def test_equals_mmpose_coco_metric(score_mode, nms_mode, with_bboxes):
    ann_file = _shared('coco', 'test_coco.json')
    gt = load_json(ann_file)
    meta = parse_pose_metainfo(dict(from_file=COCO_META_FILE))
    meta['CLASSES'] = gt['categories']
    aps = []
    for noise in (1., 4., 10.):
        samples = _coco_predictions(gt, noise, seed=int(noise),
                                    with_bboxes=with_bboxes)
        kwargs = dict(ann_file=ann_file, score_mode=score_mode,
                      nms_mode=nms_mode)
        theirs = _strip(_evaluate(CocoMetric(**kwargs), samples, meta))
        ours = _strip(
            _evaluate(
                MultiCategoryCocoMetric(category_keypoints='coco', **kwargs),
                samples, meta))
        assert set(theirs) == set(SUMMARY_NAMES)
        for name in SUMMARY_NAMES:
            assert ours[name] == pytest.approx(theirs[name], abs=1e-12), name
        assert ours['AP_person'] == pytest.approx(ours['AP'], abs=1e-12)
        aps.append(ours['AP'])
    # not trivially perfect, and worse with more noise
    assert 0.05 < aps[-1] < aps[0] < 1.0


def test_max_dets_per_image():
    """GT as predictions with maxDets 1: one TP per image. 12 valid GTs in 4
    images -> recall 4/12; precision 1 up to it, so AP = (number of the
    101 recall thresholds <= 1/3) / 101 = 34/101."""
    ann_file = _shared('coco', 'test_coco.json')
    gt = load_json(ann_file)
    meta = parse_pose_metainfo(dict(from_file=COCO_META_FILE))
    meta['CLASSES'] = gt['categories']
    samples = []
    for img in gt['images']:
        anns = [
            a for a in gt['annotations']
            if a['image_id'] == img['id'] and a['num_keypoints'] > 0
        ]
        k = np.array([a['keypoints'] for a in anns], float).reshape(-1, 17, 3)
        samples.append(
            dict(
                img_id=img['id'],
                pred_instances=dict(
                    keypoints=k[..., :2],
                    keypoint_scores=np.ones(k.shape[:2]),
                    category_id=np.ones(len(k), np.int64))))
    full = _strip(
        _evaluate(
            MultiCategoryCocoMetric(ann_file=ann_file), samples, meta))
    assert (full['AP'], full['AR']) == pytest.approx((1.0, 1.0))
    one = _strip(
        _evaluate(
            MultiCategoryCocoMetric(ann_file=ann_file, max_dets=1), samples,
            meta))
    assert one['AR'] == pytest.approx(4 / 12)
    assert one['AP'] == pytest.approx(34 / 101)


# ---------------------------------------------------------------------------
# the DeepFashion2 protocol on a hand-made 2-category layout
# ---------------------------------------------------------------------------
# 6 keypoints: category 1 owns 0-2, category 2 owns 3-5
LAYOUT = [(0, 2), (3, 5)]
SIGMAS = np.array([0.02, 0.03, 0.04, 0.05, 0.06, 0.07])
AREA = 4000.


def _toy_gt(tmp_path):
    """2 images; image 1 holds A (category 1) and B (category 2), image 2
    holds C (category 1). Each GT labels its own category's keypoints."""
    def ann(ann_id, image_id, cat, xy):
        kpts = np.zeros((6, 3))
        first, last = LAYOUT[cat - 1]
        kpts[first:last + 1, :2] = xy
        kpts[first:last + 1, 2] = 2
        x0, y0 = np.min(xy, 0)
        x1, y1 = np.max(xy, 0)
        return dict(
            id=ann_id, image_id=image_id, category_id=cat, iscrowd=0,
            area=AREA, num_keypoints=3,
            bbox=[float(v) for v in (x0, y0, x1 - x0, y1 - y0)],
            keypoints=kpts.reshape(-1).tolist())

    gt = dict(
        images=[
            dict(id=1, width=200, height=200, file_name='1.jpg'),
            dict(id=2, width=200, height=200, file_name='2.jpg')
        ],
        categories=[dict(id=1, name='top'),
                    dict(id=2, name='long skirt')],
        annotations=[
            ann(11, 1, 1, [[20, 20], [40, 25], [60, 30]]),
            ann(12, 1, 2, [[100, 120], [130, 150], [160, 170]]),
            ann(21, 2, 1, [[50, 50], [70, 60], [90, 80]]),
        ])
    path = tmp_path / 'gt.json'
    path.write_text(json.dumps(gt))
    meta = dict(
        dataset_name='toy2', num_keypoints=6, sigmas=SIGMAS.copy(),
        CLASSES=gt['categories'])
    return str(path), gt, meta


def _gt_keypoints(gt, ann_id):
    ann = next(a for a in gt['annotations'] if a['id'] == ann_id)
    return np.array(ann['keypoints'], float).reshape(6, 3)


def _sample(img_id, keypoints, scores, categories, bbox_scores=None):
    n = len(keypoints)
    return dict(
        img_id=img_id,
        pred_instances=dict(
            keypoints=np.asarray(keypoints, float),
            keypoint_scores=np.asarray(scores, float),
            category_id=np.asarray(categories),
            bbox_scores=np.ones(n) if bbox_scores is None else
            np.asarray(bbox_scores, float)))


def _perfect(gt, garbage_rng=None):
    """GT as predictions; with ``garbage_rng``, random coordinates and
    scores outside each prediction's category range."""
    samples = []
    for img_id, ann_ids in ((1, (11, 12)), (2, (21, ))):
        kpts, scores, cats = [], [], []
        for ann_id in ann_ids:
            g = _gt_keypoints(gt, ann_id)
            k, s = g[:, :2].copy(), (g[:, 2] > 0).astype(float)
            if garbage_rng is not None:
                out = g[:, 2] == 0
                k[out] = garbage_rng.uniform(-500, 500, (out.sum(), 2))
                s[out] = garbage_rng.uniform(0.5, 1, out.sum())
            kpts.append(k)
            scores.append(s)
            cats.append(next(a['category_id'] for a in gt['annotations']
                             if a['id'] == ann_id))
        samples.append(_sample(img_id, kpts, scores, cats))
    return samples


def test_registered_with_prefix(tmp_path):
    ann_file, gt, meta = _toy_gt(tmp_path)
    metric = METRICS.build(
        dict(
            type='MultiCategoryCocoMetric',
            ann_file=ann_file,
            category_keypoints=LAYOUT,
            prefix='df2'))
    assert isinstance(metric, MultiCategoryCocoMetric)
    out = _evaluate(metric, _perfect(gt), meta)
    assert set(out) == {f'df2/{n}' for n in SUMMARY_NAMES} | {
        'df2/AP_top', 'df2/AP_long_skirt'
    }


def test_perfect_and_garbage_outside_the_range(tmp_path):
    ann_file, gt, meta = _toy_gt(tmp_path)
    for samples in (_perfect(gt), _perfect(gt, np.random.default_rng(0))):
        out = _strip(
            _evaluate(
                MultiCategoryCocoMetric(
                    ann_file=ann_file, category_keypoints=LAYOUT,
                    score_mode='keypoint', nms_mode='oks_nms'), samples,
                meta))
        assert (out['AP'], out['AR']) == pytest.approx((1.0, 1.0))
        assert out['AP_top'] == pytest.approx(1.0)
        assert out['AP_long_skirt'] == pytest.approx(1.0)


def test_wrong_category_gets_nothing(tmp_path):
    ann_file, gt, meta = _toy_gt(tmp_path)
    a = _gt_keypoints(gt, 11)
    c = _gt_keypoints(gt, 21)
    # A's keypoints, but called category 2: its category-2 range is empty
    # (zeros), far from B, and it may not match A
    wrong = [
        _sample(1, [a[:, :2]], [a[:, 2] > 0], [2]),
        _sample(2, [c[:, :2]], [c[:, 2] > 0], [1])
    ]
    out = _strip(
        _evaluate(
            MultiCategoryCocoMetric(ann_file=ann_file,
                                    category_keypoints=LAYOUT), wrong, meta))
    # category 1: C found, A missed -> recall 1/2, AP 51/101;
    # category 2: B missed, one false positive -> AP 0
    assert out['AP_top'] == pytest.approx(51 / 101)
    assert out['AP_long_skirt'] == 0.0
    assert out['AP'] == pytest.approx((51 / 101 + 0) / 2)
    # the same keypoints with the right category
    right = copy.deepcopy(wrong)
    right[0]['pred_instances']['category_id'] = np.array([1])
    out = _strip(
        _evaluate(
            MultiCategoryCocoMetric(ann_file=ann_file,
                                    category_keypoints=LAYOUT), right, meta))
    assert out['AP_top'] == pytest.approx(1.0) and out['AP_long_skirt'] == 0.0


def test_oks_uses_the_category_range_sigmas(tmp_path):
    """One detection of B (category 2) whose every keypoint sits where
    exp(-d^2 / (2 * area * (2 sigma_k)^2)) = 0.72, so OKS = 0.72: a true
    positive at the 5 thresholds 0.50..0.70 of 10 -> AP 0.5, AP .5 1,
    AP .75 0. Garbage in range 0-2 does not count."""
    ann_file, gt, meta = _toy_gt(tmp_path)
    b = _gt_keypoints(gt, 12)
    var = (2 * SIGMAS)**2
    dist = np.sqrt(-np.log(0.72) * 2 * AREA * var)  # (6,)
    kpts = b[:, :2].copy()
    kpts[:, 0] += dist  # move along x by the per-keypoint distance
    kpts[:3] = [[1e4, -1e4]] * 3  # garbage in category 1's range
    det = [_sample(1, [kpts], [[1., 1, 1, .9, .9, .9]], [2])]
    out = _strip(
        _evaluate(
            MultiCategoryCocoMetric(ann_file=ann_file,
                                    category_keypoints=LAYOUT), det, meta))
    assert out['AP_long_skirt'] == pytest.approx(0.5)
    assert out['AP .5'] == pytest.approx(1.0 / 2)  # mean with 'top' (0)
    assert out['AP .75'] == 0.0
    # with OKS 0.76 the detection also passes 0.75
    dist = np.sqrt(-np.log(0.76) * 2 * AREA * var)
    det[0]['pred_instances']['keypoints'][0, 3:, 0] = b[3:, 0] + dist[3:]
    out = _strip(
        _evaluate(
            MultiCategoryCocoMetric(ann_file=ann_file,
                                    category_keypoints=LAYOUT), det, meta))
    assert out['AP_long_skirt'] == pytest.approx(0.6)


def test_scores_use_the_category_range(tmp_path):
    """score_mode='keypoint': the right detection of A (range scores 0.5)
    must outrank a wrong one for C (range scores 0.4) even though the wrong
    one has score 1.0 on the keypoints outside its range. With the range:
    TP first -> recall 1/2 at precision 1 -> AP_top = 51/101. Without a
    layout (mean over all 6 keypoints: 0.7 vs 0.25) the FP comes first ->
    precision 1/2 -> AP_top = 0.5 * 51/101."""
    ann_file, gt, meta = _toy_gt(tmp_path)
    a = _gt_keypoints(gt, 11)
    c = _gt_keypoints(gt, 21)
    c_far = c[:, :2] + [[80, 80]]
    samples = [
        _sample(1, [a[:, :2]], [[.5, .5, .5, 0, 0, 0]], [1]),
        _sample(2, [c_far], [[.4, .4, .4, 1, 1, 1]], [1])
    ]
    kwargs = dict(ann_file=ann_file, score_mode='keypoint')
    ranged = _strip(
        _evaluate(
            MultiCategoryCocoMetric(category_keypoints=LAYOUT, **kwargs),
            samples, meta))
    assert ranged['AP_top'] == pytest.approx(51 / 101)
    unranged = _strip(
        _evaluate(MultiCategoryCocoMetric(**kwargs), samples, meta))
    assert unranged['AP_top'] == pytest.approx(0.5 * 51 / 101)


def test_oks_nms_within_the_category_range(tmp_path):
    """Two far-apart category-1 objects in one image: their OKS over range
    0-2 is ~0, so OKS-NMS at 0.4 keeps both. Over all 6 keypoints the
    zeroed range 3-5 would add 3 perfect matches (OKS ~0.5) and suppress
    one."""
    _, gt, meta = _toy_gt(tmp_path)
    gt['annotations'][2]['image_id'] = 1  # C joins A and B in image 1
    path = tmp_path / 'one_image.json'
    path.write_text(json.dumps(gt))
    kpts = [_gt_keypoints(gt, i) for i in (11, 12, 21)]
    det = [
        _sample(1, [k[:, :2] for k in kpts], [k[:, 2] > 0 for k in kpts],
                [1, 2, 1], bbox_scores=[0.9, 0.8, 0.7])
    ]
    out = _strip(
        _evaluate(
            MultiCategoryCocoMetric(
                ann_file=str(path), category_keypoints=LAYOUT,
                nms_mode='oks_nms', nms_thr=0.4), det, meta))
    assert out['AP_top'] == pytest.approx(1.0)
    assert out['AP_long_skirt'] == pytest.approx(1.0)


def test_max_dets_counts_per_category(tmp_path):
    # image 1 holds one object of each category: with maxDets 1 both count
    ann_file, gt, meta = _toy_gt(tmp_path)
    out = _strip(
        _evaluate(
            MultiCategoryCocoMetric(
                ann_file=ann_file, category_keypoints=LAYOUT, max_dets=1),
            _perfect(gt), meta))
    assert out['AP'] == pytest.approx(1.0)


def test_gt_from_samples_without_ann_file(tmp_path):
    _, gt, meta = _toy_gt(tmp_path)
    samples = _perfect(gt)
    samples[1]['pred_instances']['keypoints'][0, :3] += 6.  # C missed a bit
    for sample in samples:
        img = next(i for i in gt['images'] if i['id'] == sample['img_id'])
        sample['ori_shape'] = (img['height'], img['width'])
        sample['raw_ann_info'] = [
            a for a in gt['annotations'] if a['image_id'] == img['id']
        ]
    ann_file, _, _ = _toy_gt(tmp_path)
    with_file = _strip(
        _evaluate(
            MultiCategoryCocoMetric(ann_file=ann_file,
                                    category_keypoints=LAYOUT), samples,
            meta))
    without = _strip(
        _evaluate(MultiCategoryCocoMetric(category_keypoints=LAYOUT),
                  samples, meta))
    assert without == with_file
    assert with_file['AP_top'] < 1.0


def test_gt_keypoints_outside_their_range_are_ignored(tmp_path):
    ann_file, gt, meta = _toy_gt(tmp_path)
    # give A a labelled keypoint in category 2's range; a perfect
    # prediction (which leaves that range at zero) must still score 1.0
    bad = copy.deepcopy(gt)
    bad['annotations'][0]['keypoints'][3 * 4:3 * 5] = [150., 10., 2]
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps(bad))
    out = _strip(
        _evaluate(
            MultiCategoryCocoMetric(ann_file=str(path),
                                    category_keypoints=LAYOUT),
            _perfect(gt), meta))
    assert out['AP'] == pytest.approx(1.0)
    # without the layout that keypoint is compared and A is missed
    out = _strip(
        _evaluate(MultiCategoryCocoMetric(ann_file=str(path)), _perfect(gt),
                  meta))
    assert out['AP_top'] < 1.0


def test_bad_inputs(tmp_path):
    ann_file, gt, meta = _toy_gt(tmp_path)
    metric = MultiCategoryCocoMetric(ann_file=ann_file,
                                     category_keypoints=LAYOUT)
    bad = _perfect(gt)
    bad[0]['pred_instances']['category_id'] = np.array([1, 3])
    with pytest.raises(ValueError, match=r'unknown category_id 3 \(prediction'
                       r' 1 of image 1\)'):
        _evaluate(metric, bad, meta)

    metric = MultiCategoryCocoMetric(ann_file=ann_file)
    no_cat = _perfect(gt)
    del no_cat[0]['pred_instances']['category_id']
    with pytest.raises(ValueError, match='category_id is missing'):
        _evaluate(metric, no_cat, meta)

    short = _perfect(gt)
    short[0]['pred_instances']['category_id'] = np.array([1])
    with pytest.raises(ValueError, match='1 entries for 2 instances'):
        _evaluate(MultiCategoryCocoMetric(ann_file=ann_file), short, meta)

    scores = _perfect(gt)
    scores[0]['pred_instances']['keypoint_scores'] = np.ones((2, 5))
    with pytest.raises(ValueError, match='keypoint_scores has shape'):
        _evaluate(MultiCategoryCocoMetric(ann_file=ann_file), scores, meta)

    no_sigmas = dict(meta, sigmas=np.zeros(0))
    with pytest.raises(ValueError, match='0 sigmas for 6 keypoints'):
        _evaluate(MultiCategoryCocoMetric(ann_file=ann_file), _perfect(gt),
                  no_sigmas)

    with pytest.raises(ValueError, match='max_dets'):
        MultiCategoryCocoMetric(max_dets=0)
    with pytest.raises(ValueError, match='unknown keypoint layout'):
        MultiCategoryCocoMetric(category_keypoints='nope')


def test_single_category_implied_when_missing():
    ann_file = _shared('coco', 'test_coco.json')
    gt = load_json(ann_file)
    meta = parse_pose_metainfo(dict(from_file=COCO_META_FILE))
    meta['CLASSES'] = gt['categories']
    samples = _coco_predictions(gt, 3., seed=0, with_bboxes=False)
    with_ids = _strip(
        _evaluate(MultiCategoryCocoMetric(ann_file=ann_file), samples, meta))
    for s in samples:
        del s['pred_instances']['category_id']
    without = _strip(
        _evaluate(MultiCategoryCocoMetric(ann_file=ann_file), samples, meta))
    assert without == with_ids


# ---------------------------------------------------------------------------
# the real DeepFashion2 fixture
# ---------------------------------------------------------------------------
def test_real_deepfashion2_gt_as_predictions():
    ann_file = _shared('deepfashion2', 'deepfashion2.json')
    gt = load_json(ann_file)
    meta = parse_pose_metainfo(
        dict(from_file=DEEPFASHION2_FULL_METAINFO_FILE))
    meta['CLASSES'] = gt['categories']
    rng = np.random.default_rng(0)

    def samples(noise):
        out = []
        for img in gt['images']:
            anns = [a for a in gt['annotations'] if a['image_id'] == img['id']]
            k = np.array([a['keypoints'] for a in anns], float).reshape(
                len(anns), 294, 3)
            kpts = k[..., :2] + rng.normal(0, noise, k[..., :2].shape)
            labelled = k[..., 2] > 0
            # garbage outside each category's range
            kpts[~labelled] = rng.uniform(0, 750, ((~labelled).sum(), 2))
            scores = np.where(labelled, 0.9, rng.uniform(0, 1, labelled.shape))
            out.append(
                _sample(img['id'], kpts, scores,
                        [a['category_id'] for a in anns]))
        return out

    kwargs = dict(ann_file=ann_file, category_keypoints='deepfashion2',
                  prefix='df2')
    exact = _strip(
        _evaluate(MultiCategoryCocoMetric(**kwargs), samples(0.), meta))
    assert (exact['AP'], exact['AR']) == pytest.approx((1.0, 1.0))
    assert exact['AP_long_sleeved_dress'] == pytest.approx(1.0)
    # 30 px of noise on 600 px garments with sigmas of 0.04: OKS drops
    noisy = _strip(
        _evaluate(MultiCategoryCocoMetric(**kwargs), samples(30.), meta))
    assert noisy['AP'] < 1.0


# ---------------------------------------------------------------------------
# issue 17: score modes and OKS-NMS areas use the predicted category's range
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('score_mode, expected', [
    # range 3-5 scores (.3, .6, .1), box score .5; outside the range .9
    ('keypoint', (.3 + .6 + .1) / 3),
    ('bbox_rle', .5 + (.3 + .6 + .1) / 3 + .6),
    # threshold .2: .3 and .6 count -> .5 * .45
    ('bbox_keypoint', .5 * (.3 + .6) / 2),
    ('bbox', .5),
])
def test_written_scores_use_the_category_range(tmp_path, score_mode,
                                               expected):
    """The detection score in the result file, worked out by hand from the
    keypoint scores of the predicted category's range only. Over all 6
    keypoints it would be keypoint .6 / bbox_rle 2.0 / bbox_keypoint .36
    (raw scores) or keypoint 1/6 / bbox_rle 1.267 (zeros outside)."""
    ann_file, gt, meta = _toy_gt(tmp_path)
    b = _gt_keypoints(gt, 12)
    det = [
        _sample(1, [b[:, :2]], [[.9, .9, .9, .3, .6, .1]], [2],
                bbox_scores=[.5])
    ]
    prefix = str(tmp_path / 'out')
    _evaluate(
        MultiCategoryCocoMetric(
            ann_file=ann_file, category_keypoints=LAYOUT,
            score_mode=score_mode, keypoint_score_thr=.2,
            outfile_prefix=prefix), det, meta)
    written = load_json(prefix + '.keypoints.json')
    assert len(written) == 1
    assert written[0]['score'] == pytest.approx(expected, abs=1e-12)
    # keypoints outside the range are written as 0 (coordinates and scores)
    assert written[0]['keypoints'][:9] == [0.] * 9


@pytest.mark.parametrize('score_mode', ['bbox_rle', 'bbox_keypoint'])
def test_ranking_uses_the_category_range(tmp_path, score_mode):
    """A right detection of A (range scores .5, zeros outside) and a wrong
    one for C (range scores .3, 1.0 outside; 80 px off), both category 1.
    Over the range the TP ranks first: recall 1/2 at precision 1 ->
    AP_top = 51/101. Scored over all 6 keypoints the FP would rank first
    (bbox_rle 2.65 vs 2.0; bbox_keypoint .65 vs .5) -> 0.5 * 51/101."""
    ann_file, gt, meta = _toy_gt(tmp_path)
    a = _gt_keypoints(gt, 11)
    c = _gt_keypoints(gt, 21)
    samples = [
        _sample(1, [a[:, :2]], [[.5, .5, .5, 0, 0, 0]], [1]),
        _sample(2, [c[:, :2] + [[80, 80]]], [[.3, .3, .3, 1, 1, 1]], [1])
    ]
    out = _strip(
        _evaluate(
            MultiCategoryCocoMetric(
                ann_file=ann_file, category_keypoints=LAYOUT,
                score_mode=score_mode, keypoint_score_thr=.2), samples,
            meta))
    assert out['AP_top'] == pytest.approx(51 / 101)


def test_oks_nms_area_uses_the_category_range(tmp_path):
    """Two category-2 GTs 12 px apart in image 1, predicted exactly, with
    garbage far outside the range. OKS-NMS at 0.5 with the range's area
    (60 x 50 px): OKS between the two ~0.2, both kept -> AP_long_skirt 1.
    With an area over all keypoints (garbage or zeros included, >= 160 x
    170 px) their OKS is > 0.8 and one is suppressed -> 51/101."""
    _, gt, meta = _toy_gt(tmp_path)
    b2 = copy.deepcopy(gt['annotations'][1])
    b2['id'] = 13
    k = np.array(b2['keypoints'], float).reshape(6, 3)
    k[3:, 0] += 12.
    b2['keypoints'] = k.reshape(-1).tolist()
    b2['bbox'][0] += 12.
    gt['annotations'].append(b2)
    path = tmp_path / 'two_skirts.json'
    path.write_text(json.dumps(gt))
    preds = []
    for g in (_gt_keypoints(gt, 12), k):
        p = g[:, :2].copy()
        p[:3] = [[-300., 500.], [400., -200.], [0., 0.]]
        preds.append(p)
    scores = [[.9, .9, .9, 1, 1, 1], [.9, .9, .9, .8, .8, .8]]
    prefix = str(tmp_path / 'out')
    out = _strip(
        _evaluate(
            MultiCategoryCocoMetric(
                ann_file=str(path), category_keypoints=LAYOUT,
                score_mode='keypoint', nms_mode='oks_nms', nms_thr=0.5,
                outfile_prefix=prefix), [_sample(1, preds, scores, [2, 2])],
            meta))
    assert len(load_json(prefix + '.keypoints.json')) == 2
    assert out['AP_long_skirt'] == pytest.approx(1.0)


def test_nan_outside_the_category_range_is_ignored(tmp_path):
    """Non-finite values outside the predicted category's range do not drop
    the detection (they are never compared); inside it they do."""
    ann_file, gt, meta = _toy_gt(tmp_path)
    samples = _perfect(gt)
    inst = samples[0]['pred_instances']  # A (category 1), B (category 2)
    inst['keypoints'][0, 4] = np.nan
    inst['keypoint_scores'][1, 0] = np.inf
    metric = dict(ann_file=ann_file, category_keypoints=LAYOUT)
    out = _strip(_evaluate(MultiCategoryCocoMetric(**metric), samples, meta))
    assert (out['AP'], out['AR']) == pytest.approx((1.0, 1.0))
    inst['keypoints'][1, 4] = np.nan  # inside B's range: B is not detected
    out = _strip(_evaluate(MultiCategoryCocoMetric(**metric), samples, meta))
    assert out['AP_top'] == pytest.approx(1.0)
    assert out['AP_long_skirt'] == 0.0

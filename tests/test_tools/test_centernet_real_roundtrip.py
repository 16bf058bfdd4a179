"""Round trip of the grouped CenterNet on REAL annotations, through mmpose's
bottom-up validation path.

For the DeepFashion2 fixture (2 images, category 11, 294-keypoint layout)
and the COCO fixture (4 images, 14 persons, two of them without keypoints)
in ``../shared/data``:

1. mmpose's dataset class in ``data_mode='bottomup'`` (our
   ``DeepFashion2FullDataset``, mmpose's ``CocoDataset``) runs ``LoadImage
   -> BottomupResize -> (annotations to input pixels) ->
   CenterNetFilterInstances -> GenerateTarget(GroupedCenterNetLabel) ->
   PackPoseInputs``. ``BottomupResize`` warps only the image (it records
   ``input_center`` / ``input_scale`` / ``input_size`` but leaves
   ``keypoints`` and ``bbox`` in image pixels) while the codec encodes in
   model-input pixels, so :class:`AnnotationsToInput` applies the image's
   warp matrix to the annotations;
2. the codec turns the PACKED targets into ideal head outputs
   (``targets_to_outputs``);
3. ``CenterNetPoseEstimator.test_step`` runs on the collated batch with the
   head's ``forward`` returning those outputs (and the unused backbone
   skipped): data preprocessor, ``BottomupPoseEstimator.predict``,
   ``CenterNetPoseHead.predict`` (batched decode) and
   ``add_pred_to_datasample`` (back to image pixels) are the real ones;
4. against the JSON itself: each object is found once, with its category,
   a box of IoU > 0.9 and every labelled keypoint within one output pixel;
   the metrics give AP 1.0; keypoints shifted by two output pixels or a
   wrong category fail both checks.

One output pixel is the resolution limit of the design: all keypoints share
one 2-channel sub-pixel offset map, so keypoints that fall into the same
output cell get one offset (CenterNet's design). With ``decode_mode=
'nearest'`` every other keypoint comes back exactly. On COCO at 512 px the
nose and eyes of the 30 x 96 px person share a cell, which costs OKS on
such a small person, so COCO's AP 1.0 is shown at 1024 px (stride still 4).
"""
import copy
import json
import os.path as osp

import numpy as np
import pytest
import torch
from _helpers import shared_data_dir
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope

import mmkp_ext  # noqa: F401
from mmkp_ext.codecs.grouped_centernet_label import OUTPUT_KEYS
from mmkp_ext.datasets import get_category_keypoint_ranges
from mmpose.registry import DATASETS, METRICS, MODELS
from mmpose.structures.bbox import get_warp_matrix

STRIDE = 4
TINY = (8, 16, 32, 64, 128, 256)  # DLANet channels of the stand-in model
MODES = ('rescore', 'nearest')

# name -> (dataset type, fixture folder, annotation file, keypoints,
#          keypoint layout, metric prefix)
CASES = {
    'deepfashion2': ('DeepFashion2FullDataset', 'deepfashion2',
                     'deepfashion2.json', 294, 'deepfashion2', 'df2'),
    'coco': ('CocoDataset', 'coco', 'test_coco.json', 17, 'coco', 'coco'),
}
# labelled keypoints in the JSON files (sum of num_keypoints)
NUM_LABELLED = {'deepfashion2': 28 + 31, 'coco': 181}

# mmpose's PackPoseInputs defaults minus 'category_id' (as mmpose's own
# bottom-up configs do, e.g. DEKR): in bottom-up mode that key holds the
# (N,) GT ids of the image, and mmpose's CocoMetric copies it into every
# result as the category, which xtcocotools then cannot index
# ("unhashable type: 'list'"). Our codec packs the ids per instance into
# gt_instances.category_id instead.
META_KEYS = ('id', 'img_id', 'img_path', 'crowd_index', 'ori_shape',
             'img_shape', 'input_size', 'input_center', 'input_scale', 'flip',
             'flip_direction', 'flip_indices', 'raw_ann_info')


def tiny_codec_cfg(num_keypoints, layout, input_size, decode_mode):
    """The grouped codec at ``input_size`` x ``input_size`` (heatmaps at
    1 / ``STRIDE``) with ``decode_mode``, rescore sigma 2 and top-20."""
    return dict(
        type='GroupedCenterNetLabel',
        input_size=(input_size, input_size),
        heatmap_size=(input_size // STRIDE, input_size // STRIDE),
        num_keypoints=num_keypoints,
        category_keypoints=layout,
        decode_mode=decode_mode,
        rescore_sigma=2.0,
        topk=20)


def tiny_model_cfg(num_keypoints, layout, codec_cfg, test_cfg):
    """A randomly initialised CenterNetPoseEstimator: the tiny DLA
    (channels ``TINY``) + DLA-up to 16 channels, the grouped head with
    ``head_conv`` 8 and ``codec_cfg`` as its decoder."""
    return dict(
        type='CenterNetPoseEstimator',
        data_preprocessor=dict(
            type='PoseDataPreprocessor',
            mean=[123.675, 116.28, 103.53],
            std=[58.395, 57.12, 57.375],
            bgr_to_rgb=True),
        backbone=dict(type='DLANet', depth=34, channels=TINY),
        neck=dict(type='DLAUpNeck', in_channels=TINY, out_channels=16),
        head=dict(
            type='CenterNetPoseHead',
            in_channels=16,
            num_keypoints=num_keypoints,
            category_keypoints=layout,
            head_conv=8,
            decoder=codec_cfg),
        test_cfg=test_cfg)


def _fixture_dir(folder, ann_file):
    root = osp.join(shared_data_dir(), folder)
    if not osp.isfile(osp.join(root, ann_file)):
        pytest.skip(f'real-data fixture {osp.join(root, ann_file)} not '
                    'available')
    return root


def _input_warp(meta):
    """(2, 3) affine map image px -> input px that BottomupResize
    (``use_udp=False``, no rotation) warped the image with, from the
    ``input_center`` / ``input_scale`` / ``input_size`` it stored."""
    return get_warp_matrix(
        np.asarray(meta['input_center'], np.float32),
        np.asarray(meta['input_scale'], np.float32), 0.,
        tuple(meta['input_size']))


def _apply(mat, xy):
    return np.asarray(xy, np.float64) @ mat[:, :2].T + mat[:, 2]


class AnnotationsToInput:
    """Pipeline step: ``keypoints`` (N, K, 2) and ``bbox`` (N, 4, xyxy)
    from image pixels to model-input pixels (see :func:`_input_warp`)."""

    def __call__(self, results):
        mat = _input_warp(results)
        results['keypoints'] = _apply(mat, results['keypoints']).astype(
            np.float32)
        corners = np.asarray(results['bbox']).reshape(-1, 2, 2)
        results['bbox'] = _apply(mat, corners).reshape(-1, 4).astype(
            np.float32)
        return results


def _run(case, input_size, mode):
    """The path of the module docstring for one fixture; returns the
    dataset and the predicted data samples (image pixels)."""
    dtype, folder, ann_file, num_keypoints, layout, _ = CASES[case]
    root = _fixture_dir(folder, ann_file)
    codec_cfg = tiny_codec_cfg(num_keypoints, layout, input_size, mode)
    with DefaultScope.overwrite_default_scope('mmpose'):
        dataset = DATASETS.build(
            dict(
                type=dtype,
                data_root=root,
                ann_file=ann_file,
                data_prefix=dict(img=''),
                data_mode='bottomup',
                test_mode=True,
                pipeline=[
                    dict(type='LoadImage'),
                    dict(
                        type='BottomupResize',
                        input_size=(input_size, input_size)),
                    AnnotationsToInput(),
                    dict(
                        type='CenterNetFilterInstances',
                        category_keypoints=layout),
                    dict(type='GenerateTarget', encoder=codec_cfg),
                    dict(type='PackPoseInputs', meta_keys=META_KEYS),
                ]))
        model = MODELS.build(
            tiny_model_cfg(num_keypoints, layout, codec_cfg,
                           dict(flip_test=False)))
    model.eval()
    data = pseudo_collate([dataset[i] for i in range(len(dataset))])

    codec = model.head.decoder
    per_image = []
    for sample in data['data_samples']:
        encoded = {k: v.numpy() for k, v in sample.gt_fields.items()}
        encoded.update(
            {k: v.numpy()
             for k, v in sample.gt_instance_labels.items()})
        per_image.append(codec.targets_to_outputs(encoded))
    outputs = {
        k: torch.from_numpy(np.stack([o[k] for o in per_image]))
        for k in OUTPUT_KEYS
    }
    # The features would be thrown away: skip the backbone, answer with
    # the ideal outputs.
    model.extract_feat = lambda inputs: None
    model.head.forward = lambda feats: outputs
    with torch.no_grad():
        samples = model.test_step(data)
    return dataset, samples


@pytest.fixture(scope='module')
def decoded():
    """(case, input_size, mode) -> (dataset, samples), computed once."""
    cache = {}

    def get(case, input_size, mode='nearest'):
        key = (case, input_size, mode)
        if key not in cache:
            cache[key] = _run(*key)
        return cache[key]

    return get


def _iou(a, b):
    """IoU of the xyxy box ``a`` (4,) with each of ``b`` (M, 4) -> (M,)."""
    lt = np.maximum(a[:2], b[:, :2])
    rb = np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a + area_b - inter)


def _keypoint_errors(case, samples):
    """Check every image's decoded objects against the JSON annotations:
    one detection (score > 0.5) per annotation, box IoU > 0.9, the right
    category, keypoints of other categories at (0, 0) with score 0, every
    labelled keypoint within one output pixel (per axis) with score > 0.5.

    Returns:
        tuple: per labelled keypoint (all images), its error in output
        pixels (max over x, y) and whether its output cell is shared with
        another labelled keypoint of the image (cells computed from the
        JSON and the image's warp, independently of the codec).
    """
    _, folder, ann_file, num_keypoints, layout, _ = CASES[case]
    with open(osp.join(shared_data_dir(), folder, ann_file)) as f:
        coco = json.load(f)
    ranges = get_category_keypoint_ranges(layout, num_keypoints)
    by_image = {img['id']: [] for img in coco['images']}
    for ann in coco['annotations']:
        by_image[ann['image_id']].append(ann)
    assert sorted(s.img_id for s in samples) == sorted(by_image)
    errors, shared = [], []
    for sample in samples:
        anns = by_image[sample.img_id]
        pred = sample.pred_instances
        # image pixels per output pixel, (x, y)
        px = STRIDE * np.asarray(sample.input_scale) / np.asarray(
            sample.input_size)
        found = pred.bbox_scores > 0.5
        assert found.sum() == len(anns), (sample.img_id, found.sum())
        mat = _input_warp(sample.metainfo)
        cells, img_err = [], []
        matched = set()
        for ann in anns:
            x, y, w, h = ann['bbox']
            box = np.array([x, y, x + w, y + h])
            ious = np.where(found, _iou(box, pred.bboxes), -1.)
            i = int(np.argmax(ious))
            assert ious[i] > 0.9, (ann['id'], ious[i])
            assert i not in matched
            matched.add(i)
            assert int(pred.category_id[i]) == ann['category_id']
            first, last = ranges[ann['category_id'] - 1]
            other = np.ones(num_keypoints, bool)
            other[first:last + 1] = False
            assert not pred.keypoints[i][other].any()
            assert not pred.keypoint_scores[i][other].any()
            kpts = np.array(ann['keypoints'], float).reshape(-1, 3)
            lab = kpts[:, 2] > 0
            err = np.abs(pred.keypoints[i][lab] - kpts[lab, :2]) / px
            err = err.max(axis=1) if err.size else np.zeros(0)
            assert np.all(err <= 1.0), (ann['id'], err.max())
            assert np.all(pred.keypoint_scores[i][lab] > 0.5)
            img_err.append(err)
            cell = np.floor(_apply(mat, kpts[lab, :2]) / STRIDE)
            cells.append(cell)
        cells = np.concatenate(cells)
        _, inverse, counts = np.unique(
            cells, axis=0, return_inverse=True, return_counts=True)
        shared.append(counts[inverse.reshape(-1)] > 1)
        errors.append(np.concatenate(img_err))
    return np.concatenate(errors), np.concatenate(shared)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('case, input_size', [('deepfashion2', 512),
                                              ('coco', 512), ('coco', 1024)])
def test_objects_categories_boxes_and_keypoints(decoded, case, input_size,
                                                mode):
    dataset, samples = decoded(case, input_size, mode)
    assert len(samples) == len(dataset)
    errors, _ = _keypoint_errors(case, samples)
    assert len(errors) == NUM_LABELLED[case]
    assert errors.max() <= 1.0


@pytest.mark.parametrize('mode', [
    'rescore',
    'nearest',
])
@pytest.mark.parametrize('case, input_size', [('deepfashion2', 512),
                                              ('coco', 512)])
def test_keypoints_exact_unless_their_cell_is_shared(decoded, case,
                                                     input_size, mode):
    _, samples = decoded(case, input_size, mode)
    errors, shared = _keypoint_errors(case, samples)
    assert np.all(errors[~shared] < 1e-3), errors[~shared].max()
    if case == 'coco':
        # nose and both eyes of the 30 x 96 px person share one cell
        assert shared.sum() >= 3 and errors[shared].max() > 0.1


def _evaluate(metric_cfgs, dataset, samples):
    """The metrics as the runner's Evaluator calls them."""
    with DefaultScope.overwrite_default_scope('mmpose'):
        metrics = [METRICS.build(cfg) for cfg in metric_cfgs]
    evaluator = Evaluator(metrics)
    evaluator.dataset_meta = dataset.metainfo
    evaluator.process(copy.deepcopy(samples), None)
    return evaluator.evaluate(len(samples))


def _metric_cfgs(case, with_mmpose=False):
    _, folder, ann_file, _, layout, prefix = CASES[case]
    ann = osp.join(shared_data_dir(), folder, ann_file)
    cfgs = [
        dict(
            type='MultiCategoryCocoMetric',
            ann_file=ann,
            category_keypoints=layout,
            prefix=prefix)
    ]
    if with_mmpose:
        # mmpose's metric as the COCO config uses it, and with its defaults
        # (keypoint-weighted score, OKS-NMS)
        cfgs += [
            dict(
                type='CocoMetric',
                ann_file=ann,
                score_mode='bbox',
                nms_mode='none',
                prefix='mmpose'),
            dict(type='CocoMetric', ann_file=ann, prefix='mmpose_default'),
        ]
    return cfgs


@pytest.mark.parametrize('mode', MODES)
def test_metric_gives_ap_one_deepfashion2(decoded, mode):
    dataset, samples = decoded('deepfashion2', 512, mode)
    res = _evaluate(_metric_cfgs('deepfashion2'), dataset, samples)
    assert res['df2/AP'] == pytest.approx(1.0)
    assert res['df2/AR'] == pytest.approx(1.0)
    assert res['df2/AP_long_sleeved_dress'] == pytest.approx(1.0)


@pytest.mark.parametrize('mode', MODES)
def test_metric_gives_ap_one_coco(decoded, mode):
    dataset, samples = decoded('coco', 1024, mode)
    res = _evaluate(_metric_cfgs('coco', with_mmpose=True), dataset, samples)
    for key in ('coco/AP', 'coco/AR', 'coco/AP_person', 'mmpose/AP',
                'mmpose/AR', 'mmpose_default/AP'):
        assert res[key] == pytest.approx(1.0), key


@pytest.mark.parametrize('case, input_size', [('deepfashion2', 512),
                                              ('coco', 1024)])
def test_keypoints_two_output_pixels_off_fail_both_checks(
        decoded, case, input_size):
    dataset, samples = decoded(case, input_size)
    shifted = copy.deepcopy(samples)
    for s in shifted:
        px = STRIDE * np.asarray(s.input_scale) / np.asarray(s.input_size)
        kp = s.pred_instances.keypoints
        live = s.pred_instances.keypoint_scores > 0
        kp[live] = kp[live] + 2 * px
    with pytest.raises(AssertionError):
        _keypoint_errors(case, shifted)
    res = _evaluate(_metric_cfgs(case), dataset, shifted)
    assert res[f'{CASES[case][5]}/AP'] < 0.9


def test_wrong_category_fails_both_checks(decoded):
    """The dresses (category 11) labelled as category 10
    (short_sleeved_dress, keypoints 190-218): no detection of category 11
    is left."""
    dataset, samples = decoded('deepfashion2', 512)
    wrong = copy.deepcopy(samples)
    for s in wrong:
        cat = s.pred_instances.category_id
        s.pred_instances.category_id = np.where(cat == 11, 10, cat)
    with pytest.raises(AssertionError):
        _keypoint_errors('deepfashion2', wrong)
    res = _evaluate(_metric_cfgs('deepfashion2'), dataset, wrong)
    assert res['df2/AP'] == pytest.approx(0.0)

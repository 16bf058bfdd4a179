"""Tests of ``CenterNetPoseEstimator``: mapping of a multi-class head's
output (model-input pixels) back to the image, with a fake head."""
import copy

import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData, PixelData
from torch import nn

import mmkp_ext  # noqa: F401
from mmkp_ext.models.pose_estimators import CenterNetPoseEstimator
from mmpose.models.pose_estimators import BottomupPoseEstimator
from mmpose.registry import MODELS
from mmpose.structures import PoseDataSample

# model input 64 x 48 (w, h) showing an image region of 200 x 150 px centred
# at (150, 80): image = input / (64, 48) * (200, 150) + (150, 80) - (100, 75)
META = dict(
    img_id=3,
    input_size=(64, 48),
    input_center=np.array([150., 80.]),
    input_scale=np.array([200., 150.]))


def _head_output():
    """Two objects, K = 5; object 0 is of a category owning keypoints
    0-2, object 1 of one owning 3-4 (others (0, 0) with score 0)."""
    keypoints = np.zeros((2, 5, 2), np.float32)
    scores = np.zeros((2, 5), np.float32)
    keypoints[0, :3] = [[32, 24], [0, 0], [64, 48]]
    scores[0, :3] = [0.9, 0.3, 0.0]  # kpt 1: in category, AT the origin
    keypoints[1, 3:] = [[16, 12], [48, 36]]
    scores[1, 3:] = [0.8, 0.7]
    return InstanceData(
        keypoints=keypoints,
        keypoint_scores=scores,
        bboxes=np.array([[0, 0, 64, 48], [16, 12, 32, 24]], np.float32),
        bbox_scores=np.array([0.95, 0.6], np.float32),
        category_id=np.array([1, 2]))


def _samples(n=1):
    out = []
    for i in range(n):
        sample = PoseDataSample()
        sample.set_metainfo(dict(META, img_id=META['img_id'] + i))
        out.append(sample)
    return out


@pytest.fixture(scope='module')
def estimator():
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(
            dict(
                type='CenterNetPoseEstimator',
                backbone=dict(
                    type='MobileNetV2', widen_factor=0.25, out_indices=(7, )),
                head=dict(
                    type='HeatmapHead',
                    in_channels=1280,
                    out_channels=5,
                    deconv_out_channels=None),
                test_cfg=dict(flip_test=False)))
    assert isinstance(model, CenterNetPoseEstimator)
    return model


def test_maps_to_image_and_keeps_absent_keypoints_at_zero(estimator):
    (sample, ) = estimator.add_pred_to_datasample([_head_output()], None,
                                                  _samples())
    pred = sample.pred_instances
    # hand-worked: x * 200/64 + 50, y * 150/48 + 5
    np.testing.assert_allclose(
        pred.keypoints[0],
        [[150, 80], [50, 5], [250, 155], [0, 0], [0, 0]])
    np.testing.assert_allclose(
        pred.keypoints[1],
        [[0, 0], [0, 0], [0, 0], [100, 42.5], [200, 117.5]])
    np.testing.assert_allclose(pred.bboxes,
                               [[50, 5, 250, 155], [100, 42.5, 150, 80]])
    assert pred.keypoints.dtype == np.float32
    # passed through unchanged
    np.testing.assert_array_equal(pred.category_id, [1, 2])
    np.testing.assert_array_equal(pred.bbox_scores,
                                  _head_output().bbox_scores)
    np.testing.assert_array_equal(pred.keypoint_scores,
                                  _head_output().keypoint_scores)
    np.testing.assert_array_equal(pred.keypoints_visible,
                                  pred.keypoint_scores)


def test_agrees_with_mmpose_on_the_category_keypoints(estimator):
    """mmpose's BottomupPoseEstimator maps the same way, but moves the
    absent keypoints to the image position of the input origin."""
    ours = estimator.add_pred_to_datasample([_head_output()], None,
                                            _samples())[0].pred_instances
    theirs = BottomupPoseEstimator.add_pred_to_datasample(
        estimator, [_head_output()], None, _samples())[0].pred_instances
    present = ~((_head_output().keypoint_scores == 0)
                & np.all(_head_output().keypoints == 0, axis=-1))
    np.testing.assert_allclose(ours.keypoints[present],
                               theirs.keypoints[present], rtol=1e-6)
    np.testing.assert_allclose(ours.bboxes, theirs.bboxes, rtol=1e-6)
    np.testing.assert_array_equal(theirs.category_id, [1, 2])
    np.testing.assert_allclose(theirs.keypoints[~present], [[50, 5]] * 5)
    np.testing.assert_array_equal(ours.keypoints[~present], 0)


def test_keypoints_visible_kept_and_fields_passed(estimator):
    out = _head_output()
    out.keypoints_visible = np.full((2, 5), 0.5, np.float32)
    field = PixelData(heatmaps=np.zeros((1, 4, 4)))
    (sample, ) = estimator.add_pred_to_datasample([out], [field], _samples())
    assert np.all(sample.pred_instances.keypoints_visible == 0.5)
    assert sample.pred_fields is field


def test_empty_prediction(estimator):
    empty = InstanceData(
        keypoints=np.zeros((0, 5, 2), np.float32),
        keypoint_scores=np.zeros((0, 5), np.float32),
        bboxes=np.zeros((0, 4), np.float32),
        bbox_scores=np.zeros(0, np.float32),
        category_id=np.zeros(0, np.int64))
    (sample, ) = estimator.add_pred_to_datasample([empty], None, _samples())
    assert sample.pred_instances.keypoints.shape == (0, 5, 2)
    assert sample.pred_instances.bboxes.shape == (0, 4)


class _FakeHead(nn.Module):
    """Stands in for CenterNetPoseHead: returns fixed input-space output
    per image and records what ``predict`` received."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def predict(self, feats, data_samples, test_cfg=None):
        self.calls.append((feats, len(data_samples)))
        return [_head_output() for _ in data_samples]


def test_predict_end_to_end(estimator):
    model = copy.deepcopy(estimator)
    model.head = _FakeHead()
    model.eval()
    inputs = torch.zeros(2, 3, 48, 64)
    with torch.no_grad():
        results = model.predict(inputs, _samples(2))
    assert len(model.head.calls) == 1
    (feats, n), = model.head.calls
    assert n == 2 and feats[-1].shape[0] == 2
    assert [r.img_id for r in results] == [3, 4]
    for r in results:
        np.testing.assert_allclose(r.pred_instances.bboxes[0],
                                   [50, 5, 250, 155])
        np.testing.assert_array_equal(r.pred_instances.category_id, [1, 2])
        np.testing.assert_array_equal(r.pred_instances.keypoints[0, 3:], 0)


def test_bad_inputs(estimator):
    sample = PoseDataSample()
    sample.set_metainfo(dict(img_id=9, input_size=(64, 48)))
    with pytest.raises(ValueError, match="lacks \\['input_center', "
                       "'input_scale'\\]"):
        estimator.add_pred_to_datasample([_head_output()], None, [sample])
    with pytest.raises(ValueError, match='2 prediction sets for 1 data'):
        estimator.add_pred_to_datasample(
            [_head_output(), _head_output()], None, _samples())
    bad = _head_output()
    bad.keypoint_scores = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match=r'keypoint_scores \(N, K\)'):
        estimator.add_pred_to_datasample([bad], None, _samples())

"""Real COCO data (../shared/data/coco: 4 val2017 images, 14 people, 12 of
them with labelled keypoints), end to end through mmpose's top-down path
with our COCO soft-argmax config:

1. the config's own val pipeline (``LoadImage``, ``GetBBoxCenterScale``,
   ``TopdownAffine``, ``PackPoseInputs``) crops each ground-truth box to
   192x256 input pixels;
2. the heatmap logits a perfect network would output are built from the
   ground-truth keypoints, independently of the head: mmpose's
   ``get_warp_matrix`` with the sample's ``input_center`` / ``input_scale``
   maps them into the crop, division by the stride 4 into the 48x64 map
   (heatmap pixel ``j`` sits at input pixel ``4 j``), and each channel is a
   sharp Gaussian there, ``logits = -d^2 / (2 sigma^2 alpha)``, so that the
   head's softmax of ``alpha * logits`` is exactly that Gaussian;
3. ``SoftArgmaxHead.predict`` (the config's head, with the logits as its
   input: ``final_layer=None``) decodes them, with and without flip test;
4. ``TopdownPoseEstimator.add_pred_to_datasample`` maps them back to the
   image, and mmpose's ``CocoMetric`` scores them.

Every labelled keypoint must come back where it was (well within a pixel)
with coco/AP 1.0; a wrong flip, a shift of the logits or a wrong inverse
affine must break that.
"""
import copy
import os.path as osp

import numpy as np
import pytest
import torch
from _helpers import REPO_ROOT, shared_data_dir

import mmkp_ext  # noqa: F401

COCO_DIR = osp.join(shared_data_dir(), 'coco')
ANN = osp.join(COCO_DIR, 'test_coco.json')
CONFIG = osp.join(REPO_ROOT, 'configs/soft_argmax/coco/'
                  'td-sa_hrnet-w32_8xb64-20e_coco-256x192.py')

#: Width of the ground-truth Gaussians in heatmap pixels: wide enough that
#: the discrete soft-argmax of a Gaussian is its centre (relative error ~
#: exp(-2 pi^2 sigma^2) ~ 1e-4), narrow enough that the keypoint 1.3 px from
#: the map's border is pulled inwards by less than 0.01 px.
SIGMA = 0.7
#: Largest error allowed of a round trip, in input (crop) pixels (measured:
#: 0.025 for that keypoint, <= 0.002 for all others).
TOL_INPUT_PX = 0.05
#: Largest error allowed of the correct paths, in image pixels (the biggest
#: box is 444 px tall: one input pixel is 1.7 image pixels there).
TOL_IMAGE_PX = 1.0

pytestmark = pytest.mark.skipif(
    not osp.isfile(ANN),
    reason=f'real COCO fixtures not found at {COCO_DIR} (set '
    'MMKP_SHARED_DATA to the shared data folder to run these tests)')


def test_coco_metric_gives_ap_1_for_ground_truth():
    from mmpose.datasets import CocoDataset
    from mmpose.evaluation import CocoMetric
    dataset = CocoDataset(
        data_root=COCO_DIR + '/', ann_file='test_coco.json',
        data_prefix=dict(img=''), data_mode='topdown', test_mode=True,
        pipeline=[])
    # 14 annotations, 2 without any labelled keypoint (dropped by mmpose).
    assert len(dataset) == 12

    def evaluate(offset_px):
        metric = CocoMetric(ann_file=ANN)
        metric.dataset_meta = dataset.metainfo
        samples = []
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            kpts = info['keypoints'].astype(np.float64) + offset_px
            samples.append(
                dict(
                    id=info['id'], img_id=info['img_id'], category_id=1,
                    pred_instances=dict(
                        keypoints=kpts,
                        keypoint_scores=np.ones(kpts.shape[:2])),
                    gt_instances=dict(bbox_scores=np.ones(1))))
        metric.process([], samples)
        return metric.evaluate(size=len(samples))['coco/AP']

    assert evaluate(0.0) == pytest.approx(1.0)
    # Moving every keypoint by 8 px must cost AP: the metric really compares.
    assert evaluate(8.0) < 0.9


class TopDown:
    """The samples of the 12 people after the config's val pipeline, the
    estimator built from the config (head fed with logits), and helpers to
    run head -> estimator -> metric on logits."""

    def __init__(self):
        from mmengine.config import Config
        from mmpose.registry import DATASETS, MODELS
        cfg = Config.fromfile(CONFIG)
        ds_cfg = copy.deepcopy(cfg.val_dataloader.dataset)
        assert [t['type'] for t in ds_cfg.pipeline] == [
            'LoadImage', 'GetBBoxCenterScale', 'TopdownAffine',
            'PackPoseInputs'
        ]
        ds_cfg.update(
            data_root=COCO_DIR + '/', ann_file='test_coco.json',
            data_prefix=dict(img=''), bbox_file=None)
        self.dataset = DATASETS.build(ds_cfg)
        self.samples = [
            self.dataset[i]['data_samples'] for i in range(len(self.dataset))
        ]
        assert len(self.samples) == 12
        # The config's head (alpha, decoder, scores) with the incoming
        # features used as its logits.
        cfg.model.head.update(in_channels=17, final_layer=None)
        cfg.model.backbone.init_cfg = None
        self.model = MODELS.build(cfg.model)
        self.head = self.model.head
        self.test_cfg = dict(cfg.model.test_cfg)
        self.input_size = np.array(self.samples[0].metainfo['input_size'])
        self.heatmap_size = self.input_size // 4  # (48, 64)
        self.flip_indices = list(self.samples[0].metainfo['flip_indices'])
        self.gt = np.stack(
            [s.gt_instances.keypoints[0] for s in self.samples])
        self.labelled = np.stack(
            [s.gt_instances.keypoints_visible[0] for s in self.samples]) > 0
        self.scale = np.stack(
            [s.metainfo['input_scale'] for s in self.samples])  # (B, 2)
        self.gt_input = np.stack([self._to_input(s) for s in self.samples])

    def _to_input(self, sample):
        """Ground-truth keypoints (K, 2) of a sample in input pixels."""
        from mmpose.structures.bbox import get_warp_matrix
        warp = get_warp_matrix(
            sample.metainfo['input_center'],
            sample.metainfo['input_scale'],
            rot=0.0,
            output_size=tuple(self.input_size))
        kpts = sample.gt_instances.keypoints[0].astype(np.float64)
        return kpts @ warp[:, :2].T + warp[:, 2]

    def logits(self, input_coords):
        """(B, K, 64, 48) logits whose softmax (times alpha) is a Gaussian
        of ``SIGMA`` heatmap pixels at ``input_coords`` (B, K, 2)."""
        w, h = self.heatmap_size
        c = torch.as_tensor(input_coords / 4.0, dtype=torch.float32)
        cols = torch.arange(w, dtype=torch.float32) - c[..., 0, None]
        rows = torch.arange(h, dtype=torch.float32) - c[..., 1, None]
        d2 = cols[..., None, :]**2 + rows[..., :, None]**2
        return -d2 / (2 * SIGMA**2 * self.head.alpha)

    def flipped_input(self, flip_indices=None):
        """Keypoints as a perfect network sees them in the horizontally
        flipped crop (``inputs.flip(-1)``: x -> w - 1 - x): channel ``c``
        shows the person's keypoint ``flip_indices[c]`` (left and right
        swap in a mirror image)."""
        idx = self.flip_indices if flip_indices is None else flip_indices
        coords = self.gt_input[:, idx].copy()
        coords[..., 0] = self.input_size[0] - 1 - coords[..., 0]
        return coords

    def run(self, feats, flip_test, shift_heatmap=True, scale_factor=1.0):
        """Head predict + estimator inverse affine (with every sample's
        ``input_scale`` multiplied by ``scale_factor``) + CocoMetric.

        Returns:
            predicted keypoints (B, K, 2) in image pixels, and coco/AP.
        """
        from mmpose.registry import METRICS
        samples = copy.deepcopy(self.samples)
        test_cfg = dict(self.test_cfg, flip_test=flip_test,
                        shift_heatmap=shift_heatmap)
        preds = self.head.predict(feats, samples, test_cfg=test_cfg)
        for s in samples:
            s.set_metainfo(
                dict(input_scale=s.metainfo['input_scale'] * scale_factor))
        samples = self.model.add_pred_to_datasample(preds, None, samples)
        keypoints = np.stack([s.pred_instances.keypoints[0] for s in samples])
        metric = METRICS.build(dict(type='CocoMetric', ann_file=ANN))
        metric.dataset_meta = self.dataset.metainfo
        metric.process({}, [s.to_dict() for s in samples])
        return keypoints, metric.evaluate(size=len(samples))['coco/AP']

    def input_error(self, keypoints):
        """Prediction - ground truth of the labelled keypoints, (N, 2), in
        input pixels (the image error divided by the crop's scale)."""
        err = (keypoints - self.gt) * self.input_size / self.scale[:, None]
        return err[self.labelled]

    def image_error(self, keypoints):
        """Distance to the ground truth in image pixels, labelled keypoints
        only, (N, )."""
        return np.linalg.norm(keypoints - self.gt, axis=-1)[self.labelled]


@pytest.fixture(scope='module')
def topdown():
    return TopDown()


def test_config_flip_settings(topdown):
    assert topdown.test_cfg['flip_test'] is True
    assert topdown.test_cfg['shift_heatmap'] is True
    # COCO's left/right swap.
    assert topdown.flip_indices[:5] == [0, 2, 1, 4, 3]


def test_ground_truth_logits_come_back_as_ground_truth(topdown):
    keypoints, ap = topdown.run((topdown.logits(topdown.gt_input), ),
                                flip_test=False)
    assert np.abs(topdown.input_error(keypoints)).max() < TOL_INPUT_PX
    assert topdown.image_error(keypoints).max() < TOL_IMAGE_PX
    assert ap == pytest.approx(1.0)


def test_flip_test_round_trip(topdown):
    feats = [(topdown.logits(topdown.gt_input), ),
             (topdown.logits(topdown.flipped_input()), )]
    keypoints, ap = topdown.run(feats, flip_test=True, shift_heatmap=True)
    # Flipping the crop maps x to w - 1 - x, so a flipped-back heatmap sits
    # 1 - 1/4 heatmap pixel left of the original one; shift_heatmap moves
    # it one pixel right, i.e. 1/4 px too far, and the average of the two
    # maps is 1/8 heatmap pixel = 0.5 input pixel right of the truth.
    err = topdown.input_error(keypoints)
    np.testing.assert_allclose(err[:, 0], 0.5, atol=TOL_INPUT_PX)
    np.testing.assert_allclose(err[:, 1], 0.0, atol=TOL_INPUT_PX)
    assert topdown.image_error(keypoints).max() < TOL_IMAGE_PX
    assert ap == pytest.approx(1.0)
    # Without shift_heatmap the average sits 3/8 heatmap pixel = 1.5 input
    # pixels left: 2.6 image pixels for the largest person.
    keypoints, _ = topdown.run(feats, flip_test=True, shift_heatmap=False)
    err = topdown.input_error(keypoints)
    np.testing.assert_allclose(err[:, 0], -1.5, atol=TOL_INPUT_PX)
    assert topdown.image_error(keypoints).max() > 2.0


def _wrong_runs(topdown):
    gt_logits = topdown.logits(topdown.gt_input)
    identity = list(range(17))
    return {
        # Flip test with the mirror image's channels not swapped back.
        'flip indices = identity':
        lambda: topdown.run([(gt_logits, ), (topdown.logits(
            topdown.flipped_input(identity)), )], flip_test=True),
        # Flip test fed the un-flipped image's logits as the flipped ones.
        'unflipped logits':
        lambda: topdown.run([(gt_logits, ), (gt_logits, )], flip_test=True),
        'logits half a pixel right':
        lambda: topdown.run((topdown.logits(topdown.gt_input + [2.0, 0.0]),
                             ), flip_test=False),
        'logits one pixel down':
        lambda: topdown.run((topdown.logits(topdown.gt_input + [0.0, 4.0]),
                             ), flip_test=False),
        'inverse affine scale +5 %':
        lambda: topdown.run((gt_logits, ), flip_test=False,
                            scale_factor=1.05),
    }


@pytest.mark.parametrize('name', [
    'flip indices = identity', 'unflipped logits',
    'logits half a pixel right', 'logits one pixel down',
    'inverse affine scale +5 %'
])
def test_wrong_paths_fail(topdown, name):
    keypoints, ap = _wrong_runs(topdown)[name]()
    error = topdown.image_error(keypoints).max()
    assert ap < 1.0 or error > 2.0, (name, ap, error)

"""Scale / rotation test-time augmentation (TopdownTTAPoseEstimator)."""
import numpy as np
import pytest
import torch
from _helpers import randomise_
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData
from torch import nn

import mmkp_ext  # noqa: F401
from mmpose.models.pose_estimators import TopdownPoseEstimator
from mmpose.registry import MODELS
from mmpose.structures import PoseDataSample
from mmpose.structures.bbox import get_warp_matrix
from mmkp_ext.models.pose_estimators.topdown_tta import (
    TopdownTTAPoseEstimator, parse_tta_cfg, tta_augmentations,
    tta_crop_matrices, warp_crops)


@pytest.fixture(autouse=True)
def mmpose_scope():
    # Nested configs (data preprocessor, codec) build in mmpose's scope.
    with DefaultScope.overwrite_default_scope('mmpose'):
        yield


W, H = 48, 64  # crop size (input_size order: w, h)
K = 3
# Keypoints within ~11 px of the crop centre (24, 32): they stay inside
# every augmented crop, so an exactly equivariant model sees them whole.
TRUTH = np.array([[20.3, 24.6], [31.2, 35.1], [22.4, 41.7]])
FLIP_INDICES = [0, 2, 1]
# A small real model: ResNet stem + first stage (stride 4, 64 channels).
BACKBONE = dict(type='ResNet', depth=18, num_stages=1, strides=(1, ),
                dilations=(1, ), out_indices=(0, ))
HEAD = dict(
    type='HeatmapHead',
    in_channels=64,
    out_channels=K,
    deconv_out_channels=None,
    decoder=dict(type='MSRAHeatmap', input_size=(W, H),
                 heatmap_size=(W // 4, H // 4), sigma=2.0))


def make_samples(n, flip_indices=FLIP_INDICES):
    """Top-down samples whose crop IS the image (image coords == crop
    coords after add_pred_to_datasample)."""
    samples = []
    for _ in range(n):
        s = PoseDataSample(
            metainfo=dict(
                input_size=(W, H),
                input_center=np.array([W / 2, H / 2], dtype=np.float32),
                input_scale=np.array([W, H], dtype=np.float32),
                flip_indices=flip_indices))
        s.gt_instances = InstanceData(
            bboxes=np.array([[0, 0, W, H]], dtype=np.float32),
            bbox_scores=np.ones(1, dtype=np.float32))
        samples.append(s)
    return samples


def blob_image(points, sigma=2.0):
    """(1, K, H, W): one Gaussian blob per keypoint channel."""
    ys, xs = np.mgrid[0:H, 0:W]
    maps = [np.exp(-((xs - x)**2 + (ys - y)**2) / (2 * sigma**2))
            for x, y in points]
    return torch.tensor(np.stack(maps)[None], dtype=torch.float32)


class CentroidHead(nn.Module):
    """Hand-built, exactly equivariant 'head': the input's channel k is an
    image of keypoint k, the prediction is its intensity centroid (crop
    pixels). Flip test mirrors the flipped input back (x -> W-1-x, channels
    swapped by flip_indices) and averages the images first."""

    def predict(self, feats, samples, test_cfg={}):
        if test_cfg.get('flip_test', False):
            x, x_flip = feats
            idx = samples[0].metainfo['flip_indices']
            x = (x + x_flip.flip(-1)[:, idx]) / 2
        else:
            x = feats
        n, k, h, w = x.shape
        mass = x.sum(dim=(2, 3))
        cx = (x.sum(dim=2) * torch.arange(w)).sum(-1) / mass
        cy = (x.sum(dim=3) * torch.arange(h)).sum(-1) / mass
        kpts = torch.stack([cx, cy], -1).numpy()
        return [
            InstanceData(keypoints=kp[None], keypoint_scores=np.ones((1, k)))
            for kp in kpts
        ]


def equivariant_model(tta, flip_test=False):
    model = TopdownTTAPoseEstimator(
        backbone=BACKBONE,
        head=HEAD,
        test_cfg=dict(flip_test=flip_test, tta=tta))
    model.backbone = nn.Identity()  # features = the image itself
    model.head = CentroidHead()
    return model.eval()


def predict(model, inputs, n=1):
    # The centroid head's channels follow the input's channels, so its
    # mirror image needs no left/right channel swap.
    with torch.no_grad():
        out = model.predict(inputs, make_samples(n, list(range(K))))
    return np.stack([d.pred_instances.keypoints[0] for d in out])


def mmpose_forward_map(points, scale, rot):
    """Where a crop point appears in the crop re-cut with box scale `scale`
    and rotation `rot` (mmpose's get_warp_matrix, independent of ours)."""
    m = get_warp_matrix(
        np.array([W / 2, H / 2]), np.array([W * scale, H * scale]), rot,
        (W, H))
    return points @ m[:, :2].T + m[:, 2]


def test_augmentation_sets():
    assert tta_augmentations() == [(0.8, 0.0), (1.0, 0.0), (1.2, 0.0),
                                   (1.0, -10.0), (1.0, 10.0)]
    assert tta_augmentations((1.0, 2.0), (5.0, ), 'product') == [
        (1.0, 0.0), (1.0, 5.0), (2.0, 0.0), (2.0, 5.0)]
    # The identity is kept once.
    assert tta_augmentations((1.0, ), (0.0, )) == [(1.0, 0.0)]


def test_crop_matrices_match_mmpose_inverse_warp():
    augs = [(0.8, 0.0), (1.2, -10.0), (1.0, 10.0), (1.5, 33.0)]
    mats = tta_crop_matrices(augs, (W, H))
    for (s, r), m in zip(augs, mats):
        ref = get_warp_matrix(
            np.array([W / 2, H / 2]), np.array([W * s, H * s]), r, (W, H),
            inv=True)
        np.testing.assert_allclose(m, ref, atol=1e-4)


def test_warp_half_turn_moves_pixels_exactly():
    """180 degrees about c = (W/2, H/2) sends pixel (x, y) to (W-x, H-y): a
    whole-pixel permutation (row/column 0 come from outside -> fill)."""
    x = torch.randn(2, 3, H, W)
    fill = torch.tensor([5.0, 6.0, 7.0])
    out = warp_crops(x, [(1.0, 180.0)], fill)
    assert out.shape == (2, 3, H, W)
    expected = x[:, :, 1:, 1:].flip(-1).flip(-2)
    torch.testing.assert_close(out[:, :, 1:, 1:], expected, atol=1e-4,
                               rtol=0)
    torch.testing.assert_close(out[:, :, 0, :],
                               fill[None, :, None].expand(2, 3, W))


@pytest.mark.parametrize('flip_test', [False, True])
def test_equivariant_model_maps_back_within_half_pixel(flip_test):
    image = blob_image(TRUTH)
    augs = [(0.8, 0.0), (1.2, 0.0), (1.0, -10.0), (1.0, 10.0)]
    for s, r in augs:
        # Raw prediction inside the augmented crop (the test's own warp via
        # mmpose's matrix): where the keypoints really moved to.
        crop = warp_crops(image, [(s, r)])
        raw = CentroidHead().predict(crop, make_samples(1))[0].keypoints[0]
        moved = mmpose_forward_map(TRUTH, s, r)
        assert np.abs(raw - moved).max() < 0.5
        assert np.abs(moved - TRUTH).max() > 1.5  # not a vacuous check
        # Mapped back onto the original crop by the TTA.
        model = equivariant_model(
            dict(scales=[s] if r == 0 else [],
                 rotations=[r] if r != 0 else []), flip_test)
        got = predict(model, image)[0]
        assert np.abs(got - TRUTH).max() < 0.5, (s, r, got - TRUTH)
    # The report's full set (5 crops, x2 with flip), averaged.
    got = predict(equivariant_model(dict(), flip_test), image)[0]
    assert np.abs(got - TRUTH).max() < 0.5


def small_model(test_cfg, cls=TopdownTTAPoseEstimator):
    model = cls(
        backbone=BACKBONE,
        head=HEAD,
        data_preprocessor=dict(type='PoseDataPreprocessor',
                               mean=[120., 110., 100.],
                               std=[60., 55., 50.]),
        test_cfg=test_cfg)
    return randomise_(model, seed=1).eval()


@pytest.mark.parametrize('flip_test', [False, True])
def test_identity_only_tta_equals_plain_prediction_exactly(flip_test):
    base_cfg = dict(flip_test=flip_test, shift_heatmap=True)
    plain = small_model(base_cfg, TopdownPoseEstimator)
    tta = small_model(dict(base_cfg, tta=dict(scales=[1.0], rotations=[])))
    tta.load_state_dict(plain.state_dict())
    inputs = torch.randn(3, 3, H, W)
    with torch.no_grad():
        a = plain.predict(inputs, make_samples(3))
        b = tta.predict(inputs, make_samples(3))
    for da, db in zip(a, b):
        np.testing.assert_array_equal(da.pred_instances.keypoints,
                                      db.pred_instances.keypoints)
        np.testing.assert_array_equal(da.pred_instances.keypoint_scores,
                                      db.pred_instances.keypoint_scores)


def test_tta_is_the_mean_of_the_single_augmentation_predictions():
    """5-crop TTA == mean over the five one-crop TTA runs (each mapped back
    on its own), for coordinates and scores: the averaging and the order of
    the batched crops are right."""
    inputs = torch.randn(2, 3, H, W)
    cfg = dict(flip_test=True, shift_heatmap=True)
    full = small_model(dict(cfg, tta=dict()))
    with torch.no_grad():
        got = full.predict(inputs, make_samples(2))
    kpts, scores = [], []
    for s, r in tta_augmentations():
        one = small_model(
            dict(cfg, tta=dict(scales=[s] if r == 0 else [],
                               rotations=[r] if r != 0 else [])))
        with torch.no_grad():
            out = one.predict(inputs, make_samples(2))
        kpts.append([d.pred_instances.keypoints for d in out])
        scores.append([d.pred_instances.keypoint_scores for d in out])
    for b, d in enumerate(got):
        np.testing.assert_allclose(
            d.pred_instances.keypoints,
            np.mean([k[b] for k in kpts], axis=0), atol=1e-3)
        np.testing.assert_allclose(
            d.pred_instances.keypoint_scores,
            np.mean([s[b] for s in scores], axis=0), rtol=1e-5)
    # The augmentations do disagree (random weights): a non-trivial mean.
    assert np.ptp([k[0] for k in kpts], axis=0).max() > 1.0


def test_all_augmented_crops_in_one_backbone_forward():
    model = small_model(dict(flip_test=True, shift_heatmap=True, tta=dict()))
    batches = []
    model.backbone.register_forward_hook(
        lambda mod, args, out: batches.append(args[0].shape[0]))
    with torch.no_grad():
        out = model.predict(torch.randn(2, 3, H, W), make_samples(2))
    assert batches == [2 * 5 * 2]  # one forward: 5 augmentations x flip
    kpts = out[0].pred_instances.keypoints
    assert kpts.shape == (1, K, 2) and kpts.dtype == np.float32
    assert out[0].pred_instances.keypoint_scores.shape == (1, K)


def test_outside_pixels_get_the_normalised_pad_value():
    model = small_model(dict(tta=dict(pad_value=0)))
    fill = model._tta_fill(parse_tta_cfg(dict(pad_value=0)), 3)
    # Black (0) normalised by the preprocessor: (0 - mean) / std.
    torch.testing.assert_close(
        fill, torch.tensor([-120 / 60., -110 / 55., -100 / 50.]))
    out = warp_crops(torch.randn(1, 3, H, W), [(1.5, 0.0)], fill)
    torch.testing.assert_close(out[0, :, 0, 0], fill)


@pytest.mark.parametrize('tta, match', [
    (dict(scales=[0.0]), 'scales'),
    (dict(scales=[float('nan')]), 'scales'),
    (dict(rotations=[float('inf')]), 'rotations'),
    (dict(scales=[], rotations=[]), 'no augmentation'),
    (dict(scale=[1.0]), 'Unknown'),
    (dict(combine='all'), 'combine'),
])
def test_bad_tta_config_fails_at_build(tta, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(
            dict(
                type='TopdownTTAPoseEstimator',
                backbone=BACKBONE,
                head=HEAD,
                test_cfg=dict(tta=tta)))

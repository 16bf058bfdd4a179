"""Scale and rotation test-time augmentation (TTA) for top-down estimators.

HRNet++ (COCO 2019 challenge report) averages the keypoints predicted on
re-scaled and rotated versions of every person crop, on top of flip test:
scales {0.8, 1.0, 1.2} and rotations {-10, +10} degrees. mmpose 1.x has no
test-time augmentation besides flip, so this module adds it on the model side,
driven by ``test_cfg``::

    model = dict(
        type='TopdownTTAPoseEstimator',   # or EnsemblePoseEstimator
        ...,
        test_cfg=dict(
            flip_test=True, flip_mode='heatmap', shift_heatmap=True,
            tta=dict(scales=(0.8, 1.0, 1.2), rotations=(-10.0, 10.0))))

Geometry. An augmentation ``(s, theta)`` re-samples the network's input
crop (``W x H`` pixels, pixel centres at integer coordinates, crop centre
``c = (W / 2, H / 2)`` as in mmpose's ``get_warp_matrix``) as::

    p_crop = c + s * R(theta) @ (p_aug - c),
    R(theta) = [[cos theta, -sin theta], [sin theta, cos theta]]

i.e. exactly the crop ``TopdownAffine`` would cut with the box scaled by
``s`` and rotated by ``theta`` in mmpose's convention (``RandomBBoxTransform``
/ ``get_warp_matrix``: ``s > 1`` shows more context and a smaller person,
positive ``theta`` shows the person turned counter-clockwise on screen). The
keypoints predicted in the augmented crop are mapped back with the same
equation, then averaged over the augmentations (coordinates and scores,
equal weights). Where the augmented crop reaches outside the original crop
(``s > 1``, rotations) it is filled with ``pad_value`` (raw pixel value,
default 0 = black, the border ``TopdownAffine`` pads with), normalised like
the image. The identity augmentation ``(1, 0)`` is passed through unchanged
(no resampling and no mapping), so identity-only TTA reproduces the plain
prediction exactly.

Cost. All ``N`` augmented crops of a batch (and with flip test their
mirror images) go through the backbone in ONE forward of ``N * B`` (``2 N
B``) crops, not a loop of forwards.
"""
import math
from numbers import Real
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData
from torch import Tensor

from mmpose.models.pose_estimators import TopdownPoseEstimator
from mmpose.registry import MODELS
from mmpose.utils.typing import SampleList

from ..utils import refuse_mismatched_shapes

__all__ = [
    'TopdownTTAPoseEstimator', 'TopdownTTAMixin', 'parse_tta_cfg',
    'tta_augmentations', 'tta_crop_matrices', 'warp_crops',
    'map_keypoints_back', 'predict_topdown_crops'
]

#: Keys understood in ``test_cfg['tta']``.
TTA_KEYS = ('scales', 'rotations', 'combine', 'pad_value')


def _finite_number(value) -> bool:
    return (not isinstance(value, bool) and isinstance(value, Real)
            and math.isfinite(value))


def tta_augmentations(scales: Sequence[float] = (0.8, 1.0, 1.2),
                      rotations: Sequence[float] = (-10.0, 10.0),
                      combine: str = 'union') -> List[Tuple[float, float]]:
    """The list of ``(scale, rotation_degrees)`` augmentations.

    Args:
        scales: Box scale factors (> 0); ``1.0`` = the original crop.
        rotations: Rotations in degrees (mmpose's sign convention).
        combine: ``'union'`` (the report's set): every scale without
            rotation plus every rotation at scale 1, i.e. ``(s, 0)`` for each
            ``s`` and ``(1, r)`` for each ``r``; ``'product'``: every
            ``(s, r)`` pair of ``scales x (rotations + [0])``. Duplicates are
            dropped keeping the first occurrence.

    Returns:
        list of ``(scale, degrees)`` tuples of floats. The defaults give the
        report's five: ``(0.8, 0), (1, 0), (1.2, 0), (1, -10), (1, 10)``.
    """
    if combine == 'union':
        pairs = [(s, 0.0) for s in scales] + [(1.0, r) for r in rotations]
    elif combine == 'product':
        rots = [0.0] + list(rotations)
        pairs = [(s, r) for s in scales for r in rots]
    else:
        raise ValueError(f"tta combine must be 'union' or 'product', got "
                         f'{combine!r}')
    out = []
    for s, r in pairs:
        pair = (float(s), float(r))
        if pair not in out:
            out.append(pair)
    return out


def parse_tta_cfg(cfg: Optional[dict]) -> Optional[dict]:
    """Validate ``test_cfg['tta']``; return it with defaults filled in, or
    ``None`` when TTA is off (``cfg`` is ``None``/``False``/empty).

    Raises:
        ValueError: unknown keys, non-finite or non-positive scales,
            non-finite rotations, an empty augmentation list, or a bad
            ``pad_value``; the message names the offending entry.
    """
    if cfg is None or cfg is False:
        return None
    if not isinstance(cfg, dict):
        raise ValueError(f'test_cfg.tta must be a dict, got {cfg!r}')
    unknown = set(cfg) - set(TTA_KEYS)
    if unknown:
        raise ValueError(f'Unknown test_cfg.tta keys {sorted(unknown)}; '
                         f'expected some of {TTA_KEYS}')
    scales = tuple(cfg.get('scales', (0.8, 1.0, 1.2)))
    rotations = tuple(cfg.get('rotations', (-10.0, 10.0)))
    for s in scales:
        if not _finite_number(s) or s <= 0:
            raise ValueError(
                f'test_cfg.tta.scales entries must be finite numbers > 0, '
                f'got {s!r}')
    for r in rotations:
        if not _finite_number(r):
            raise ValueError(
                f'test_cfg.tta.rotations entries must be finite numbers '
                f'(degrees), got {r!r}')
    pad_value = cfg.get('pad_value', 0.0)
    if not _finite_number(pad_value):
        raise ValueError(
            f'test_cfg.tta.pad_value must be a finite number, got '
            f'{pad_value!r}')
    combine = cfg.get('combine', 'union')
    augs = tta_augmentations(scales, rotations, combine)
    if not augs:
        raise ValueError('test_cfg.tta gives no augmentation: set at least '
                         'one scale (e.g. scales=(1.0, ))')
    return dict(
        scales=scales,
        rotations=rotations,
        combine=combine,
        pad_value=float(pad_value),
        augmentations=augs)


def tta_crop_matrices(augmentations: Sequence[Tuple[float, float]],
                      input_size: Tuple[int, int]) -> np.ndarray:
    """Affine maps from augmented-crop pixels to original-crop pixels.

    Args:
        augmentations: ``N`` pairs ``(scale, degrees)``.
        input_size: Crop size ``(W, H)`` in pixels.

    Returns:
        np.ndarray: ``(N, 2, 3)`` float64 matrices ``[A | t]`` with
        ``p_crop = A @ p_aug + t``, ``A = s R(theta)``, ``t = c - A c``,
        ``c = (W / 2, H / 2)``.
    """
    w, h = input_size
    center = np.array([w * 0.5, h * 0.5])
    mats = np.zeros((len(augmentations), 2, 3))
    for i, (s, deg) in enumerate(augmentations):
        rad = np.deg2rad(deg)
        cos, sin = np.cos(rad), np.sin(rad)
        a = s * np.array([[cos, -sin], [sin, cos]])
        mats[i, :, :2] = a
        mats[i, :, 2] = center - a @ center
    return mats


def _is_identity(aug: Tuple[float, float]) -> bool:
    return aug[0] == 1.0 and aug[1] == 0.0


def warp_crops(inputs: Tensor,
               augmentations: Sequence[Tuple[float, float]],
               fill: Optional[Tensor] = None) -> Tensor:
    """All augmented versions of a batch of crops, in one tensor.

    Args:
        inputs: ``(B, C, H, W)`` crops (normalised network input).
        augmentations: ``N`` pairs ``(scale, degrees)``.
        fill: ``(C, )`` value of pixels outside the original crop, in the
            units of ``inputs``; ``None`` = 0.

    Returns:
        Tensor: ``(N * B, C, H, W)``, augmentation-major (row ``n * B + b``
        is crop ``b`` under augmentation ``n``). Bilinear resampling; the
        identity augmentation is a copy of ``inputs``.
    """
    B, C, H, W = inputs.shape
    mats = torch.as_tensor(
        tta_crop_matrices(augmentations, (W, H)),
        dtype=torch.float32,
        device=inputs.device)
    ys, xs = torch.meshgrid(
        torch.arange(H, dtype=torch.float32, device=inputs.device),
        torch.arange(W, dtype=torch.float32, device=inputs.device),
        indexing='ij')
    pts = torch.stack([xs, ys], dim=-1)  # (H, W, 2) augmented-crop pixels
    src = torch.einsum('nij,hwj->nhwi', mats[:, :, :2], pts) + \
        mats[:, None, None, :, 2]  # (N, H, W, 2) original-crop pixels
    # grid_sample with align_corners=False: pixel index x <-> (2x+1)/W - 1.
    size = src.new_tensor([W, H])
    grid = (2 * src + 1) / size - 1

    if fill is None:
        fill = inputs.new_zeros(C)
    fill = fill.to(inputs).reshape(1, C, 1, 1)
    N = len(augmentations)
    # Zero padding of (x - fill), then + fill: outside pixels become `fill`.
    shifted = (inputs - fill).repeat(N, 1, 1, 1)
    grid = grid.repeat_interleave(B, dim=0)
    warped = F.grid_sample(
        shifted, grid, mode='bilinear', padding_mode='zeros',
        align_corners=False) + fill
    for n, aug in enumerate(augmentations):
        if _is_identity(aug):
            warped[n * B:(n + 1) * B] = inputs
    return warped


def map_keypoints_back(keypoints: np.ndarray,
                       augmentations: Sequence[Tuple[float, float]],
                       input_size: Tuple[int, int]) -> np.ndarray:
    """Map keypoints predicted in augmented crops back to the original crop.

    Args:
        keypoints: ``(N, B, K, 2)`` crop-pixel coordinates, ``N`` in the
            order of ``augmentations``.
        augmentations: ``N`` pairs ``(scale, degrees)``.
        input_size: ``(W, H)``.

    Returns:
        np.ndarray: ``(N, B, K, 2)`` float64; identity entries unchanged.
    """
    mats = tta_crop_matrices(augmentations, input_size)
    kpts = np.asarray(keypoints, dtype=np.float64)
    out = np.einsum('nij,nbkj->nbki', mats[:, :, :2], kpts) + \
        mats[:, None, None, :, 2]
    for n, aug in enumerate(augmentations):
        if _is_identity(aug):
            out[n] = kpts[n]
    return out


def _split_feats(feats, n: int):
    """Split backbone/neck output (a tensor or a sequence of tensors) along
    the batch into the first ``n`` samples and the rest."""
    if isinstance(feats, Tensor):
        return feats[:n], feats[n:]
    first = type(feats)(f[:n] for f in feats) if isinstance(
        feats, tuple) else [f[:n] for f in feats]
    rest = type(feats)(f[n:] for f in feats) if isinstance(
        feats, tuple) else [f[n:] for f in feats]
    return first, rest


def predict_topdown_crops(model: TopdownPoseEstimator, inputs: Tensor,
                          data_samples: SampleList, test_cfg: dict):
    """Head predictions of a top-down model for a batch of crops, with flip
    test batched into the same backbone forward.

    Args:
        model: A top-down estimator (``extract_feat`` + ``head.predict``).
        inputs: ``(n, C, H, W)`` crops.
        data_samples: ``n`` samples (only their metainfo is read by heads).
        test_cfg: The test config handed to ``head.predict`` (its
            ``flip_test`` decides whether mirror images are added).

    Returns:
        tuple: ``(instances, fields)`` as returned by ``head.predict``
        (``fields`` is ``None`` without ``output_heatmaps``). Keypoints are in
        crop pixels.
    """
    n = inputs.shape[0]
    if test_cfg.get('flip_test', False):
        feats = model.extract_feat(torch.cat([inputs, inputs.flip(-1)]))
        feats = list(_split_feats(feats, n))
    else:
        feats = model.extract_feat(inputs)
    preds = model.head.predict(feats, data_samples, test_cfg=test_cfg)
    if isinstance(preds, tuple):
        return preds
    return preds, None


class TopdownTTAMixin:
    """Scale/rotation TTA around any crop predictor; shared by
    :class:`TopdownTTAPoseEstimator` and ``EnsemblePoseEstimator``.

    The host provides ``test_cfg`` and, optionally, a normalising
    ``data_preprocessor`` (``mean``/``std``), used to express ``pad_value``
    in network-input units.
    """

    def _tta_fill(self, tta: dict, channels: int) -> Tensor:
        pre = getattr(self, 'data_preprocessor', None)
        value = torch.full((channels, ), tta['pad_value'])
        mean, std = getattr(pre, 'mean', None), getattr(pre, 'std', None)
        if getattr(pre, '_enable_normalize', False) and mean is not None:
            mean = mean.reshape(-1).cpu()
            std = std.reshape(-1).cpu()
            if mean.numel() != channels:
                raise ValueError(
                    f'data_preprocessor normalises {mean.numel()} channels '
                    f'but the input has {channels}')
            value = (value - mean) / std
        return value

    def tta_predict(self, inputs: Tensor, data_samples: SampleList,
                    tta: dict, predict_crops: Callable):
        """Average predictions over the TTA augmentations.

        Args:
            inputs: ``(B, C, H, W)`` crops.
            data_samples: ``B`` samples.
            tta: Parsed config (:func:`parse_tta_cfg`).
            predict_crops: ``f(crops, samples) -> (instances, fields)``,
                instances with ``keypoints`` ``(1, K, 2)`` in crop pixels and
                ``keypoint_scores`` ``(1, K)``, for ``N * B`` crops at once.

        Returns:
            tuple: ``(instances, fields)``: ``B`` InstanceData with
            ``keypoints`` ``(1, K, 2)`` float32 (crop pixels, averaged after
            mapping back) and ``keypoint_scores`` ``(1, K)`` float32
            (averaged); ``fields`` are those of the identity augmentation if
            the set has one, else ``None``.
        """
        augs = tta['augmentations']
        B, C, H, W = inputs.shape
        N = len(augs)
        crops = warp_crops(inputs, augs, self._tta_fill(tta, C))
        instances, fields = predict_crops(crops, list(data_samples) * N)
        if len(instances) != N * B:
            raise RuntimeError(f'expected {N * B} predictions for {N} '
                               f'augmentations x {B} crops, got '
                               f'{len(instances)}')
        kpts = np.stack([np.asarray(p.keypoints) for p in instances])
        scores = np.stack([np.asarray(p.keypoint_scores) for p in instances])
        if kpts.ndim != 4 or kpts.shape[1] != 1 or kpts.shape[-1] != 2:
            raise ValueError(
                'TTA supports top-down heads predicting one instance with 2D '
                f'keypoints per crop, got keypoints of shape {kpts.shape[1:]}')
        K = kpts.shape[2]
        kpts = map_keypoints_back(kpts.reshape(N, B, K, 2), augs, (W, H))
        kpts = kpts.mean(axis=0).astype(np.float32)
        scores = scores.reshape(N, B, K).astype(np.float64).mean(
            axis=0).astype(np.float32)

        out = [
            InstanceData(
                keypoints=kpts[b:b + 1], keypoint_scores=scores[b:b + 1])
            for b in range(B)
        ]
        out_fields = None
        if fields is not None:
            ident = [n for n, a in enumerate(augs) if _is_identity(a)]
            if ident:
                out_fields = fields[ident[0] * B:(ident[0] + 1) * B]
        return out, out_fields


@MODELS.register_module()
class TopdownTTAPoseEstimator(TopdownTTAMixin, TopdownPoseEstimator):
    """mmpose's ``TopdownPoseEstimator`` with scale/rotation TTA.

    Same arguments, modules and state dict as ``TopdownPoseEstimator`` (its
    checkpoints load unchanged); ``test_cfg['tta']`` (see the module
    docstring and :func:`parse_tta_cfg`) switches the augmentation on. Without
    it, prediction is exactly ``TopdownPoseEstimator.predict``. Flip test
    (``test_cfg['flip_test']``) applies to every augmented crop, the head
    fusing each crop with its mirror image as usual.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        refuse_mismatched_shapes(self)
        # Fail at build time on a bad tta config, not at the first batch.
        self._tta = parse_tta_cfg(self.test_cfg.get('tta'))

    def predict(self, inputs: Tensor, data_samples: SampleList) -> SampleList:
        """Predictions in image coordinates (see ``TopdownPoseEstimator``);
        with ``test_cfg['tta']`` averaged over the augmentations."""
        tta = parse_tta_cfg(self.test_cfg.get('tta'))
        if tta is None:
            return super().predict(inputs, data_samples)
        assert self.with_head, 'The model must have a head to predict.'
        instances, fields = self.tta_predict(
            inputs, data_samples, tta, lambda crops, samples:
            predict_topdown_crops(self, crops, samples, self.test_cfg))
        return self.add_pred_to_datasample(instances, fields, data_samples)

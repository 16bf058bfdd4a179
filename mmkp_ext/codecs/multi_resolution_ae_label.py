"""Targets of HigherHRNet / SWAHR bottom-up training with associative
embedding (AE), and the AE grouping that decodes them.

Method: HigherHRNet (Cheng et al., CVPR 2020) with SWAHR (Luo et al., CVPR
2021); facts in ``shared/specs/swahr.md``. mmpose 1.x's own
``AssociativeEmbedding`` codec encodes a single resolution and declares no
mapping table for ``keypoint_indices``, so it cannot drive training; this
codec subclasses it, keeps its grouping (``batch_decode``) unchanged and
replaces the encoder.

Coordinates
-----------
Keypoints arrive in model-input pixels (what mmpose's bottom-up pipeline
delivers after ``BottomupRandomAffine`` / ``BottomupResize``). At resolution
``r`` with heatmap size ``(W_r, H_r)`` and input size ``(w, h)`` a keypoint
sits at ``x_r = x * W_r / w``, ``y_r = y * H_r / h``; its Gaussian is centred
on the integer cell ``(floor(x_r), floor(y_r))``: cell ``j`` covers ``[j, j +
1)`` heatmap pixels, as in the official HigherHRNet target generator. A
keypoint whose cell falls outside the map is dropped at that resolution (no
peak-less tails).

Why ``floor`` (and not mmpose 1.x's rounding): heads resize their outputs
with bilinear ``align_corners=False``, which puts cell ``j`` of a stride-``s``
map at input coordinate ``s j + (s - 1) / 2``, i.e. half an input pixel
before the centre of the interval ``[s j, s j + s)`` it covers, at EVERY
stride; so the 1/4 and 1/2 peaks coincide when averaged and one
``decode_center_shift = 0.5`` (in pixels of the decoded map) removes the bias
at any decode size. With rounding the 1/4 and 1/2 peaks of the same keypoint
sit 1 input pixel apart on average and the decoded position is biased by
``(s - 1) / 2``.

Data contract (what ``encode`` returns and where ``PackPoseInputs`` puts it)
-------------------------------------------------------------------------
With ``R = len(heatmap_sizes)`` resolutions (normally 2: 1/4 and 1/2 of the
input), ``N`` instances, ``K`` keypoints:

- ``heatmaps``: list of R float32 ``(K, H_r, W_r)``, values in [0, 1], the
  max over people of ``exp(-d^2 / (2 sigma_r^2))``. Packed into
  ``data_sample.gt_fields`` (a ``MultilevelPixelData``) as
  ``gt_fields[r].heatmaps``, Tensor ``(K, H_r, W_r)``.
- ``heatmap_mask``: list of R float32 ``(H_r, W_r)``, 1 = use the pixel,
  0 = ignore (crowd, unlabelled people). Packed as
  ``gt_fields[r].heatmap_mask``, float32 Tensor ``(H_r, W_r)``.
- ``keypoint_indices``: int64 ``(N, K, 2)``, ``[y_0 * W_0 + x_0, valid]`` at
  the FIRST resolution (the one with the tags); valid = labelled and inside
  that map (index 0 when invalid). Packed as
  ``data_sample.gt_instance_labels.keypoint_indices``, Tensor ``(N, K, 2)``.
- ``keypoint_weights``: float32 ``(N, K)``, the valid flag of
  ``keypoint_indices``. Packed as ``gt_instance_labels.keypoint_weights``.

In a head: ``d.gt_fields.heatmaps`` / ``d.gt_fields.heatmap_mask`` are the
per-resolution lists of tensors (same as ``d.gt_fields[r].<key>``);
``d.gt_instance_labels.keypoint_indices`` may have ``N = 0`` rows.

``heatmap_mask`` comes from a mask transform placed BEFORE ``GenerateTarget``
(so it is one boolean ``(h, w)`` map at the input size);
the codec reads it through ``auxiliary_encode_keys`` and downsizes it to each
resolution by area averaging (a cell is used when more than half of it is
valid). Without a mask every pixel is used. Crowd regions and people without
keypoints reach that mask through
:class:`mmkp_ext.datasets.transforms.BottomupIgnoreMask`, which replaces
``BottomupGetHeatmapMask`` at the same place (mmpose's drops crowd RLEs and
annotations without a segmentation, and its xtcocotools decoding fails under
numpy 2).

Decoding
--------
``batch_decode(heatmaps, tags)`` is mmpose's AE grouping (max-pool NMS, top-k
per keypoint, Munkres matching on ``round(|dtag|) * 100 - value``, +-0.25
sub-pixel shift, refinement of missing keypoints) on maps of size
``decode_heatmap_size`` (default: the input size, i.e. the head resizes the
averaged heatmaps and the tags to the input image first, as the official
HigherHRNet test does); keypoints come back in input pixels, scaled by
``input_size / decode_heatmap_size``. Returns ``(keypoints (N, K, 2),
keypoint_scores (N, K), instance_scores (N,))`` per image.
"""
from numbers import Real
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

from mmpose.codecs import AssociativeEmbedding
from mmpose.datasets.transforms import PackPoseInputs
from mmpose.registry import KEYPOINT_CODECS

__all__ = ['MultiResolutionAELabel', 'render_gaussian_heatmaps']


def render_gaussian_heatmaps(centers: np.ndarray, valid: np.ndarray,
                             heatmap_size: Tuple[int, int],
                             sigma: float) -> np.ndarray:
    """Unnormalised Gaussians on integer centres, max over instances.

    Args:
        centers (np.ndarray): int64 ``(N, K, 2)`` integer cells ``(x, y)``.
        valid (np.ndarray): bool ``(N, K)``; invalid keypoints draw nothing.
        heatmap_size (tuple): ``(W, H)``.
        sigma (float): Gaussian sigma in heatmap pixels; the Gaussian is cut
            at ``3 * sigma`` from its centre (each axis).

    Returns:
        np.ndarray: float32 ``(K, H, W)``, ``max_n exp(-((x - cx_n)^2 +
        (y - cy_n)^2) / (2 sigma^2))`` within the cut, 0 elsewhere.
    """
    W, H = heatmap_size
    N, K = valid.shape
    heatmaps = np.zeros((K, H, W), dtype=np.float32)
    if N == 0 or not valid.any():
        return heatmaps
    radius = 3 * sigma
    xs = np.arange(W, dtype=np.float32)
    ys = np.arange(H, dtype=np.float32)
    # Separable Gaussian per (instance, keypoint): (N, K, W) and (N, K, H);
    # invalid keypoints get an all-zero row so they vanish in the product.
    dx = xs[None, None, :] - centers[..., 0:1].astype(np.float32)
    dy = ys[None, None, :] - centers[..., 1:2].astype(np.float32)
    gx = np.exp(-dx**2 / (2 * sigma**2)) * (np.abs(dx) <= radius)
    gy = np.exp(-dy**2 / (2 * sigma**2)) * (np.abs(dy) <= radius)
    gx *= valid[..., None]
    # One (K, H, W) outer product per instance keeps memory at K*H*W
    # (a single (N, K, H, W) array is 130 MB for 30 people at 256x256).
    for n in np.flatnonzero(valid.any(axis=1)):
        np.maximum(
            heatmaps,
            gy[n, :, :, None].astype(np.float32) *
            gx[n, :, None, :].astype(np.float32),
            out=heatmaps)
    return heatmaps


def _as_size(value, name: str) -> Tuple[int, int]:
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, np.integer)) and v > 0
                       for v in value)):
        raise ValueError(f'{name} must be a (width, height) pair of positive '
                         f'ints, got {value!r}')
    return int(value[0]), int(value[1])


@KEYPOINT_CODECS.register_module()
class MultiResolutionAELabel(AssociativeEmbedding):
    """HigherHRNet targets at several resolutions + mmpose's AE grouping.

    See the module docstring for the exact data contract.

    Args:
        input_size (tuple): model input ``(w, h)`` in pixels.
        heatmap_sizes (sequence of tuple): ``(W_r, H_r)`` of each output
            resolution, first = the one carrying the AE tags (1/4 of the
            input), e.g. ``[(128, 128), (256, 256)]`` for a 512 input.
        sigma (float | sequence of float): Gaussian sigma in heatmap pixels
            per resolution (one value = the same at all; HigherHRNet: 2).
        decode_heatmap_size (tuple, optional): ``(W, H)`` of the maps handed
            to ``batch_decode``; ``None`` = ``input_size`` (heads resize their
            heatmaps and tags to the input before grouping).
        decode_keypoint_order (list of int): grouping order of the keypoints;
            empty = ``0..K-1``.
        decode_center_shift (float): added to decoded keypoints, in pixels of
            the decoded map (0.5: centre of the covered cell, see above).
        decode_nms_kernel, decode_keypoint_thr, decode_tag_thr, decode_topk,
        decode_max_instances: as in mmpose's
            ``AssociativeEmbedding`` (``decode_keypoint_thr`` is the value
            threshold of a candidate keypoint; HigherHRNet's person detection
            threshold is applied by the metric/score, not here).
    """

    auxiliary_encode_keys = {'heatmap_mask'}

    field_mapping_table = dict(heatmaps='heatmaps', heatmap_mask='heatmap_mask')
    label_mapping_table = dict(
        keypoint_indices='keypoint_indices',
        keypoint_weights='keypoint_weights')
    # A codec's table replaces PackPoseInputs' default: keep every default
    # instance key (boxes, keypoints, areas for the metric).
    instance_mapping_table = dict(PackPoseInputs.instance_mapping_table)

    def __init__(self,
                 input_size: Tuple[int, int],
                 heatmap_sizes: Sequence[Tuple[int, int]],
                 sigma: Union[float, Sequence[float]] = 2.0,
                 decode_heatmap_size: Optional[Tuple[int, int]] = None,
                 decode_keypoint_order: Sequence[int] = (),
                 decode_nms_kernel: int = 5,
                 decode_keypoint_thr: float = 0.1,
                 decode_tag_thr: float = 1.0,
                 decode_topk: int = 30,
                 decode_center_shift: float = 0.5,
                 decode_max_instances: Optional[int] = 30) -> None:
        input_size = _as_size(input_size, 'input_size')
        if (not isinstance(heatmap_sizes, (tuple, list))
                or len(heatmap_sizes) == 0):
            raise ValueError('heatmap_sizes must be a non-empty list of '
                             f'(W, H) pairs, got {heatmap_sizes!r}')
        heatmap_sizes = [
            _as_size(s, f'heatmap_sizes[{i}]')
            for i, s in enumerate(heatmap_sizes)
        ]
        if isinstance(sigma, Real):
            sigmas = [float(sigma)] * len(heatmap_sizes)
        else:
            sigmas = [float(s) for s in sigma]
        if len(sigmas) != len(heatmap_sizes) or min(sigmas) <= 0:
            raise ValueError(
                f'sigma must be one positive value or one per resolution '
                f'({len(heatmap_sizes)}), got {sigma!r}')
        decode_size = (input_size if decode_heatmap_size is None else
                       _as_size(decode_heatmap_size, 'decode_heatmap_size'))
        if decode_nms_kernel < 1 or decode_nms_kernel % 2 == 0:
            raise ValueError('decode_nms_kernel must be a positive odd int, '
                             f'got {decode_nms_kernel}')
        super().__init__(
            input_size=input_size,
            heatmap_size=decode_size,
            sigma=sigmas[0],
            use_udp=False,
            decode_keypoint_order=list(decode_keypoint_order),
            decode_nms_kernel=decode_nms_kernel,
            decode_keypoint_thr=decode_keypoint_thr,
            decode_tag_thr=decode_tag_thr,
            decode_topk=decode_topk,
            decode_center_shift=decode_center_shift,
            decode_max_instances=decode_max_instances)
        self.heatmap_sizes = heatmap_sizes
        self.sigmas = sigmas

    # ------------------------------------------------------------------
    # encoding
    # ------------------------------------------------------------------
    def _resize_mask(self, heatmap_mask, num_levels: int) -> List[np.ndarray]:
        """Input-size mask (or per-level list) -> list of float32 (H_r, W_r)
        in {0, 1}."""
        if heatmap_mask is None:
            return [
                np.ones((h, w), dtype=np.float32)
                for w, h in self.heatmap_sizes
            ]
        if isinstance(heatmap_mask, (list, tuple)):
            # already per level (BottomupGetHeatmapMask after the targets)
            if len(heatmap_mask) != num_levels:
                raise ValueError(
                    f'heatmap_mask has {len(heatmap_mask)} levels, the '
                    f'codec {num_levels}')
            masks = []
            for (w, h), m in zip(self.heatmap_sizes, heatmap_mask):
                m = np.asarray(m)
                if m.shape != (h, w):
                    raise ValueError(f'heatmap_mask level of shape {m.shape} '
                                     f'does not match heatmap {(h, w)}')
                masks.append((m > 0.5).astype(np.float32))
            return masks
        mask = np.asarray(heatmap_mask, dtype=np.float32)
        w_in, h_in = self.input_size
        if mask.shape != (h_in, w_in):
            raise ValueError(
                f'heatmap_mask of shape {mask.shape} does not match the input '
                f'size (h, w) = {(h_in, w_in)}; put BottomupGetHeatmapMask '
                'after the affine transform that sets input_size')
        # INTER_AREA = fraction of valid input pixels under each cell
        return [(cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA) >
                 0.5).astype(np.float32) for w, h in self.heatmap_sizes]

    def encode(self,
               keypoints: np.ndarray,
               keypoints_visible: Optional[np.ndarray] = None,
               heatmap_mask: Optional[np.ndarray] = None) -> Dict:
        """Encode one image's people into the targets of every resolution.

        Args:
            keypoints (np.ndarray): ``(N, K, 2)`` in input pixels.
            keypoints_visible (np.ndarray, optional): ``(N, K)``; > 0.5 means
                labelled. ``None`` = all labelled.
            heatmap_mask (np.ndarray, optional): bool/float ``(h, w)`` at the
                input size (1 = valid) or a list of per-level masks.

        Returns:
            dict with ``heatmaps``, ``heatmap_mask``, ``keypoint_indices``,
            ``keypoint_weights`` (see the module docstring).
        """
        keypoints = np.asarray(keypoints, dtype=np.float32)
        if keypoints.ndim != 3 or keypoints.shape[-1] < 2:
            raise ValueError('keypoints must be (N, K, 2), got shape '
                             f'{keypoints.shape}')
        keypoints = keypoints[..., :2]
        N, K = keypoints.shape[:2]
        if keypoints_visible is None:
            keypoints_visible = np.ones((N, K), dtype=np.float32)
        keypoints_visible = np.asarray(keypoints_visible, dtype=np.float32)
        if keypoints_visible.shape != (N, K):
            raise ValueError(
                f'keypoints_visible of shape {keypoints_visible.shape} does '
                f'not match keypoints {keypoints.shape}')
        labelled = keypoints_visible > 0.5
        if not np.isfinite(keypoints[labelled]).all():
            raise ValueError('labelled keypoints (visible > 0.5) contain NaN '
                             'or inf coordinates')
        if (self.decode_keypoint_order
                and len(self.decode_keypoint_order) != K):
            raise ValueError(
                f'decode_keypoint_order has {len(self.decode_keypoint_order)}'
                f' entries for {K} keypoints')

        w_in, h_in = self.input_size
        # unlabelled keypoints may hold anything; park them at 0
        safe = np.where(labelled[..., None], keypoints, 0.0)
        heatmaps, first_cells, first_valid = [], None, None
        for (W, H), sigma in zip(self.heatmap_sizes, self.sigmas):
            scaled = safe * np.array([W / w_in, H / h_in], dtype=np.float32)
            cells = np.floor(scaled).astype(np.int64)
            inside = ((cells[..., 0] >= 0) & (cells[..., 0] < W) &
                      (cells[..., 1] >= 0) & (cells[..., 1] < H))
            valid = labelled & inside
            heatmaps.append(render_gaussian_heatmaps(cells, valid, (W, H),
                                                     sigma))
            if first_cells is None:
                first_cells, first_valid = cells, valid

        W0 = self.heatmap_sizes[0][0]
        keypoint_indices = np.stack(
            [
                np.where(first_valid,
                         first_cells[..., 1] * W0 + first_cells[..., 0], 0),
                first_valid.astype(np.int64)
            ],
            axis=-1).astype(np.int64).reshape(N, K, 2)
        return dict(
            heatmaps=heatmaps,
            heatmap_mask=self._resize_mask(heatmap_mask, len(heatmaps)),
            keypoint_indices=keypoint_indices,
            keypoint_weights=first_valid.astype(np.float32).reshape(N, K))

    # ------------------------------------------------------------------
    # decoding
    # ------------------------------------------------------------------
    def batch_decode(self, batch_heatmaps: torch.Tensor,
                     batch_tags: torch.Tensor):
        """mmpose's AE grouping on ``(B, K, H, W)`` heatmaps and ``(B, L*K,
        H, W)`` tags of size ``decode_heatmap_size``.

        Returns:
            tuple of lists (one entry per image): keypoints ``(N, K, 2)`` in
            input pixels, keypoint scores ``(N, K)``, instance scores
            ``(N,)`` (mean keypoint value).
        """
        if batch_heatmaps.dim() != 4 or batch_tags.dim() != 4:
            raise ValueError('batch_decode expects (B, K, H, W) heatmaps and '
                             f'(B, L*K, H, W) tags, got '
                             f'{tuple(batch_heatmaps.shape)} and '
                             f'{tuple(batch_tags.shape)}')
        K = batch_heatmaps.shape[1]
        if batch_tags.shape[1] % K != 0:
            raise ValueError(f'tags have {batch_tags.shape[1]} channels, not a '
                             f'multiple of the {K} heatmaps')
        if not self.decode_keypoint_order:
            self.decode_keypoint_order = list(range(K))
        elif len(self.decode_keypoint_order) != K:
            raise ValueError(
                f'decode_keypoint_order has {len(self.decode_keypoint_order)}'
                f' entries for {K} heatmaps')
        return super().batch_decode(batch_heatmaps, batch_tags)

    def decode(self, heatmaps: np.ndarray,
               tags: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Group one image: ``heatmaps (K, H, W)``, ``tags (L*K, H, W)`` ->
        ``keypoints (N, K, 2)`` in input pixels and ``scores (N, K)``."""
        kpts, scores, _ = self.batch_decode(
            torch.as_tensor(np.asarray(heatmaps))[None],
            torch.as_tensor(np.asarray(tags))[None])
        return kpts[0], scores[0]

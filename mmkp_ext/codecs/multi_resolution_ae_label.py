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
1)`` heatmap pixels, as in the official HigherHRNet target generator (its
``int()`` equals ``floor`` for the non-negative coordinates mmpose's bottom-up
affine leaves labelled). A keypoint whose cell falls outside the map is
dropped at that resolution (no peak-less tails). The Gaussian is drawn on the
authors' window (``HeatmapGenerator``): up to ``3 sigma + 1`` pixels from the
centre per axis, i.e. 15 x 15 pixels for sigma 2 (see
:func:`render_gaussian_heatmaps`); under SWAHR every non-zero target pixel
counts as foreground for the scale map and the weights.

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
  max over people of ``exp(-d^2 / (2 sigma_r^2))`` on the authors' window.
  Packed into ``data_sample.gt_fields`` (a ``MultilevelPixelData``) as
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
``batch_decode(heatmaps, tags)`` is the official HigherHRNet parser
(``HeatmapParser.parse`` with ``adjust`` and ``refine``, ``lib/core/group.py``
of HRNet/HigherHRNet-Human-Pose-Estimation, unchanged in SWAHR) on maps of
size ``decode_heatmap_size`` (default: the input size, i.e. the head fuses
the resolutions and flip at 1/2 and resizes them to the input image first,
as the official test with ``project2image`` does): mmpose's grouping
(max-pool NMS, top-k per keypoint, Munkres matching on the cost
``round(|dtag|) * 100 - value``), then the authors' +-0.25 quarter offset
(border neighbours clamped, ties -0.25) and ``decode_center_shift`` for
detected keypoints, and the authors' refinement of missing keypoints (best
cell of ``heatmap - round(tag distance)``, same quarter offset and shift;
left unplaced with score 0 when the best value is <= 0). mmpose's own
``batch_decode`` differs in these steps (quarter offset 0 on ties and in the
outer rows / columns; filled-in keypoints without shift or quarter offset,
placed whatever their value, chosen with a ``* 100`` cost); this codec
overrides it. Keypoints come back in input pixels, scaled by ``input_size /
decode_heatmap_size``. Returns ``(keypoints (N, K, 2), keypoint_scores (N,
K), instance_scores (N,))`` per image.

Bad annotations
---------------
A labelled keypoint (visible > 0.5) with a NaN / inf coordinate is treated
as unlabelled, as in the grouped-CenterNet codec, so one bad annotation does
not stop training; a warning names the image (``img_id``, ``img_path``) and
the annotation ids and keypoints concerned.
"""
import warnings
from numbers import Real
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch

from mmpose.codecs import AssociativeEmbedding
from mmpose.codecs.utils import batch_heatmap_nms
from mmpose.datasets.transforms import PackPoseInputs
from mmpose.registry import KEYPOINT_CODECS
from mmpose.utils.tensor_utils import to_numpy

__all__ = ['MultiResolutionAELabel', 'render_gaussian_heatmaps']


def _authors_window_1d(cells: np.ndarray, length: int,
                       sigma: float) -> np.ndarray:
    """One axis of the official HigherHRNet Gaussian window.

    The authors' ``HeatmapGenerator`` (HigherHRNet
    ``lib/dataset/target_generators/target_generators.py``, unchanged in
    SWAHR) pastes a precomputed kernel ``g[i] = exp(-(i - x0)^2 / (2
    sigma^2))``, ``i = 0 .. ceil(6 sigma + 3) - 1``, ``x0 = 3 sigma + 1``,
    onto the map pixels ``[ul, br)`` with ``ul = round(c - 3 sigma - 1)``,
    ``br = round(c + 3 sigma + 2)`` (numpy rounding, half to even), so pixel
    ``p`` gets ``g[p - ul]``. With ``3 sigma`` an integer (sigma 2: 15
    pixels, offsets -7..7) this is the Gaussian centred on ``c`` cut at
    ``3 sigma + 1`` pixels from it. With a non-integer ``3 sigma`` the
    rounding moves the kernel off ``c`` by up to half a pixel (sigma 1.5:
    pixel ``c`` and its left neighbour for even ``c``, its right one for odd
    ``c``, share the peak ``exp(-1/18) = 0.946``); that is what the authors'
    code computes and it is reproduced as is.

    Args:
        cells (np.ndarray): int64 ``(...)`` integer centres on this axis.
        length (int): number of map pixels on this axis.
        sigma (float): Gaussian sigma in map pixels.

    Returns:
        np.ndarray: float64 ``(..., length)``, the kernel value of every
        map pixel, 0 outside the window.
    """
    ksize = len(np.arange(0, 6 * sigma + 3, 1, float))
    x0 = 3 * sigma + 1
    ul = np.round(cells - 3 * sigma - 1).astype(np.int64)[..., None]
    br = np.round(cells + 3 * sigma + 2).astype(np.int64)[..., None]
    i = np.arange(length, dtype=np.int64) - ul  # index into the kernel
    inside = (i >= 0) & (i < ksize) & (np.arange(length) < br)
    return np.where(inside, np.exp(-(i - x0)**2 / (2 * sigma**2)), 0.0)


def render_gaussian_heatmaps(centers: np.ndarray, valid: np.ndarray,
                             heatmap_size: Tuple[int, int],
                             sigma: float) -> np.ndarray:
    """Unnormalised Gaussians on integer centres, max over instances, on
    the official HigherHRNet window.

    Args:
        centers (np.ndarray): int64 ``(N, K, 2)`` integer cells ``(x, y)``.
        valid (np.ndarray): bool ``(N, K)``; invalid keypoints draw nothing.
        heatmap_size (tuple): ``(W, H)``.
        sigma (float): Gaussian sigma in heatmap pixels.

    Returns:
        np.ndarray: float32 ``(K, H, W)``, ``max_n gx_n(x) * gy_n(y)`` with
        the per-axis kernel of :func:`_authors_window_1d`: for an integer
        ``3 sigma`` (HigherHRNet / SWAHR: sigma 2) ``exp(-((x - cx_n)^2 +
        (y - cy_n)^2) / (2 sigma^2))`` on the square ``|x - cx_n|,
        |y - cy_n| <= 3 sigma + 1`` (a 15 x 15 window for sigma 2), 0
        elsewhere; identical to the authors' ``HeatmapGenerator`` up to
        float32 rounding of the separable product.
    """
    W, H = heatmap_size
    N, K = valid.shape
    heatmaps = np.zeros((K, H, W), dtype=np.float32)
    if N == 0 or not valid.any():
        return heatmaps
    # Separable window per (instance, keypoint): (N, K, W) and (N, K, H);
    # invalid keypoints get an all-zero row so they vanish in the product.
    gx = _authors_window_1d(centers[..., 0], W, sigma).astype(np.float32)
    gy = _authors_window_1d(centers[..., 1], H, sigma).astype(np.float32)
    gx *= valid[..., None]
    # One (K, H, W) outer product per instance keeps memory at K*H*W
    # (a single (N, K, H, W) array is 130 MB for 30 people at 256x256).
    for n in np.flatnonzero(valid.any(axis=1)):
        np.maximum(
            heatmaps, gy[n, :, :, None] * gx[n, :, None, :], out=heatmaps)
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
        decode_center_shift (float): added to decoded keypoints, detected
            and filled-in alike, in pixels of the decoded map (0.5: centre of
            the covered cell, see above; the authors' parser adds 0.5).
        decode_nms_kernel, decode_keypoint_thr, decode_tag_thr, decode_topk,
        decode_max_instances: as in mmpose's
            ``AssociativeEmbedding`` (``decode_keypoint_thr`` is the value
            threshold of a candidate keypoint; HigherHRNet's person detection
            threshold is applied by the metric/score, not here).
    """

    # img_id / img_path / id (annotation ids) only name the image and the
    # annotations in the warning about non-finite labelled keypoints.
    auxiliary_encode_keys = {'heatmap_mask', 'img_id', 'img_path', 'id'}

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

    @staticmethod
    def _warn_non_finite(bad: np.ndarray, img_id, img_path, ann_ids) -> None:
        """Warn about labelled keypoints with NaN / inf coordinates,
        naming the image and the annotations (``bad``: bool ``(N, K)``)."""
        rows, cols = np.nonzero(bad)
        ids = list(ann_ids) if isinstance(ann_ids, (list, tuple, np.ndarray)) \
            else None
        if ids is not None and len(ids) != bad.shape[0]:
            ids = None  # a transform dropped instances: name by index
        per_ann = {}
        for n, k in zip(rows.tolist(), cols.tolist()):
            key = (f'annotation id {ids[n]}' if ids is not None else
                   f'instance {n}')
            per_ann.setdefault(key, []).append(k)
        shown = '; '.join(f'{a}: keypoints {ks}'
                          for a, ks in list(per_ann.items())[:5])
        more = (f' (and {len(per_ann) - 5} more annotations)'
                if len(per_ann) > 5 else '')
        image = f'image id {img_id}' if img_id is not None else 'an image'
        if img_path is not None:
            image += f' ({img_path})'
        warnings.warn(
            f'MultiResolutionAELabel: {len(rows)} labelled keypoint(s) with '
            f'NaN/inf coordinates in {image}: {shown}{more}. They are '
            'treated as unlabelled (no heatmap peak, no tag target), as '
            'GroupedCenterNetLabel does; fix the annotation file.',
            stacklevel=2)

    def encode(self,
               keypoints: np.ndarray,
               keypoints_visible: Optional[np.ndarray] = None,
               heatmap_mask: Optional[np.ndarray] = None,
               img_id=None,
               img_path=None,
               id=None) -> Dict:  # noqa: A002 (mmpose's results key)
        """Encode one image's people into the targets of every resolution.

        A labelled keypoint with a NaN / inf coordinate is treated as
        unlabelled (one bad annotation does not stop training; the
        grouped-CenterNet codec does the same) and a warning names the
        image (``img_id``, ``img_path``) and the annotation ids (``id``) as
        mmpose's bottom-up datasets deliver them.

        Args:
            keypoints (np.ndarray): ``(N, K, 2)`` in input pixels.
            keypoints_visible (np.ndarray, optional): ``(N, K)``; > 0.5 means
                labelled. ``None`` = all labelled.
            heatmap_mask (np.ndarray, optional): bool/float ``(h, w)`` at the
                input size (1 = valid) or a list of per-level masks.
            img_id, img_path (optional): the image, only for the warning.
            id (list, optional): ``N`` annotation ids, only for the warning.

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
        bad = labelled & ~np.isfinite(keypoints).all(-1)
        if bad.any():
            self._warn_non_finite(bad, img_id, img_path, id)
            labelled &= ~bad
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
        """AE grouping with the authors' keypoint adjustment and refinement
        on ``(B, K, H, W)`` heatmaps and ``(B, L*K, H, W)`` tags of size
        ``decode_heatmap_size`` (tag channel ``l * K + k``: copy ``l`` of
        keypoint ``k``, e.g. original then mirrored with flip test).

        Steps (the official HigherHRNet ``HeatmapParser.parse`` with
        ``adjust`` and ``refine``, in ``lib/core/group.py``):

        1. max-pool NMS, top-k per keypoint and Munkres grouping: mmpose's
           ``AssociativeEmbedding`` (unchanged);
        2. detected keypoints (score > 0) at cell ``(x, y)``:
           :meth:`_adjust` (``+-0.25`` towards the larger neighbour, the
           neighbour index clamped at the map border) and
           ``+ decode_center_shift``;
        3. instance score = mean keypoint score of the grouped keypoints
           (before refinement, as the authors);
        4. missing keypoints: :meth:`_refine_missing`.

        Returns:
            tuple of lists (one entry per image): keypoints ``(N, K, 2)`` in
            input pixels (``(0, 0)`` for a keypoint neither detected nor
            filled in), keypoint scores ``(N, K)`` (0 for those), instance
            scores ``(N,)``.
        """
        if batch_heatmaps.dim() != 4 or batch_tags.dim() != 4:
            raise ValueError('batch_decode expects (B, K, H, W) heatmaps and '
                             f'(B, L*K, H, W) tags, got '
                             f'{tuple(batch_heatmaps.shape)} and '
                             f'{tuple(batch_tags.shape)}')
        B, K, H, W = batch_heatmaps.shape
        if batch_tags.shape[1] % K != 0:
            raise ValueError(f'tags have {batch_tags.shape[1]} channels, not a '
                             f'multiple of the {K} heatmaps')
        if (batch_tags.shape[0] != B
                or tuple(batch_tags.shape[2:]) != (H, W)):
            raise ValueError(
                f'tags of shape {tuple(batch_tags.shape)} do not match the '
                f'heatmaps {tuple(batch_heatmaps.shape)} (same batch and '
                'spatial size needed)')
        if not self.decode_keypoint_order:
            self.decode_keypoint_order = list(range(K))
        elif len(self.decode_keypoint_order) != K:
            raise ValueError(
                f'decode_keypoint_order has {len(self.decode_keypoint_order)}'
                f' entries for {K} heatmaps')
        # numpy has no bfloat16; the grouping runs in float32 anyway
        batch_heatmaps = batch_heatmaps.float()
        batch_tags = batch_tags.float()

        peaks = batch_heatmap_nms(batch_heatmaps, self.decode_nms_kernel)
        topk_vals, topk_tags, topk_locs = to_numpy(
            self._get_batch_topk(peaks, batch_tags, k=self.decode_topk))
        batch_groups = self._group_keypoints(topk_vals, topk_tags, topk_locs)
        heatmaps_np = to_numpy(batch_heatmaps)
        tags_np = to_numpy(batch_tags)

        all_keypoints, all_scores, all_instance_scores = [], [], []
        for groups, heatmaps, tags in zip(batch_groups, heatmaps_np,
                                          tags_np):
            keypoints = groups[..., :2].astype(np.float32)
            scores = groups[..., 2].astype(np.float32)
            instance_scores = scores.mean(axis=-1)
            if keypoints.size > 0:
                cells = keypoints.astype(np.int64)  # grouped: integer cells
                detected = scores > 0
                prev_tags = self._instance_tags(cells, detected, tags, K)
                n, k = np.nonzero(detected)
                keypoints[n, k] = (
                    cells[n, k] + self._adjust(heatmaps, k, cells[n, k, 0],
                                               cells[n, k, 1]) +
                    self.decode_center_shift)
                self._refine_missing(keypoints, scores, ~detected,
                                     prev_tags, heatmaps, tags)
            all_keypoints.append(keypoints * self.scale_factor)
            all_scores.append(scores)
            all_instance_scores.append(instance_scores)
        return all_keypoints, all_scores, all_instance_scores

    @staticmethod
    def _adjust(heatmaps: np.ndarray, k: np.ndarray, x: np.ndarray,
                y: np.ndarray) -> np.ndarray:
        """The authors' quarter offset of keypoints at integer cells.

        Args:
            heatmaps (np.ndarray): ``(K, H, W)``.
            k, x, y (np.ndarray): int ``(M,)`` keypoint channel and cell.

        Returns:
            np.ndarray: float32 ``(M, 2)``: per axis ``+0.25`` when the next
            pixel is strictly larger than the previous one, else ``-0.25``
            (ties included); a neighbour beyond the map border is replaced
            by the border pixel itself (``min(x + 1, W - 1)``, ``max(x - 1,
            0)``), as in HigherHRNet's ``adjust`` / ``refine``. (mmpose's
            ``refine_keypoints`` instead leaves ties and the outer rows /
            columns unshifted.)
        """
        _, H, W = heatmaps.shape
        right = heatmaps[k, y, np.minimum(x + 1, W - 1)]
        left = heatmaps[k, y, np.maximum(x - 1, 0)]
        down = heatmaps[k, np.minimum(y + 1, H - 1), x]
        up = heatmaps[k, np.maximum(y - 1, 0), x]
        return np.stack([np.where(right > left, 0.25, -0.25),
                         np.where(down > up, 0.25, -0.25)],
                        axis=-1).astype(np.float32)

    @staticmethod
    def _instance_tags(cells: np.ndarray, detected: np.ndarray,
                       tags: np.ndarray, K: int) -> np.ndarray:
        """Mean tag vector of each instance's detected keypoints.

        Args:
            cells (np.ndarray): int ``(N, K, 2)`` cells ``(x, y)``.
            detected (np.ndarray): bool ``(N, K)``.
            tags (np.ndarray): ``(L*K, H, W)``.

        Returns:
            np.ndarray: float32 ``(N, L)`` (every grouped instance has at
            least one detected keypoint).
        """
        L = tags.shape[0] // K
        tags = tags.reshape(L, K, *tags.shape[1:])
        ks = np.broadcast_to(np.arange(K), detected.shape)
        vals = tags[:, ks, cells[..., 1], cells[..., 0]]  # (L, N, K)
        vals = np.where(detected[None], vals, 0).sum(-1)
        return (vals / np.maximum(detected.sum(-1), 1)).T.astype(np.float32)

    def _refine_missing(self, keypoints: np.ndarray, scores: np.ndarray,
                        missing: np.ndarray,
                        prev_tags: np.ndarray, heatmaps: np.ndarray,
                        tags: np.ndarray) -> None:
        """Fill in missing keypoints as HigherHRNet's ``refine``, in place.

        For instance ``n`` (mean detected tag ``t_n``) and missing keypoint
        ``k``: the best cell ``(x, y) = argmax heatmap_k - round(||tag_k -
        t_n||)`` (first in row-major order on ties); if its heatmap value
        ``v > 0`` the keypoint becomes ``(x, y) + quarter offset`` (as
        :meth:`_adjust`) ``+ decode_center_shift`` with score ``v``;
        otherwise it stays where the grouping left it with score 0.

        Args:
            keypoints (np.ndarray): float32 ``(N, K, 2)``, updated.
            scores (np.ndarray): float32 ``(N, K)``, updated.
            missing (np.ndarray): bool ``(N, K)``.
            prev_tags (np.ndarray): ``(N, L)`` from :meth:`_instance_tags`.
            heatmaps (np.ndarray): ``(K, H, W)``.
            tags (np.ndarray): ``(L*K, H, W)``.
        """
        n_idx, k_idx = np.nonzero(missing)
        if n_idx.size == 0:
            return
        K, H, W = heatmaps.shape
        L = tags.shape[0] // K
        # Each missing pair needs an (H*W,) cost map, so pairs go in chunks
        # of bounded memory (~4 MB of float32 per temporary, cache-sized);
        # the tag distance sums the L copies in order (L <= 2 in practice);
        # rint = numpy's round half to even.
        tag_lk = tags.reshape(L, K, H * W)
        flat_heat = heatmaps.reshape(K, H * W)
        chunk = max(1, (1 << 20) // (H * W))
        best = np.empty(n_idx.size, dtype=np.int64)
        for s in range(0, n_idx.size, chunk):
            n, k = n_idx[s:s + chunk], k_idx[s:s + chunk]
            sq = np.zeros((len(n), H * W), dtype=tag_lk.dtype)
            for l in range(L):
                d = np.subtract(tag_lk[l, k], prev_tags[n, l][:, None])
                d *= d
                sq += d
            np.sqrt(sq, out=sq)
            np.rint(sq, out=sq)
            cost = flat_heat[k]
            cost -= sq
            best[s:s + chunk] = np.argmax(cost, axis=1)
        y, x = best // W, best % W
        val = heatmaps[k_idx, y, x]
        fill = val > 0
        n, k, x, y = n_idx[fill], k_idx[fill], x[fill], y[fill]
        keypoints[n, k] = (
            np.stack([x, y], -1) + self._adjust(heatmaps, k, x, y) +
            self.decode_center_shift)
        scores[n, k] = val[fill]

    def decode(self, heatmaps: np.ndarray,
               tags: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Group one image: ``heatmaps (K, H, W)``, ``tags (L*K, H, W)`` ->
        ``keypoints (N, K, 2)`` in input pixels and ``scores (N, K)``."""
        kpts, scores, _ = self.batch_decode(
            torch.as_tensor(np.asarray(heatmaps))[None],
            torch.as_tensor(np.asarray(tags))[None])
        return kpts[0], scores[0]

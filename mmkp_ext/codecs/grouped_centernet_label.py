"""Targets and decoding of the grouped multi-class CenterNet pose model.

Method: "Efficient grouping for keypoint detection" (arXiv 2010.12390), built
on CenterNet's multi-pose model; formulas in
``shared/specs/centernet_grouping.md``. Coordinates: the codec works in
model-input pixels (what mmpose's bottom-up pipeline delivers) and in output
pixels ``x_out = x_in * W / w`` (``(w, h)`` input size, ``(W, H)`` output
size, stride 4 normally); integer cell ``(i, j)`` covers
``[j, j + 1) x [i, i + 1)`` in output pixels, as in CenterNet.

Head outputs (:data:`OUTPUT_KEYS`, each ``(B, ch, H, W)``):

====================  =========  =========================================
key                   channels   meaning
====================  =========  =========================================
``center_heatmap``    ``C``      object centres per class (logits)
``center_offset``     2          sub-pixel centre offset ``ct - floor(ct)``
``box_size``          2          box ``(w, h)`` in output pixels
``keypoint_reg``      ``2*G_r``  ``kp - floor(ct)`` of group ``g`` in
                                 channels ``(2g, 2g+1)``, read at the centre
``keypoint_heatmap``  ``G_h``    keypoints of group ``g`` (logits)
``keypoint_offset``   2          ``kp - floor(kp)``, read at a keypoint cell
====================  =========  =========================================
"""
import math
import warnings
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from mmpose.codecs.base import BaseKeypointCodec
from mmpose.registry import KEYPOINT_CODECS

from mmkp_ext.grouping.grouping_file import (inconsistent_pairs,
                                             undecodable_pairs)
from mmkp_ext.grouping.layout import (class_channel_matrix,
                                      keypoint_category_matrix,
                                      output_channels, resolve_category_ranges,
                                      resolve_grouping)
from .utils.centernet_decode import (Heatmap, finite_outputs, local_max,
                                     nearest_peaks, rescore_cells,
                                     values_at_cells)
from ..utils.validation import check_int, check_real, check_size
from .utils.centernet_targets import draw_gaussians, gaussian_radius

__all__ = ['GroupedCenterNetLabel', 'OUTPUT_KEYS', 'DECODE_MODES']

#: Names (and order) of the six head outputs.
OUTPUT_KEYS = ('center_heatmap', 'center_offset', 'box_size', 'keypoint_reg',
               'keypoint_heatmap', 'keypoint_offset')
#: Keypoint refinement modes of :meth:`GroupedCenterNetLabel.batch_decode`.
DECODE_MODES = ('rescore', 'nearest')

#: Heatmap targets become logits clamped like the focal loss's probabilities.
_P_EPS = 1e-4


@KEYPOINT_CODECS.register_module()
class GroupedCenterNetLabel(BaseKeypointCodec):
    """CenterNet multi-pose targets with keypoint grouping and multiple
    classes; batched torch decoding with Gaussian rescoring.

    Encoding (per image, :meth:`encode`): every object ``n`` of class ``c =
    category_id - 1`` with box ``b`` (clipped to the output map) gets

    - a Gaussian at ``floor(ct)`` on ``center_heatmap[c]`` (``ct`` = box
      centre, radius ``r = max(0, int(gaussian_radius(ceil(h), ceil(w),
      min_overlap)))``, ``sigma = (2r+1)/6``, max-merged);
    - ``center_offset = ct - floor(ct)``, ``box_size = (w, h)`` (output px);
    - for each *labelled* keypoint ``k`` of its class (visible > 0, finite,
      inside ``[0, W) x [0, H)`` after scaling): ``kp - floor(ct)`` in slots
      ``(2 reg_group[k], 2 reg_group[k] + 1)`` of ``keypoint_reg`` with mask
      1, a Gaussian of the object's radius at ``floor(kp)`` on
      ``keypoint_heatmap[hm_group[k]]``, and ``kp - floor(kp)`` as its
      keypoint offset target at cell ``floor(kp)``.

    Keypoints outside the object's class range are ignored (never targets,
    decoded as 0 with score 0). Defined handling of bad input:

    - box of zero area after clipping (or a non-finite coordinate): the
      object is skipped entirely, like CenterNet (no centre, size, offset,
      regression or keypoint targets; ``center_mask = 0``; its class does
      not count as present);
    - keypoints outside the output map, or with a NaN/inf coordinate: not
      labelled (never written into any target);
    - ``category_id`` outside ``1..C`` (or non-integer): ``ValueError``
      naming the id; no objects (N = 0): empty, correctly shaped targets.

    Grouping: ``reg_group`` / ``hm_group`` lists or a ``grouping_file``
    (identity when neither). Two keypoints of one class in one regression
    group would need two targets in one cell: construction raises
    ``ValueError`` listing the pairs unless ``allow_inconsistent=True``, whose
    rule is: per class and regression group the keypoint with the lowest
    index owns the group's target; the class's other keypoints of that group
    get regression mask 0 for every object (a warning names them once). At
    decode their coarse position is the owner's (the group's regression) and
    the heatmap refinement has to find them.

    Packed targets (PackPoseInputs, see the mapping tables):

    - ``gt_fields`` (PixelData): ``center_heatmap`` ``(C, H, W)``,
      ``keypoint_heatmap`` ``(G_h, H, W)``;
    - ``gt_instance_labels`` (one row per input object, N may be 0):
      ``center_index`` ``(N,)`` int64 flat cell ``y * W + x`` of
      ``floor(ct)``, ``center_mask`` ``(N,)``, ``center_offset`` ``(N, 2)``,
      ``box_size`` ``(N, 2)``, ``class_index`` ``(N,)`` int64 ``c``,
      ``keypoint_reg`` / ``keypoint_reg_mask`` ``(N, 2*G_r)``,
      ``keypoint_index`` ``(N, K)`` int64 flat cell of ``floor(kp)``,
      ``keypoint_offset`` / ``keypoint_offset_mask`` ``(N, K, 2)``.
      Regression targets are sparse (gathered at these indices by the
      head), never dense ``(2*G_r, H, W)`` maps;
    - ``gt_instances``: mmpose's default instance fields plus
      ``category_id``.

    The per-image present-class channel mask for the masked keypoint-heatmap
    loss is returned by :meth:`encode` as ``keypoint_channel_mask``
    ``(G_h,)`` but not packed (a per-image vector fits neither PixelData nor
    InstanceData); the head recomputes exactly the same mask from
    ``class_index`` and ``center_mask`` with :meth:`channel_mask`.

    Args:
        input_size (tuple[int, int]): model input ``(w, h)``.
        heatmap_size (tuple[int, int]): output map ``(W, H)`` (input / 4).
        num_keypoints (int): ``K``, keypoints per instance (all classes).
        category_keypoints (str | list, optional): class keypoint ranges, a
            layout name or ``(first, last)`` pairs (see
            :func:`mmkp_ext.grouping.layout.
            get_category_keypoint_ranges`); class ``c`` = category id
            ``c + 1``. ``None``: one class owning all keypoints.
        reg_group, hm_group (list[int], optional): keypoint -> group maps.
        grouping_file (str | dict, optional): grouping JSON instead.
        allow_inconsistent (bool): accept same-class pairs in a regression
            group with the lowest-index rule above.
        min_overlap (float): ``gaussian_radius``'s IoU, 0.7.
        decode_mode (str): ``'rescore'`` or ``'nearest'``.
        rescore_sigma (float): std of the rescoring Gaussian, output pixels;
            tune it per model on validation data.
        rescore_window (float): the rescoring argmax is first searched in a
            window of half-size ``ceil(rescore_window * sigma)``; queries
            whose window maximum could be beaten outside are redone over the
            whole map, so the result is the exact argmax either way.
        topk (int): objects decoded per image (centre peaks, all classes);
            also the peaks per channel of ``'nearest'``.
        nearest_score_thr (float): ``'nearest'`` ignores peaks below it.
        nearest_dist_ratio (float): ``'nearest'`` keeps the coarse point if
            the nearest peak is farther than this times ``max(w, h)`` of the
            box (or outside the box).
        chunk_elements (int): memory bound for the batched refinement: about
            this many float elements per intermediate tensor.
    """

    auxiliary_encode_keys = {'bbox', 'category_id'}

    #: Highest cells per channel taken as extra rescoring candidates (a
    #: speed setting only: the rescoring argmax is exact for any value).
    rescore_candidates = 64

    field_mapping_table = dict(
        center_heatmap='center_heatmap', keypoint_heatmap='keypoint_heatmap')

    label_mapping_table = dict(
        center_index='center_index',
        center_mask='center_mask',
        center_offset='center_offset',
        box_size='box_size',
        class_index='class_index',
        keypoint_reg='keypoint_reg',
        keypoint_reg_mask='keypoint_reg_mask',
        keypoint_index='keypoint_index',
        keypoint_offset='keypoint_offset',
        keypoint_offset_mask='keypoint_offset_mask')

    # A codec's table replaces PackPoseInputs' default: mmpose's defaults
    # are repeated, plus the per-instance category id for the metric.
    instance_mapping_table = dict(
        bbox='bboxes',
        bbox_score='bbox_scores',
        keypoints='keypoints',
        keypoints_cam='keypoints_cam',
        keypoints_visible='keypoints_visible',
        bbox_scale='bbox_scales',
        head_size='head_size',
        category_id='category_id')

    def __init__(self,
                 input_size: Tuple[int, int],
                 heatmap_size: Tuple[int, int],
                 num_keypoints: int,
                 category_keypoints: Union[str, Sequence, None] = None,
                 reg_group: Optional[Sequence[int]] = None,
                 hm_group: Optional[Sequence[int]] = None,
                 grouping_file=None,
                 allow_inconsistent: bool = False,
                 min_overlap: float = 0.7,
                 decode_mode: str = 'rescore',
                 rescore_sigma: float = 2.0,
                 rescore_window: float = 4.0,
                 topk: int = 100,
                 nearest_score_thr: float = 0.1,
                 nearest_dist_ratio: float = 0.3,
                 chunk_elements: int = 1 << 22):
        super().__init__()
        self.input_size = check_size('input_size', input_size)
        self.heatmap_size = check_size('heatmap_size', heatmap_size)
        check_int('num_keypoints', num_keypoints)
        self.num_keypoints = K = int(num_keypoints)
        self.category_ranges = resolve_category_ranges(K, category_keypoints)
        self.num_classes = C = len(self.category_ranges)
        self.reg_group, self.hm_group = resolve_grouping(
            K, reg_group, hm_group, grouping_file)
        self.num_reg_groups = max(self.reg_group) + 1
        self.num_hm_groups = max(self.hm_group) + 1
        if not 0 < min_overlap < 1:
            raise ValueError(
                f'min_overlap must lie in (0, 1), got {min_overlap!r}')
        self.min_overlap = float(min_overlap)
        if decode_mode not in DECODE_MODES:
            raise ValueError(f'decode_mode must be one of {DECODE_MODES}, '
                             f'got {decode_mode!r}')
        self.decode_mode = decode_mode
        check_real('rescore_sigma', rescore_sigma, 0, low_open=True)
        check_real('rescore_window', rescore_window, 0, low_open=True)
        check_int('topk', topk)
        check_real('nearest_dist_ratio', nearest_dist_ratio, 0, low_open=True)
        check_int('chunk_elements', chunk_elements)
        self.rescore_sigma = float(rescore_sigma)
        self.rescore_window = float(rescore_window)
        self.topk = int(topk)
        self.nearest_score_thr = float(nearest_score_thr)
        self.nearest_dist_ratio = float(nearest_dist_ratio)
        self.chunk_elements = int(chunk_elements)

        w, h = self.input_size
        W, H = self.heatmap_size
        #: input pixels per output pixel, (x, y)
        self.stride = np.array([w / W, h / H], dtype=np.float64)

        reg = np.asarray(self.reg_group)
        #: (C, K) bool: keypoint k belongs to class c
        self.class_keypoints = keypoint_category_matrix(
            self.category_ranges, K)
        #: (C, G_h) bool: heatmap channel g holds a keypoint of class c
        self.class_channels = class_channel_matrix(self.category_ranges,
                                                   self.hm_group)

        # Regression owners: per class and group, the lowest keypoint index.
        self.reg_owner = np.zeros((C, K), dtype=bool)
        for c, (first, last) in enumerate(self.category_ranges):
            _, first_pos = np.unique(reg[first:last + 1], return_index=True)
            self.reg_owner[c, first + first_pos] = True
        pairs = inconsistent_pairs(self.reg_group, self.category_ranges)
        self.inconsistent_pairs = pairs
        self.allow_inconsistent = bool(allow_inconsistent)
        if pairs:
            shown = ', '.join(f'({a}, {b})' for a, b in pairs[:30])
            more = f' and {len(pairs) - 30} more' if len(pairs) > 30 else ''
            if not allow_inconsistent:
                raise ValueError(
                    f'reg_group puts {len(pairs)} pair(s) of keypoints of one '
                    f'category in one regression group: {shown}{more}. Such '
                    'a pair would need two targets in one cell; change the '
                    'grouping or pass allow_inconsistent=True (the lower '
                    'keypoint index keeps the target, the others are masked)')
            losers = np.flatnonzero(
                self.class_keypoints.any(0)
                & ~self.reg_owner.any(0)).tolist()
            both = undecodable_pairs(self.reg_group, self.hm_group,
                                     self.category_ranges)
            msg = (f'allow_inconsistent=True: {len(pairs)} same-category '
                   f'pair(s) share a regression group ({shown}{more}); '
                   f'keypoints {losers} get no regression target (the lowest '
                   'index of their category in the group keeps it)')
            if both:
                msg += (f'; pairs {both} also share a heatmap group and '
                        'cannot be told apart at decode')
            warnings.warn(msg, stacklevel=2)

        # Decoding slots: class c decodes the keypoints class_slots[c, :]
        # (padded with K, a dummy column dropped at the end).
        sizes = self.class_keypoints.sum(1)
        self.num_slots = S = int(sizes.max())
        self.class_slots = np.full((C, S), K, dtype=np.int64)
        for c in range(C):
            ks = np.flatnonzero(self.class_keypoints[c])
            self.class_slots[c, :len(ks)] = ks
        self._torch_cache: Dict[torch.device, Dict[str, Tensor]] = {}

    # ------------------------------------------------------------------
    # encoding
    # ------------------------------------------------------------------
    @property
    def num_output_channels(self) -> int:
        """Channels of the six head outputs together:
        ``C + 2 + 2 + 2 G_r + G_h + 2``."""
        return sum(self.output_channels.values())

    @property
    def output_channels(self) -> Dict[str, int]:
        """Channels of each head output, see :func:`output_channels`."""
        return output_channels(self.num_classes, self.num_reg_groups,
                               self.num_hm_groups)

    def _class_index(self, category_id, num: int) -> np.ndarray:
        if category_id is None:
            if self.num_classes == 1:
                return np.zeros(num, dtype=np.int64)
            raise ValueError(
                f'category_id is required with {self.num_classes} classes '
                "(add it to the codec's auxiliary_encode_keys flow)")
        cat = np.asarray(category_id).reshape(-1)
        if cat.shape[0] != num:
            raise ValueError(f'category_id has {cat.shape[0]} entries for '
                             f'{num} objects')
        if num == 0:
            return np.zeros(0, dtype=np.int64)
        catf = cat.astype(np.float64)
        bad = ~np.isfinite(catf) | (catf != np.round(catf)) | (catf < 1) | (
            catf > self.num_classes)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f'unknown category_id {cat[i].item()!r} (object {i}); this '
                f'codec has {self.num_classes} classes, ids '
                f'1..{self.num_classes}')
        return catf.astype(np.int64) - 1

    def channel_mask(self, class_index: np.ndarray,
                     center_mask: np.ndarray) -> np.ndarray:
        """Present-class channel mask ``(G_h,)`` bool of one image: channel
        ``g`` counts if a keypoint mapped to it belongs to the class of an
        encoded object (``center_mask > 0``)."""
        present = np.asarray(class_index)[np.asarray(center_mask) > 0]
        return self.class_channels[present].any(0)

    def encode(self,
               keypoints: np.ndarray,
               keypoints_visible: Optional[np.ndarray] = None,
               bbox: Optional[np.ndarray] = None,
               category_id: Optional[np.ndarray] = None) -> dict:
        """Encode the objects of one image (see the class docstring).

        Args:
            keypoints (np.ndarray): ``(N, K, D)``, D >= 2, input pixels.
            keypoints_visible (np.ndarray, optional): ``(N, K)`` (or ``(N, K,
                2)``, first plane used); > 0 means labelled. ``None``: all.
            bbox (np.ndarray): ``(N, 4)`` xyxy boxes in input pixels.
            category_id (np.ndarray, optional): ``(N,)`` 1-based category
                ids; may be omitted with one class.

        Returns:
            dict: the packed targets listed in the class docstring plus
            ``keypoint_channel_mask`` ``(G_h,)`` bool (not packed).
        """
        K = self.num_keypoints
        W, H = self.heatmap_size
        C, Gr, Gh = self.num_classes, self.num_reg_groups, self.num_hm_groups
        kpts = np.asarray(keypoints, dtype=np.float64)
        if kpts.ndim != 3 or kpts.shape[1] != K or kpts.shape[2] < 2:
            raise ValueError(f'keypoints must have shape (N, {K}, 2), got '
                             f'{kpts.shape}')
        N = kpts.shape[0]
        kpts = kpts[..., :2]
        if keypoints_visible is None:
            vis = np.ones((N, K))
        else:
            vis = np.asarray(keypoints_visible, dtype=np.float64)
            if vis.ndim == 3:
                vis = vis[..., 0]
            if vis.shape != (N, K):
                raise ValueError(f'keypoints_visible must have shape ({N}, '
                                 f'{K}), got {vis.shape}')
        if bbox is None:
            raise ValueError('bbox (N, 4) xyxy is required (auxiliary encode '
                             'key)')
        boxes = np.asarray(bbox, dtype=np.float64)
        if N == 0 and boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.shape != (N, 4):
            raise ValueError(f'bbox must have shape ({N}, 4), got '
                             f'{np.shape(bbox)}')
        cls = self._class_index(category_id, N)

        # --- objects: boxes in output pixels, clipped like CenterNet
        scale = 1.0 / self.stride
        boxes = boxes * np.tile(scale, 2)
        finite = np.isfinite(boxes).all(1)
        boxes = np.where(finite[:, None], boxes, 0.0)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, W - 1)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, H - 1)
        bw = boxes[:, 2] - boxes[:, 0]
        bh = boxes[:, 3] - boxes[:, 1]
        valid = finite & (bw > 0) & (bh > 0)
        radius = np.zeros(N, dtype=np.int64)
        if valid.any():
            r = gaussian_radius(
                np.ceil(bh[valid]), np.ceil(bw[valid]), self.min_overlap)
            radius[valid] = np.maximum(0, r.astype(np.int64))
        ct = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2,
                       (boxes[:, 1] + boxes[:, 3]) / 2],
                      axis=-1)
        ct_int = np.floor(ct).astype(np.int64)

        center_heatmap = np.zeros((C, H, W), dtype=np.float32)
        draw_gaussians(center_heatmap, cls[valid], ct_int[valid, 0],
                       ct_int[valid, 1], radius[valid])
        vf = valid.astype(np.float32)
        center_index = np.where(valid, ct_int[:, 1] * W + ct_int[:, 0], 0)
        center_offset = ((ct - ct_int) * vf[:, None]).astype(np.float32)
        box_size = (np.stack([bw, bh], -1) * vf[:, None]).astype(np.float32)

        # --- keypoints in output pixels; labelled = usable as targets
        kp = kpts * scale
        with np.errstate(invalid='ignore'):
            labelled = ((vis > 0) & np.isfinite(kp).all(-1)
                        & (kp[..., 0] >= 0) & (kp[..., 0] < W)
                        & (kp[..., 1] >= 0) & (kp[..., 1] < H))
        labelled &= valid[:, None] & self.class_keypoints[cls]
        kp = np.where(labelled[..., None], kp, 0.0)
        kp_int = np.floor(kp).astype(np.int64)
        keypoint_index = np.where(labelled,
                                  kp_int[..., 1] * W + kp_int[..., 0], 0)
        lab2 = np.repeat(labelled[..., None], 2, axis=-1)
        keypoint_offset = (kp - kp_int).astype(np.float32) * lab2
        keypoint_offset_mask = lab2.astype(np.float32)

        keypoint_heatmap = np.zeros((Gh, H, W), dtype=np.float32)
        n_idx, k_idx = np.nonzero(labelled)
        draw_gaussians(keypoint_heatmap,
                       np.asarray(self.hm_group)[k_idx],
                       kp_int[n_idx, k_idx, 0], kp_int[n_idx, k_idx,
                                                       1], radius[n_idx])

        # Regression: owners only, so each (object, group) cell gets at most
        # one keypoint (no silent overwrite).
        keypoint_reg = np.zeros((N, 2 * Gr), dtype=np.float32)
        keypoint_reg_mask = np.zeros((N, 2 * Gr), dtype=np.float32)
        n_idx, k_idx = np.nonzero(labelled & self.reg_owner[cls])
        g = np.asarray(self.reg_group)[k_idx]
        disp = kp[n_idx, k_idx] - ct_int[n_idx]
        keypoint_reg[n_idx, 2 * g] = disp[:, 0]
        keypoint_reg[n_idx, 2 * g + 1] = disp[:, 1]
        keypoint_reg_mask[n_idx, 2 * g] = 1
        keypoint_reg_mask[n_idx, 2 * g + 1] = 1

        return dict(
            center_heatmap=center_heatmap,
            keypoint_heatmap=keypoint_heatmap,
            center_index=center_index.astype(np.int64),
            center_mask=vf,
            center_offset=center_offset,
            box_size=box_size,
            class_index=cls,
            keypoint_reg=keypoint_reg,
            keypoint_reg_mask=keypoint_reg_mask,
            keypoint_index=keypoint_index.astype(np.int64),
            keypoint_offset=keypoint_offset,
            keypoint_offset_mask=keypoint_offset_mask,
            keypoint_channel_mask=self.channel_mask(cls, vf))

    def targets_to_outputs(self, encoded: dict) -> Dict[str, np.ndarray]:
        """Ideal head outputs of one image, built from its encoded targets.

        Heatmaps become logits ``log(p / (1 - p))`` of the target clamped to
        ``[1e-4, 1 - 1e-4]``; the regression maps hold each object's targets
        at its centre cell and each keypoint's offset at its cell (a later
        object / keypoint overwrites an earlier one on the same cell).
        Decoding these outputs recovers the encoded objects; useful to test
        a pipeline (decode, metric) without a trained model.

        Returns:
            dict: :data:`OUTPUT_KEYS` -> float32 ``(ch, H, W)`` arrays.
        """
        W, H = self.heatmap_size
        Gr = self.num_reg_groups

        def logit(p):
            p = np.clip(p, _P_EPS, 1 - _P_EPS)
            return np.log(p / (1 - p)).astype(np.float32)

        valid = encoded['center_mask'] > 0
        idx = encoded['center_index'][valid]
        center_offset = np.zeros((2, H * W), dtype=np.float32)
        center_offset[:, idx] = encoded['center_offset'][valid].T
        box_size = np.zeros((2, H * W), dtype=np.float32)
        box_size[:, idx] = encoded['box_size'][valid].T
        keypoint_reg = np.zeros((2 * Gr, H * W), dtype=np.float32)
        keypoint_reg[:, idx] = encoded['keypoint_reg'][valid].T
        keypoint_offset = np.zeros((2, H * W), dtype=np.float32)
        lab = encoded['keypoint_offset_mask'][..., 0] > 0
        keypoint_offset[:, encoded['keypoint_index'][lab]] = \
            encoded['keypoint_offset'][lab].T
        return dict(
            center_heatmap=logit(encoded['center_heatmap']),
            center_offset=center_offset.reshape(2, H, W),
            box_size=box_size.reshape(2, H, W),
            keypoint_reg=keypoint_reg.reshape(2 * Gr, H, W),
            keypoint_heatmap=logit(encoded['keypoint_heatmap']),
            keypoint_offset=keypoint_offset.reshape(2, H, W))

    # ------------------------------------------------------------------
    # decoding
    # ------------------------------------------------------------------
    def decode(self, encoded: dict) -> Dict[str, np.ndarray]:
        """Decode the head outputs of ONE image (numpy in, numpy out).

        Args:
            encoded (dict): :data:`OUTPUT_KEYS` -> ``(ch, H, W)`` arrays, the
                heatmaps as logits (e.g. :meth:`targets_to_outputs`).

        Returns:
            dict: as :meth:`batch_decode` for one image, numpy arrays without
            the batch dimension.
        """
        missing = [k for k in OUTPUT_KEYS if k not in encoded]
        if missing:
            raise ValueError(f'decode needs the head outputs {missing}')
        batch = {
            k: torch.as_tensor(np.asarray(encoded[k], dtype=np.float32))[None]
            for k in OUTPUT_KEYS
        }
        out = self.batch_decode(**batch)
        return {k: v[0].cpu().numpy() for k, v in out.items()}

    def _tensors(self, device: torch.device) -> Dict[str, Tensor]:
        if device not in self._torch_cache:
            self._torch_cache[device] = dict(
                reg_group=torch.as_tensor(self.reg_group, device=device),
                hm_group=torch.as_tensor(self.hm_group, device=device),
                class_slots=torch.as_tensor(self.class_slots, device=device))
        return self._torch_cache[device]

    @torch.no_grad()
    def batch_decode(self,
                     center_heatmap: Tensor,
                     center_offset: Tensor,
                     box_size: Tensor,
                     keypoint_reg: Tensor,
                     keypoint_heatmap: Tensor,
                     keypoint_offset: Tensor,
                     logits: bool = True,
                     decode_mode: Optional[str] = None,
                     rescore_sigma: Optional[float] = None,
                     topk: Optional[int] = None) -> Dict[str, Tensor]:
        """Decode a batch of head outputs, batched over images, objects and
        keypoints.

        1. Centre peaks: 3x3 max-pool NMS on the centre heatmap, the ``topk``
           best over all classes; box = centre + offset -+ size / 2.
        2. Coarse keypoints of each object's class: ``floor(ct) + reg[2g :
           2g + 2]`` with ``g = reg_group[k]``, read at the centre cell.
        3. Refinement on channel ``hm_group[k]`` of the keypoint heatmap:

           - ``'rescore'``: the argmax of ``heatmap * exp(-d^2 / (2
             sigma^2))`` (``d`` = distance to the coarse point, output px),
             plus the keypoint offset there; score = heatmap value there;
           - ``'nearest'`` (CenterNet): among that channel's ``topk`` NMS
             peaks (+ offset) with score >= ``nearest_score_thr``, the
             nearest to the coarse point; the coarse point is kept if none
             exists, if it lies outside the box or farther than
             ``nearest_dist_ratio * max(w, h)``. Score = the peak's value,
             or the heatmap value at the coarse point's cell when kept (0
             outside the map).

        Only gathered values go through the sigmoid (NMS, top-k and argmax
        commute with it), so no full ``(B, G_h, H, W)`` map is activated.

        Non-finite outputs (NaN, +-inf) never reach the result: one
        ``UserWarning`` names each output holding them and their count; the
        values are decoded as "no evidence" (heatmaps: probability 0, never
        a peak) or 0 (offsets, sizes, regressions), so every coordinate is
        finite, and scores are 0 where the decode read them: an object
        (``bbox_scores`` and all its keypoint scores) whose centre heatmap,
        centre offset or size at its centre cell is non-finite; a keypoint
        whose regression (x or y, at the centre cell) is non-finite (it is
        then placed at its object's decoded centre), whose heatmap channel
        holds any non-finite value in that image (its peak search read the
        whole channel), or whose keypoint offset at the cell it was
        decoded from is non-finite. The same for ``'rescore'`` and
        ``'nearest'``.

        Args:
            center_heatmap ... keypoint_offset (Tensor): ``(B, ch, H, W)``
                head outputs (:data:`OUTPUT_KEYS`).
            logits (bool): heatmaps are logits (sigmoid applied here);
                ``False``: already probabilities (e.g. flip-averaged).
            decode_mode, rescore_sigma, topk: override the codec's settings.

        Returns:
            dict of tensors, ``N = min(topk, C*H*W)`` objects per image,
            coordinates in model-input pixels:
            ``keypoints`` ``(B, N, K, 2)``, ``keypoint_scores`` ``(B, N, K)``
            (both 0 outside the object's class), ``bboxes`` ``(B, N, 4)``
            xyxy, ``bbox_scores`` ``(B, N)``, ``category_id`` ``(B, N)``
            int64 (1-based), sorted by ``bbox_scores``.
        """
        mode = self.decode_mode if decode_mode is None else decode_mode
        if mode not in DECODE_MODES:
            raise ValueError(f'decode_mode must be one of {DECODE_MODES}, '
                             f'got {mode!r}')
        sigma = self.rescore_sigma if rescore_sigma is None else rescore_sigma
        check_real('rescore_sigma', sigma, 0, low_open=True)
        topk = self.topk if topk is None else topk
        check_int('topk', topk)
        outputs = dict(
            center_heatmap=center_heatmap,
            center_offset=center_offset,
            box_size=box_size,
            keypoint_reg=keypoint_reg,
            keypoint_heatmap=keypoint_heatmap,
            keypoint_offset=keypoint_offset)
        self._check_outputs(outputs)
        B, C, H, W = center_heatmap.shape
        HW = H * W
        K = self.num_keypoints
        device = center_heatmap.device
        t = self._tensors(device)
        out, bad = finite_outputs(outputs, logits)
        hm = Heatmap(out['keypoint_heatmap'], logits)

        # 1. objects: NMS on the raw values (sigmoid is monotonic)
        heat = out['center_heatmap']
        heat = heat.masked_fill(~local_max(heat), -math.inf)
        N = min(int(topk), C * HW)
        raw, inds = heat.view(B, -1).topk(N)
        scores = torch.sigmoid(raw) if logits else raw.clamp_min(0)
        cls = inds // HW
        pix = inds % HW
        ys = (pix // W).float()
        xs = (pix % W).float()
        at_center = torch.cat(
            [out['center_offset'], out['box_size'], out['keypoint_reg']],
            dim=1).flatten(2)  # (B, ch, HW)
        gathered = at_center.gather(
            2, pix[:, None, :].expand(-1, at_center.shape[1], -1))
        gathered = gathered.transpose(1, 2)  # (B, N, ch)
        cx = xs + gathered[..., 0]
        cy = ys + gathered[..., 1]
        bw = gathered[..., 2]
        bh = gathered[..., 3]
        boxes = torch.stack(
            [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1)
        reg = gathered[..., 4:]  # (B, N, 2 G_r)

        # 2. coarse keypoints in slots: (B, N, S)
        slots = t['class_slots'][cls]
        valid = slots < K
        safe = slots.clamp(max=K - 1)
        g_reg = t['reg_group'][safe]
        coarse = torch.stack([
            xs[..., None] + reg.gather(2, 2 * g_reg),
            ys[..., None] + reg.gather(2, 2 * g_reg + 1)
        ],
                             dim=-1)  # (B, N, S, 2)
        channel = t['hm_group'][safe]

        # 3. refinement
        koff = out['keypoint_offset'].flatten(2)  # (B, 2, HW)
        if mode == 'rescore':
            x, y = rescore_cells(hm, coarse, channel, float(sigma),
                                 self.rescore_window,
                                 self.rescore_candidates,
                                 self.chunk_elements)
            kp, kscore = values_at_cells(hm, koff, channel, x, y)
            off_cell = y * W + x
        else:
            kp, kscore, off_cell = nearest_peaks(
                hm, koff, coarse, channel, boxes, int(topk),
                self.nearest_score_thr, self.nearest_dist_ratio,
                self.chunk_elements)
        kscore = kscore * valid

        if bad:
            # scores 0 where the decode read a non-finite value
            obj_bad = torch.zeros(B, N, dtype=torch.bool, device=device)
            for key in ('center_offset', 'box_size'):
                if key in bad:
                    obj_bad |= bad[key].any(1).gather(1, pix)
            if 'center_heatmap' in bad:
                obj_bad |= bad['center_heatmap'].flatten(1).gather(1, inds)
            scores = scores.masked_fill(obj_bad, 0.0)
            kp_bad = obj_bad[..., None].expand(B, N, channel.shape[-1])
            if 'keypoint_reg' in bad:
                rb = bad['keypoint_reg'].gather(
                    2, pix[:, None, :].expand(-1, 2 * self.num_reg_groups,
                                              -1)).transpose(1, 2)
                reg_bad = rb.gather(2, 2 * g_reg) | rb.gather(2, 2 * g_reg + 1)
                kp = torch.where(reg_bad[..., None],
                                 torch.stack([cx, cy], -1)[:, :, None], kp)
                kp_bad = kp_bad | reg_bad
            if 'keypoint_heatmap' in bad:
                ch_bad = bad['keypoint_heatmap'].any(-1)  # (B, G)
                kp_bad = kp_bad | ch_bad.gather(1, channel.view(B, -1)).view(
                    channel.shape)
            if 'keypoint_offset' in bad:
                ob = bad['keypoint_offset'].any(1)  # (B, HW)
                read = off_cell >= 0
                kp_bad = kp_bad | (ob.gather(1, off_cell.clamp_min(0).view(
                    B, -1)).view(off_cell.shape) & read)
            kscore = kscore.masked_fill(kp_bad, 0.0)

        # slots -> (B, N, K) with a dummy column K for padding slots
        S = slots.shape[-1]
        keypoints = coarse.new_zeros(B, N, K + 1, 2)
        keypoints.scatter_(2, slots[..., None].expand(B, N, S, 2), kp)
        keypoint_scores = coarse.new_zeros(B, N, K + 1)
        keypoint_scores.scatter_(2, slots, kscore)
        stride = torch.as_tensor(
            self.stride, dtype=torch.float32, device=device)
        return dict(
            keypoints=keypoints[:, :, :K] * stride,
            keypoint_scores=keypoint_scores[:, :, :K],
            bboxes=boxes * stride.repeat(2),
            bbox_scores=scores,
            category_id=cls + 1)

    def _check_outputs(self, outputs: Dict[str, Tensor]) -> None:
        shape0 = tuple(outputs['center_heatmap'].shape)
        if len(shape0) != 4:
            raise ValueError('center_heatmap must be (B, C, H, W), got '
                             f'{shape0}')
        B, _, H, W = shape0
        for key, ch in self.output_channels.items():
            shape = tuple(outputs[key].shape)
            if shape != (B, ch, H, W):
                raise ValueError(f'{key} must have shape {(B, ch, H, W)} for '
                                 f'this codec, got {shape}')

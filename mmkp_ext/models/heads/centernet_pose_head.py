"""Grouped multi-class CenterNet pose head ("Efficient grouping for keypoint
detection", arXiv 2010.12390; formulas in
``shared/specs/centernet_grouping.md``).

Six branches on one stride-4 feature map, each ``Conv3x3(in -> head_conv) ->
ReLU -> Conv1x1(head_conv -> out)``, named as the codec's outputs
(:data:`mmkp_ext.codecs.grouped_centernet_label.OUTPUT_KEYS`):

====================  =========  ============  ==========================
branch (attribute)    channels   loss          default weight
====================  =========  ============  ==========================
``center_heatmap``    ``C``      focal         1
``center_offset``     2          masked L1     1
``box_size``          2          masked L1     0.1
``keypoint_reg``      ``2*G_r``  masked L1     1
``keypoint_heatmap``  ``G_h``    focal (opt.   1
                                 channel mask)
``keypoint_offset``   2          masked L1     1
====================  =========  ============  ==========================

Row ``2g`` / ``2g+1`` of ``keypoint_reg[2]`` (the last convolution) predicts
x / y of regression group ``g``; row ``g`` of ``keypoint_heatmap[2]`` is
heatmap group ``g`` (the grouping toolkit clusters these rows).

Flip test (:meth:`CenterNetPoseHead.flip_fuse`) has two modes,
``flip_mode='exact'`` (default) and ``'official'`` (xingyizhou/CenterNet,
``src/lib/detectors/multi_pose.py``: the flipped output is mirrored by
index, its x regression negated, offsets taken from the original only).
Why they differ: mmpose mirrors an image of width ``w`` as ``x' = w - 1 -
x`` (input pixels); the codec maps ``x_out = x_in / s`` (``s = w / W``, the
map stride) with cell ``j`` covering ``[j, j + 1)``. The mirror in output
pixels is therefore ``x_out' = W - 1/s - x_out``: a value ``v`` measured
from the left edge of an index-mirrored cell (a centre / keypoint offset, a
keypoint regression x) stands for ``(1 - 1/s) - v`` from the left edge of
the original cell, not ``-v`` (``'official'``), and the mirrored cells sit
``1/s`` to the left of the original ones (the heatmaps are resampled by
that much). ``'official'`` places the flipped pass's keypoint regressions
``1 - 1/s`` output pixels (3 input px at stride 4) to the left, and the
flip-test average carries half of that.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.structures import InstanceData, PixelData
from torch import Tensor, nn

from mmpose.models.heads.base_head import BaseHead
from mmpose.registry import KEYPOINT_CODECS, MODELS
from mmpose.utils.typing import (ConfigType, OptConfigType, OptSampleList,
                                 Predictions)

from mmkp_ext.codecs.grouped_centernet_label import (OUTPUT_KEYS,
                                                     GroupedCenterNetLabel)
from mmkp_ext.grouping.layout import (class_channel_matrix, output_channels,
                                      resolve_category_ranges,
                                      resolve_grouping)

__all__ = ['CenterNetPoseHead', 'group_flip_permutation', 'FLIP_MODES']

#: Outputs that are heatmaps (sigmoid; focal loss; -2.19 bias).
HEATMAP_KEYS = ('center_heatmap', 'keypoint_heatmap')
#: Flip-test fusion modes of :meth:`CenterNetPoseHead.flip_fuse`.
FLIP_MODES = ('exact', 'official')


def _check_flip_mode(flip_mode) -> str:
    if not isinstance(flip_mode, str) or flip_mode not in FLIP_MODES:
        raise ValueError(f'flip_mode must be one of {FLIP_MODES} (exact: '
                         'mirror as mmpose flips the image; official: '
                         f'CenterNet\'s index mirror), got {flip_mode!r}')
    return flip_mode


def group_flip_permutation(group: Sequence[int],
                           flip_indices: Sequence[int],
                           field: str = 'group') -> List[int]:
    """Mirror map of groups: ``perm[g] = group[flip_indices[k]]`` for the
    keypoints ``k`` of group ``g``.

    For a flip test, channel ``g`` of the original output pairs with channel
    ``perm[g]`` of the (spatially flipped back) output of the flipped image.

    Raises:
        ValueError: ``flip_indices`` has the wrong length, or the grouping
            is not flip-consistent (a group whose keypoints' mirror partners
            lie in different groups); the message names the group, its
            keypoints and their partners' groups.
    """
    group = np.asarray(group, dtype=np.int64)
    flip = np.asarray(flip_indices, dtype=np.int64)
    if flip.shape != group.shape:
        raise ValueError(f'flip_indices has {flip.size} entries for '
                         f'{group.size} keypoints')
    target = group[flip]  # mirror group of each keypoint
    perm = np.full(group.max() + 1, -1, dtype=np.int64)
    perm[group] = target  # any member's mirror group (last write)
    bad = np.flatnonzero(perm[group] != target)
    if bad.size:
        g = int(group[bad[0]])
        members = np.flatnonzero(group == g).tolist()
        raise ValueError(
            f'{field} is not flip-consistent: group {g} holds keypoints '
            f'{members} whose mirror partners {flip[members].tolist()} lie in '
            f'groups {target[members].tolist()}; flip test needs the mirror '
            'of every group to be one group (use a flip-consistent grouping '
            'or flip_test=False)')
    return perm.tolist()


@MODELS.register_module()
class CenterNetPoseHead(BaseHead):
    """Grouped CenterNet head: centres of ``C`` classes, boxes, grouped
    keypoint regression and grouped keypoint heatmaps.

    Args:
        in_channels (int): channels of the (last) input feature map.
        num_keypoints (int): ``K``, keypoints per instance (all classes).
        category_keypoints (str | list, optional): class keypoint ranges (a
            layout name or ``(first, last)`` pairs); ``C`` = number of
            ranges. ``None``: one class owning all keypoints.
        head_conv (int): hidden channels of every branch (paper: 256, 64,
            32 or 16).
        reg_group, hm_group (list[int], optional): keypoint -> group maps;
            identity when ``None``.
        grouping_file (str | dict, optional): grouping JSON instead of the
            lists (``docs/grouping_json.md``).
        masked_keypoint_loss (bool): restrict the keypoint-heatmap focal loss
            of each image to channels of the classes present in it (the
            paper's modified loss).
        loss_center_heatmap, loss_center_offset, loss_box_size,
        loss_keypoint_reg, loss_keypoint_heatmap, loss_keypoint_offset
            (dict): loss configs (focal: ``CenterNetFocalLoss``; others
            ``CenterNetRegL1Loss``), default weights 1, 1, 0.1, 1, 1, 1.
        heatmap_bias (float): initial bias of the last convolution of both
            heatmap branches (CenterNet: -2.19, i.e. sigmoid = 0.1).
        decoder (dict, optional): ``GroupedCenterNetLabel`` config (needed by
            :meth:`predict`); its keypoints, classes and grouping must equal
            the head's.
        flip_mode (str): flip-test fusion, ``'exact'`` (default: the mirror
            of mmpose's image flip ``x' = w - 1 - x`` at the decoder's
            stride) or ``'official'`` (CenterNet's: index mirror, x
            regression negated, offsets of the original pass only); see
            :meth:`flip_fuse`. ``test_cfg['flip_mode']`` overrides it.
        init_cfg (dict, optional): mmengine init config. By default the
            convolutions keep PyTorch's initialisation with zero biases, and
            the heatmap biases get ``heatmap_bias`` (CenterNet's scheme).
    """

    def __init__(self,
                 in_channels: int,
                 num_keypoints: int,
                 category_keypoints: Union[str, Sequence, None] = None,
                 head_conv: int = 256,
                 reg_group: Optional[Sequence[int]] = None,
                 hm_group: Optional[Sequence[int]] = None,
                 grouping_file=None,
                 masked_keypoint_loss: bool = False,
                 loss_center_heatmap: ConfigType = dict(
                     type='CenterNetFocalLoss', loss_weight=1.0),
                 loss_center_offset: ConfigType = dict(
                     type='CenterNetRegL1Loss', loss_weight=1.0),
                 loss_box_size: ConfigType = dict(
                     type='CenterNetRegL1Loss', loss_weight=0.1),
                 loss_keypoint_reg: ConfigType = dict(
                     type='CenterNetRegL1Loss', loss_weight=1.0),
                 loss_keypoint_heatmap: ConfigType = dict(
                     type='CenterNetFocalLoss', loss_weight=1.0),
                 loss_keypoint_offset: ConfigType = dict(
                     type='CenterNetRegL1Loss', loss_weight=1.0),
                 heatmap_bias: float = -2.19,
                 decoder: OptConfigType = None,
                 flip_mode: str = 'exact',
                 init_cfg: OptConfigType = None):
        super().__init__(init_cfg)
        self.flip_mode = _check_flip_mode(flip_mode)
        for name, value in (('in_channels', in_channels),
                            ('num_keypoints', num_keypoints), ('head_conv',
                                                               head_conv)):
            if isinstance(
                    value,
                    bool) or not isinstance(value,
                                            (int, np.integer)) or value < 1:
                raise ValueError(f'{name} must be an int >= 1, got {value!r}')
        self.in_channels = int(in_channels)
        self.num_keypoints = K = int(num_keypoints)
        self.head_conv = int(head_conv)
        self.category_ranges = resolve_category_ranges(K, category_keypoints)
        self.num_classes = len(self.category_ranges)
        self.reg_group, self.hm_group = resolve_grouping(
            K, reg_group, hm_group, grouping_file)
        self.num_reg_groups = max(self.reg_group) + 1
        self.num_hm_groups = max(self.hm_group) + 1
        self.masked_keypoint_loss = bool(masked_keypoint_loss)
        self.heatmap_bias = float(heatmap_bias)

        class_channels = class_channel_matrix(self.category_ranges,
                                              self.hm_group)
        # (C, G_h): heatmap channel g holds a keypoint of class c. Not part
        # of the state dict (it follows from the arguments).
        self.register_buffer(
            'class_channels',
            torch.as_tensor(class_channels, dtype=torch.float32),
            persistent=False)

        out_channels = output_channels(self.num_classes, self.num_reg_groups,
                                       self.num_hm_groups)
        self.out_channels = out_channels
        for key in OUTPUT_KEYS:
            setattr(
                self, key,
                nn.Sequential(
                    nn.Conv2d(self.in_channels, self.head_conv, 3, padding=1),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(self.head_conv, out_channels[key], 1)))

        self.loss_modules = nn.ModuleDict(
            dict(
                center_heatmap=MODELS.build(loss_center_heatmap),
                center_offset=MODELS.build(loss_center_offset),
                box_size=MODELS.build(loss_box_size),
                keypoint_reg=MODELS.build(loss_keypoint_reg),
                keypoint_heatmap=MODELS.build(loss_keypoint_heatmap),
                keypoint_offset=MODELS.build(loss_keypoint_offset)))

        if decoder is not None:
            self.decoder = KEYPOINT_CODECS.build(decoder)
            self._check_decoder(self.decoder)
        else:
            self.decoder = None
        self._flip_cache: Dict[tuple, Tuple[Tensor, Tensor]] = {}
        self._init_heatmap_bias()

    @property
    def num_output_channels(self) -> int:
        """All output channels: ``C + 2 + 2 + 2 G_r + G_h + 2``."""
        return sum(self.out_channels.values())

    def _check_decoder(self, decoder) -> None:
        if not isinstance(decoder, GroupedCenterNetLabel):
            raise TypeError('CenterNetPoseHead needs a GroupedCenterNetLabel '
                            f'decoder, got {type(decoder).__name__}')
        pairs = (('num_keypoints', self.num_keypoints, decoder.num_keypoints),
                 ('category keypoint ranges', self.category_ranges,
                  decoder.category_ranges), ('reg_group', self.reg_group,
                                             decoder.reg_group),
                 ('hm_group', self.hm_group, decoder.hm_group))
        for name, mine, theirs in pairs:
            if mine != theirs:
                raise ValueError(
                    f'head and decoder disagree on {name}: head '
                    f'{_short(mine)}, decoder {_short(theirs)} (give both the '
                    'same grouping / layout)')

    # ------------------------------------------------------------------
    # initialisation and forward
    # ------------------------------------------------------------------
    def _init_heatmap_bias(self) -> None:
        """CenterNet's initialisation: zero biases, heatmap output biases
        ``heatmap_bias`` (so that every heatmap starts at sigmoid ~ 0.1)."""
        for key in OUTPUT_KEYS:
            branch = getattr(self, key)
            nn.init.zeros_(branch[0].bias)
            if key in HEATMAP_KEYS:
                nn.init.constant_(branch[2].bias, self.heatmap_bias)
            else:
                nn.init.zeros_(branch[2].bias)

    def init_weights(self) -> None:
        """Apply ``init_cfg`` (if any); without a ``Pretrained`` entry the
        bias scheme of :meth:`_init_heatmap_bias` is (re)applied after it."""
        super().init_weights()
        cfgs = self.init_cfg or []
        cfgs = [cfgs] if isinstance(cfgs, dict) else cfgs
        if not any(c.get('type') == 'Pretrained' for c in cfgs):
            self._init_heatmap_bias()

    def forward(self, feats: Union[Tensor,
                                   Sequence[Tensor]]) -> Dict[str, Tensor]:
        """Raw outputs of the six branches.

        Args:
            feats: a ``(B, in_channels, H, W)`` map or a sequence of maps
                (the last one is used; the neck returns one stride-4 map).

        Returns:
            dict: :data:`OUTPUT_KEYS` -> ``(B, ch, H, W)`` tensors (heatmaps
            as logits).
        """
        x = feats if isinstance(feats, Tensor) else feats[-1]
        return {key: getattr(self, key)(x) for key in OUTPUT_KEYS}

    # ------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------
    def channel_mask(self, class_index: Tensor, center_mask: Tensor,
                     batch_index: Tensor, batch_size: int) -> Tensor:
        """Present-class keypoint-heatmap channel mask ``(B, G_h)`` bool.

        Channel ``g`` of image ``b`` counts if some encoded object of image
        ``b`` (``center_mask > 0``) has a class owning a keypoint mapped to
        ``g``; the same rule as ``GroupedCenterNetLabel.channel_mask``.
        """
        present = self.class_channels.new_zeros(batch_size, self.num_classes)
        keep = center_mask > 0
        present[batch_index[keep], class_index[keep]] = 1.0
        return (present @ self.class_channels) > 0

    def loss(self,
             feats: Union[Tensor, Sequence[Tensor]],
             batch_data_samples: OptSampleList,
             train_cfg: ConfigType = {}) -> dict:
        """Losses of a batch.

        Reads ``gt_fields.center_heatmap`` / ``keypoint_heatmap`` and the
        sparse ``gt_instance_labels`` of ``GroupedCenterNetLabel`` (objects
        of all images concatenated; predictions gathered at their
        ``center_index`` / ``keypoint_index``).

        Returns:
            dict: ``loss_center_heatmap``, ``loss_center_offset``,
            ``loss_box_size``, ``loss_keypoint_reg``,
            ``loss_keypoint_heatmap``, ``loss_keypoint_offset`` (scalars,
            weights applied by the loss modules).
        """
        # The branches run under any active autocast; the losses are
        # computed in float32 with autocast off (bf16 / fp16 focal terms
        # and sums lose too much precision).
        out = self.forward(feats)
        device = out['center_heatmap'].device
        with torch.autocast(device_type=device.type, enabled=False):
            return self._loss({k: v.float()
                               for k, v in out.items()}, batch_data_samples)

    def _loss(self, out: Dict[str, Tensor],
              batch_data_samples: OptSampleList) -> dict:
        B, _, H, W = out['center_heatmap'].shape
        device = out['center_heatmap'].device
        gt_center = torch.stack([
            d.gt_fields.center_heatmap for d in batch_data_samples
        ]).to(device)
        gt_kp = torch.stack([
            d.gt_fields.keypoint_heatmap for d in batch_data_samples
        ]).to(device)
        for key, gt in (('center_heatmap', gt_center), ('keypoint_heatmap',
                                                        gt_kp)):
            if gt.shape != out[key].shape:
                raise ValueError(
                    f'target {key} has shape {tuple(gt.shape)} but the head '
                    f'outputs {tuple(out[key].shape)}; the codec heatmap_size '
                    'must be the output size of the neck (input / 4)')

        labels = [d.gt_instance_labels for d in batch_data_samples]
        counts = [len(lab.center_index) for lab in labels]
        batch_index = torch.repeat_interleave(
            torch.arange(B, device=device),
            torch.as_tensor(counts, device=device))

        def cat(key):
            return torch.cat([lab.get(key) for lab in labels]).to(device)

        center_index = cat('center_index').long()
        center_mask = cat('center_mask').float()
        kp_index = cat('keypoint_index').long()

        def at_centers(key):  # (M, ch)
            return out[key].flatten(2)[batch_index, :, center_index]

        losses = dict()
        losses['loss_center_heatmap'] = self.loss_modules['center_heatmap'](
            out['center_heatmap'], gt_center)
        losses['loss_center_offset'] = self.loss_modules['center_offset'](
            at_centers('center_offset'), cat('center_offset'),
            center_mask[:, None])
        losses['loss_box_size'] = self.loss_modules['box_size'](
            at_centers('box_size'), cat('box_size'), center_mask[:, None])
        losses['loss_keypoint_reg'] = self.loss_modules['keypoint_reg'](
            at_centers('keypoint_reg'), cat('keypoint_reg'),
            cat('keypoint_reg_mask'))
        channel_mask = None
        if self.masked_keypoint_loss:
            channel_mask = self.channel_mask(
                cat('class_index').long(), center_mask, batch_index, B)
        losses['loss_keypoint_heatmap'] = self.loss_modules[
            'keypoint_heatmap'](out['keypoint_heatmap'], gt_kp, channel_mask)
        # (M, K, 2): offsets gathered at every keypoint cell
        kp_offset = out['keypoint_offset'].flatten(2)[batch_index[:, None], :,
                                                      kp_index]
        losses['loss_keypoint_offset'] = self.loss_modules['keypoint_offset'](
            kp_offset, cat('keypoint_offset'), cat('keypoint_offset_mask'))
        return losses

    # ------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------
    def _flip_perms(self, flip_indices: Sequence[int],
                    device) -> Tuple[Tensor, Tensor]:
        key = (tuple(int(i) for i in flip_indices), str(device))
        if key not in self._flip_cache:
            reg = group_flip_permutation(self.reg_group, flip_indices,
                                         'reg_group')
            hm = group_flip_permutation(self.hm_group, flip_indices,
                                        'hm_group')
            self._flip_cache[key] = (torch.as_tensor(reg, device=device),
                                     torch.as_tensor(hm, device=device))
        return self._flip_cache[key]

    def flip_fuse(self,
                  outputs: Dict[str, Tensor],
                  outputs_flipped: Dict[str, Tensor],
                  flip_indices: Sequence[int],
                  flip_mode: Optional[str] = None,
                  stride: Optional[float] = None) -> Dict[str, Tensor]:
        """Fuse the outputs of an image and of its horizontal mirror.

        ``F`` denotes the flipped image's output mirrored back along W by
        index (cell ``j`` <- cell ``W - 1 - j``, groups permuted with
        :func:`group_flip_permutation`), ``o`` the original's; all maps
        ``(B, ch, H, W)``, ``s`` the stride (input px per output px) and
        ``a = 1 - 1/s`` (0.75 at stride 4).

        ``'exact'`` (default) undoes mmpose's image mirror ``x' = w - 1 -
        x``, which in output pixels is ``x' = W - 1/s - x``: the interval
        ``[j, j + 1)`` of cell ``j`` of the flipped map comes back as
        ``(j - 1/s, j + 1 - 1/s]``, the index-mirrored cell moved ``1/s``
        left. Hence

        - a value ``v`` measured from the left edge of a flipped cell (keypoint
          regression x, centre offset x, keypoint offset x) stands for ``a -
          v``: ``keypoint_reg`` x ``(o + a - F) / 2``, ``center_offset`` /
          ``keypoint_offset`` ``(o + (a - F_x, F_y)) / 2``; y components and
          ``box_size`` ``(o + F) / 2``;
        - heatmaps (sigmoid, classes and groups as above): the flipped
          map's cell centres sit ``1/s`` left of the original's, so it is
          resampled linearly at the original's cell centres, ``F'[j] = a
          F[j] + (1/s) F[j + 1]`` (last column kept), and fused as ``(
          sigmoid(o) + F') / 2``. (Pixel-grid points map onto the
          index-mirrored cell; a sub-pixel point in the last ``1/s`` of a
          cell lands one cell right: the resampling keeps the original's
          cell the peak of the average then, instead of a two-cell tie.)

        ``'official'`` (CenterNet's ``multi_pose.py``): heatmaps ``(
        sigmoid(o) + sigmoid(F)) / 2``, ``box_size`` ``(o + F) / 2``,
        regression x ``(o - F) / 2``, y ``(o + F) / 2``, offsets of the
        original pass only. The flipped pass's regressed keypoints then sit
        ``a`` output px left of the mirror, so the fused coarse keypoints
        move ``a / 2`` left (0.375 output px = 1.5 input px at stride 4).

        Args:
            outputs, outputs_flipped (dict): :data:`OUTPUT_KEYS` -> ``(B,
                ch, H, W)`` raw outputs (heatmaps as logits) of the image and
                of its mirror (``inputs.flip(-1)``).
            flip_indices (list[int]): mirror partner of every keypoint.
            flip_mode (str, optional): overrides the head's ``flip_mode``.
            stride (float, optional): input px per output px along x for
                ``'exact'``; default the decoder's (``input_size[0] /
                heatmap_size[0]``).

        Returns:
            dict: fused outputs with the heatmaps as PROBABILITIES (decode
            them with ``logits=False``).
        """
        mode = self.flip_mode if flip_mode is None else _check_flip_mode(
            flip_mode)
        device = outputs['center_heatmap'].device
        reg_perm, hm_perm = self._flip_perms(flip_indices, device)
        f = {k: v.flip(-1) for k, v in outputs_flipped.items()}
        fused = dict()
        f_center = f['center_heatmap'].sigmoid()
        f_kp = f['keypoint_heatmap'].sigmoid()[:, hm_perm]
        if mode == 'exact':
            a = self._flip_shift(stride)
            f_center = _resample_left(f_center, 1.0 - a)
            f_kp = _resample_left(f_kp, 1.0 - a)
        fused['center_heatmap'] = (outputs['center_heatmap'].sigmoid() +
                                   f_center) / 2
        fused['keypoint_heatmap'] = (outputs['keypoint_heatmap'].sigmoid() +
                                     f_kp) / 2
        fused['box_size'] = (outputs['box_size'] + f['box_size']) / 2
        B, _, H, W = f['keypoint_reg'].shape
        reg = f['keypoint_reg'].view(B, self.num_reg_groups, 2, H, W)
        reg = reg[:, reg_perm]
        if mode == 'official':
            sign = reg.new_tensor([-1.0, 1.0]).view(1, 1, 2, 1, 1)
            reg = reg * sign
            fused['center_offset'] = outputs['center_offset']
            fused['keypoint_offset'] = outputs['keypoint_offset']
        else:
            a = self._flip_shift(stride)
            reg = torch.stack([a - reg[:, :, 0], reg[:, :, 1]], dim=2)
            for key in ('center_offset', 'keypoint_offset'):
                mirrored = torch.stack([a - f[key][:, 0], f[key][:, 1]], 1)
                fused[key] = (outputs[key] + mirrored) / 2
        fused['keypoint_reg'] = (outputs['keypoint_reg'] +
                                 reg.reshape(B, -1, H, W)) / 2
        return fused

    def _flip_shift(self, stride: Optional[float]) -> float:
        """``1 - 1/s``: where a value ``v`` (output px from the left edge of
        an index-mirrored cell) of the flipped pass lands, ``1 - 1/s - v``,
        under mmpose's image mirror ``x' = w - 1 - x``."""
        if stride is None:
            if self.decoder is None:
                raise ValueError("flip_mode='exact' needs the map stride: "
                                 'give the head a decoder or pass stride=')
            stride = float(self.decoder.stride[0])
        if not (isinstance(stride, (int, float)) and np.isfinite(stride)
                and stride > 0):
            raise ValueError(f'stride must be a number > 0, got {stride!r}')
        return 1.0 - 1.0 / float(stride)

    def fuse_outputs(
            self,
            feats,
            batch_data_samples: OptSampleList,
            test_cfg: ConfigType = {}) -> Tuple[Dict[str, Tensor], bool]:
        """Forward for inference, with flip fusion under
        ``test_cfg['flip_test']`` (``feats`` then is ``[orig, flipped]``,
        as mmpose's ``BottomupPoseEstimator`` passes it; ``flip_indices``
        come from the samples' metainfo; ``test_cfg['flip_mode']``
        overrides the head's ``flip_mode``, see :meth:`flip_fuse`).

        Returns:
            tuple: the outputs dict (float32, also under autocast) and
            whether its heatmaps are logits (``False`` after flip fusion).
            Cache these to decode the same forward pass with several
            decoding settings.
        """
        if test_cfg.get('multiscale_test', False):
            raise ValueError('CenterNetPoseHead does not support '
                             'multiscale_test')

        def forward32(x):
            # float32 outputs under autocast (bf16 / fp16 convolutions):
            # fusion and decoding need the precision, numpy needs the type
            return {k: v.float() for k, v in self.forward(x).items()}

        if not test_cfg.get('flip_test', False):
            return forward32(feats), True
        if not (isinstance(feats, (list, tuple)) and len(feats) == 2):
            raise ValueError('flip_test expects feats = [orig_feats, '
                             'flipped_feats]')
        flip_indices = batch_data_samples[0].metainfo.get('flip_indices')
        if flip_indices is None:
            raise ValueError('flip_test needs flip_indices in the data '
                             "samples' metainfo")
        orig, flipped = forward32(feats[0]), forward32(feats[1])
        device = orig['center_heatmap'].device
        with torch.autocast(device_type=device.type, enabled=False):
            return self.flip_fuse(
                orig,
                flipped,
                flip_indices,
                flip_mode=test_cfg.get('flip_mode')), False

    def decode_outputs(self,
                       outputs: Dict[str, Tensor],
                       logits: bool = True,
                       test_cfg: ConfigType = {}) -> List[InstanceData]:
        """Decode (fused) outputs into one ``InstanceData`` per image (see
        :meth:`predict`). ``test_cfg`` may override ``decode_mode``,
        ``rescore_sigma`` and ``topk`` of the decoder and drop objects with
        ``bbox_score < score_thr``."""
        if self.decoder is None:
            raise RuntimeError('CenterNetPoseHead.predict needs decoder= (a '
                               'GroupedCenterNetLabel config)')
        device = outputs['center_heatmap'].device
        with torch.autocast(device_type=device.type, enabled=False):
            dec = self.decoder.batch_decode(
                **{k: outputs[k].float()
                   for k in OUTPUT_KEYS},
                logits=logits,
                decode_mode=test_cfg.get('decode_mode'),
                rescore_sigma=test_cfg.get('rescore_sigma'),
                topk=test_cfg.get('topk'))
        score_thr = test_cfg.get('score_thr')
        dec = {k: v.cpu().numpy() for k, v in dec.items()}
        preds = []
        for b in range(dec['bbox_scores'].shape[0]):
            keep = slice(None)
            if score_thr is not None:
                keep = dec['bbox_scores'][b] >= score_thr
            scores = dec['keypoint_scores'][b][keep].astype(np.float32)
            preds.append(
                InstanceData(
                    keypoints=dec['keypoints'][b][keep].astype(np.float32),
                    keypoint_scores=scores,
                    keypoints_visible=scores.copy(),
                    bboxes=dec['bboxes'][b][keep].astype(np.float32),
                    bbox_scores=dec['bbox_scores'][b][keep].astype(np.float32),
                    category_id=dec['category_id'][b][keep].astype(np.int64)))
        return preds

    def predict(self,
                feats,
                batch_data_samples: OptSampleList,
                test_cfg: ConfigType = {}) -> Predictions:
        """Detect objects and their keypoints.

        Args:
            feats: features, or ``[orig, flipped]`` with
                ``test_cfg['flip_test']``.
            batch_data_samples (list[PoseDataSample]): the batch.
            test_cfg (dict): ``flip_test``, ``flip_mode``, ``decode_mode``,
                ``rescore_sigma``, ``topk``, ``score_thr``,
                ``output_heatmaps``.

        Returns:
            list[InstanceData] (one per image, ``N`` objects =
            ``min(topk, C*H*W)`` sorted by score, fewer with
            ``score_thr``), all numpy, coordinates in MODEL-INPUT pixels
            (``BottomupPoseEstimator`` maps keypoints and bboxes to the
            image):

            - ``keypoints`` ``(N, K, 2)`` float32; keypoints outside the
              object's class are 0;
            - ``keypoint_scores`` ``(N, K)`` float32 heatmap values (0
              outside the class); ``keypoints_visible`` a copy;
            - ``bboxes`` ``(N, 4)`` float32 xyxy; ``bbox_scores`` ``(N,)``
              centre-peak values;
            - ``category_id`` ``(N,)`` int64, 1-based.

            With ``test_cfg['output_heatmaps']`` also a list of
            ``PixelData`` with ``heatmaps`` (keypoint heatmaps ``(G_h, H,
            W)``) and ``center_heatmaps`` (``(C, H, W)``), probabilities.
        """
        outputs, logits = self.fuse_outputs(feats, batch_data_samples,
                                            test_cfg)
        preds = self.decode_outputs(outputs, logits, test_cfg)
        if test_cfg.get('output_heatmaps', False):
            kp = outputs['keypoint_heatmap'].detach()
            ct = outputs['center_heatmap'].detach()
            if logits:
                kp, ct = kp.sigmoid(), ct.sigmoid()
            fields = [
                PixelData(heatmaps=k, center_heatmaps=c)
                for k, c in zip(kp, ct)
            ]
            return preds, fields
        return preds


def _resample_left(maps: Tensor, delta: float) -> Tensor:
    """Values at ``x + delta`` (``0 <= delta < 1`` cells) by linear
    interpolation along W: ``(1 - delta) m[j] + delta m[j + 1]``, the last
    column kept (border replicated). ``maps`` ``(B, C, H, W)``."""
    if delta == 0:
        return maps
    right = torch.cat([maps[..., 1:], maps[..., -1:]], dim=-1)
    return (1.0 - delta) * maps + delta * right


def _short(values) -> str:
    """Readable, bounded rendering of a list for error messages."""
    values = list(values)
    if len(values) <= 12:
        return str(values)
    return f'[{", ".join(map(str, values[:12]))}, ... ({len(values)} items)]'

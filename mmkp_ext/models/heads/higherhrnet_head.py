"""HigherHRNet head with optional SWAHR scale branches (bottom-up,
associative embedding; ``shared/specs/swahr.md``).

Layout (module names follow mmpose 0.x ``AEHigherResolutionHead`` and the
authors' ``PoseHigherResolutionNet``, so published weights map by name):

- ``final_layers[0]``: conv (1x1) on the 1/4 feature, ``K`` heatmaps then
  ``K`` tags (1 tag with ``tag_per_keypoint=False``);
- ``deconv_layers[i]``: ``[feature, previous prediction]`` ->
  ``ConvTranspose(4x4, stride 2) -> BN -> ReLU`` -> ``num_basic_blocks``
  residual ``BasicBlock`` s; ``final_layers[i + 1]`` -> ``K`` heatmaps at the
  doubled resolution;
- ``scale_layers[r]`` (SWAHR, ``with_scale_branch=True``): ``Conv1x1(C -> K)
  -> BN -> ReLU -> depthwise Conv9x9``; the last conv starts at zero so that
  training starts as plain heatmap regression. Its raw output is the
  ``alpha = 1/s - 1`` map that :class:`~mmkp_ext.models.losses.SWAHRLoss`
  uses (not used at test time).

Losses: a heatmap loss per resolution (``SWAHRLoss``; with both switches
off it is HigherHRNet's plain masked MSE) and the associative-embedding
loss (``HigherHRNetAELoss``) on the tags of the first resolution.

Inference follows the authors' test (HigherHRNet / SWAHR
``lib/core/inference.py``, ``get_multi_stage_outputs`` with ``project2image``
and ``aggregate_results``): per forward pass the 1/4 heatmaps and tags are
upsampled bilinearly (``align_corners=False``) to 1/2 and the heatmaps
averaged with the 1/2 ones; the pass on the mirrored image is mirrored back
and its keypoint channels (heatmaps and per-keypoint tags) permuted at 1/2;
only then is each pass's heatmap and tag map resized bilinearly to the
decoder's ``heatmap_size`` (``MultiResolutionAELabel``: its
``decode_heatmap_size``, by default the input size; scaled with the actual
input size when the batch's ``input_size`` differs from the codec's), the
two passes' heatmaps averaged and their tags concatenated (mmpose's ``L = 2``
tag layout, original first: the authors' tag vector ``(tag, tag_flip)``).
(Two-step and one-step bilinear resizing of the 1/4 maps differ.) The fused
maps are decoded with the decoder's ``batch_decode(heatmaps, tags)`` (for
``MultiResolutionAELabel`` the authors' parser; for a plain
``AssociativeEmbedding`` mmpose's).
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData, PixelData
from torch import Tensor, nn

from mmpose.codecs import AssociativeEmbedding
from mmpose.models.backbones.resnet import BasicBlock
from mmpose.models.heads.base_head import BaseHead
from mmpose.registry import KEYPOINT_CODECS, MODELS
from mmpose.utils.typing import (ConfigType, OptConfigType, OptSampleList,
                                 Predictions)

from ..utils import refuse_mismatched_shapes, sanitize_outputs
from ...utils.validation import check_int

__all__ = ['HigherHRNetHead']

_DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


class _DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters and state-dict keys) that runs in
    channels-last memory format on the CPU, where PyTorch's depthwise
    kernel is about twice as fast in that layout (forward + backward of the
    9x9 scale-branch convolution on (2, 17, 128, 128): 227 -> 117 ms, one
    thread, ``benchmarks/bench_swahr_train_step.py --depthwise``); the
    output is returned contiguous."""

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != 'cpu':
            return super().forward(x)
        y = super().forward(x.contiguous(memory_format=torch.channels_last))
        return y.contiguous()


@MODELS.register_module()
class HigherHRNetHead(BaseHead):
    """HigherHRNet head (+ SWAHR scale branches).

    Args:
        in_channels (int): channels of the 1/4-resolution backbone feature
            (HRNet-W32: 32).
        num_keypoints (int): ``K``.
        tag_per_keypoint (bool): ``K`` tag maps (HigherHRNet) or one shared.
        num_deconv_layers (int): upsampling modules (HigherHRNet: 1, i.e.
            outputs at 1/4 and 1/2).
        deconv_channels (int): channels of each upsampling module (W32: 32).
        deconv_kernel_size (int): 4, 3 or 2.
        num_basic_blocks (int): residual blocks after each deconvolution.
        cat_output (bool): concatenate the previous prediction to the
            feature before each deconvolution.
        final_conv_kernel (int): 1 or 3.
        with_scale_branch (bool): SWAHR scale branches (one per resolution).
        heatmap_loss (dict | list[dict]): loss config per resolution (one
            dict is used for all). Default: plain HigherHRNet MSE; SWAHR:
            ``dict(type='SWAHRLoss')``.
        tag_loss (dict): ``HigherHRNetAELoss`` config.
        decoder (dict, optional): codec with ``batch_decode(heatmaps,
            tags)`` (mmpose ``AssociativeEmbedding`` or a subclass) whose
            heatmap size is the last output resolution.
        init_cfg (dict, optional): mmengine init config. Without a
            ``Pretrained`` entry, HigherHRNet's initialisation is used
            (normal std 0.001 for the convolutions, zero biases, BN 1/0)
            with zero last scale convolutions.
    """

    def __init__(self,
                 in_channels: int,
                 num_keypoints: int,
                 tag_per_keypoint: bool = True,
                 num_deconv_layers: int = 1,
                 deconv_channels: int = 32,
                 deconv_kernel_size: int = 4,
                 num_basic_blocks: int = 4,
                 cat_output: bool = True,
                 final_conv_kernel: int = 1,
                 with_scale_branch: bool = False,
                 heatmap_loss: Union[ConfigType, Sequence[ConfigType]] = dict(
                     type='SWAHRLoss',
                     scale_adaptive=False,
                     weight_adaptive=False),
                 tag_loss: ConfigType = dict(type='HigherHRNetAELoss'),
                 decoder: OptConfigType = None,
                 init_cfg: OptConfigType = None):
        super().__init__(init_cfg)
        refuse_mismatched_shapes(self)
        self.in_channels = check_int('in_channels', in_channels, 1)
        self.num_keypoints = K = check_int('num_keypoints', num_keypoints,
                                            1)
        self.num_deconv_layers = check_int('num_deconv_layers',
                                            num_deconv_layers, 0)
        self.deconv_channels = check_int('deconv_channels', deconv_channels,
                                          1)
        self.num_basic_blocks = check_int('num_basic_blocks',
                                           num_basic_blocks, 0)
        if deconv_kernel_size not in _DECONV_PADDING:
            raise ValueError('HigherHRNetHead: deconv_kernel_size must be 2, '
                             f'3 or 4, got {deconv_kernel_size!r}')
        if final_conv_kernel not in (1, 3):
            raise ValueError('HigherHRNetHead: final_conv_kernel must be 1 '
                             f'or 3, got {final_conv_kernel!r}')
        self.tag_per_keypoint = bool(tag_per_keypoint)
        self.cat_output = bool(cat_output)
        self.with_scale_branch = bool(with_scale_branch)
        self.num_resolutions = R = self.num_deconv_layers + 1
        self.tag_channels = K if self.tag_per_keypoint else 1

        # 1/4-resolution output: heatmaps + tags; later ones: heatmaps.
        out_channels = [K + self.tag_channels] + [K] * self.num_deconv_layers
        feat_channels = [self.in_channels
                         ] + [self.deconv_channels] * self.num_deconv_layers
        pad = final_conv_kernel // 2
        self.final_layers = nn.ModuleList(
            nn.Conv2d(c, o, final_conv_kernel, padding=pad)
            for c, o in zip(feat_channels, out_channels))

        padding, output_padding = _DECONV_PADDING[deconv_kernel_size]
        deconvs = []
        for i in range(self.num_deconv_layers):
            cin = feat_channels[i] + (out_channels[i]
                                      if self.cat_output else 0)
            cout = self.deconv_channels
            layers = [
                nn.Sequential(
                    nn.ConvTranspose2d(
                        cin,
                        cout,
                        deconv_kernel_size,
                        stride=2,
                        padding=padding,
                        output_padding=output_padding,
                        bias=False), nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True))
            ]
            # Sequential(BasicBlock) as in the published layouts
            # (``deconv_layers.i.j.0.conv1``).
            layers += [
                nn.Sequential(BasicBlock(cout, cout))
                for _ in range(self.num_basic_blocks)
            ]
            deconvs.append(nn.Sequential(*layers))
        self.deconv_layers = nn.ModuleList(deconvs)

        if self.with_scale_branch:
            self.scale_layers = nn.ModuleList(
                nn.Sequential(
                    nn.Conv2d(c, K, 1), nn.BatchNorm2d(K),
                    nn.ReLU(inplace=True),
                    _DepthwiseConv2d(K, K, 9, padding=4, groups=K))
                for c in feat_channels)
        else:
            self.scale_layers = None

        if isinstance(heatmap_loss, dict):
            heatmap_loss = [heatmap_loss] * R
        heatmap_loss = list(heatmap_loss)
        if len(heatmap_loss) != R:
            raise ValueError(
                f'HigherHRNetHead: {len(heatmap_loss)} heatmap_loss configs '
                f'for {R} output resolutions')
        self.heatmap_losses = nn.ModuleList(
            MODELS.build(cfg) for cfg in heatmap_loss)
        for r, loss in enumerate(self.heatmap_losses):
            adaptive = getattr(loss, 'scale_adaptive', False)
            if adaptive and not self.with_scale_branch:
                raise ValueError(
                    f'HigherHRNetHead: heatmap_loss[{r}] is scale-adaptive '
                    'but the head has no scale branch; set '
                    'with_scale_branch=True or scale_adaptive=False')
            if self.with_scale_branch and not adaptive:
                raise ValueError(
                    f'HigherHRNetHead: with_scale_branch=True but '
                    f'heatmap_loss[{r}] ({type(loss).__name__}) is not '
                    'scale-adaptive, so the branch would learn nothing; use '
                    "dict(type='SWAHRLoss', scale_adaptive=True)")
        self.tag_loss = MODELS.build(tag_loss)
        self.decoder = (
            KEYPOINT_CODECS.build(decoder) if decoder is not None else None)
        if self.decoder is not None and not isinstance(
                self.decoder, AssociativeEmbedding):
            raise TypeError('HigherHRNetHead: the decoder must be mmpose\'s '
                            'AssociativeEmbedding or a subclass such as '
                            'MultiResolutionAELabel (AE grouping with '
                            'batch_decode(heatmaps, tags)), got '
                            f'{type(self.decoder).__name__}')
        self._default_init()

    # ------------------------------------------------------------------
    # initialisation and forward
    # ------------------------------------------------------------------
    def _default_init(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.scale_layers is not None:
            for branch in self.scale_layers:
                nn.init.zeros_(branch[-1].weight)
                nn.init.zeros_(branch[-1].bias)

    def init_weights(self) -> None:
        """Apply ``init_cfg``; without a ``Pretrained`` entry re-apply the
        HigherHRNet / SWAHR initialisation."""
        super().init_weights()
        cfgs = self.init_cfg or []
        cfgs = [cfgs] if isinstance(cfgs, dict) else cfgs
        if not any(c.get('type') == 'Pretrained' for c in cfgs):
            self._default_init()

    def forward(self, feats: Union[Tensor, Sequence[Tensor]]
                ) -> Dict[str, Union[Tensor, List[Tensor], None]]:
        """Raw outputs.

        Args:
            feats: the 1/4-resolution feature ``(B, in_channels, H, W)`` or a
                sequence whose first entry is it (HRNet's output).

        Returns:
            dict: ``heatmaps``: list over resolutions of ``(B, K, H_r,
            W_r)`` (``H_r = H * 2^r``); ``tags``: ``(B, K or 1, H, W)``;
            ``scales``: list of raw scale maps like ``heatmaps``, or
            ``None`` without scale branches.
        """
        x = feats if isinstance(feats, Tensor) else feats[0]
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'HigherHRNetHead: expected a (B, {self.in_channels}, H, W) '
                f'feature, got {tuple(x.shape)}')
        K = self.num_keypoints
        y = self.final_layers[0](x)
        heatmaps = [y[:, :K]]
        tags = y[:, K:]
        scales = None
        if self.scale_layers is not None:
            scales = [self.scale_layers[0](x)]
        for i in range(self.num_deconv_layers):
            if self.cat_output:
                x = torch.cat((x, y), 1)
            x = self.deconv_layers[i](x)
            y = self.final_layers[i + 1](x)
            heatmaps.append(y)
            if scales is not None:
                scales.append(self.scale_layers[i + 1](x))
        return dict(heatmaps=heatmaps, tags=tags, scales=scales)

    # ------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------
    def _targets(self, batch_data_samples, r: int, shape,
                 device) -> Tuple[Tensor, Tensor]:
        """Stacked gt heatmaps ``(B, K, H_r, W_r)`` and masks ``(B, H_r,
        W_r)`` of resolution ``r``."""
        gts, masks = [], []
        for d in batch_data_samples:
            fields = d.gt_fields
            nlevel = getattr(fields, 'nlevel', None)
            if nlevel != self.num_resolutions:
                raise ValueError(
                    f'HigherHRNetHead: gt_fields has {nlevel} levels, the '
                    f'head {self.num_resolutions} output resolutions; use a '
                    'multi-resolution codec (MultiResolutionAELabel) with '
                    'one heatmap size per head output')
            gts.append(torch.as_tensor(fields.heatmaps[r]))
            m = torch.as_tensor(fields.heatmap_mask[r])
            masks.append(m[0] if m.dim() == 3 else m)
        gt = torch.stack(gts).to(device)
        mask = torch.stack(masks).to(device)
        if gt.shape != shape or mask.shape != (shape[0], *shape[2:]):
            raise ValueError(
                f'HigherHRNetHead: resolution {r}: targets {tuple(gt.shape)} '
                f'/ mask {tuple(mask.shape)} do not match the output '
                f'{tuple(shape)}; the codec heatmap sizes must be the head '
                'output sizes (input / 4, input / 2)')
        return gt, mask

    def loss(self,
             feats: Union[Tensor, Sequence[Tensor]],
             batch_data_samples: OptSampleList,
             train_cfg: ConfigType = {}) -> dict:
        """Losses of a batch.

        Reads ``gt_fields.heatmaps`` / ``gt_fields.heatmap_mask`` (one level
        per resolution) and ``gt_instance_labels.keypoint_indices`` (``(N,
        K, 2)`` at the first resolution).

        Returns:
            dict: ``loss_heatmap_r`` (and ``loss_scale_r`` with scale
            branches) per resolution ``r``, ``loss_pull``, ``loss_push``.
        """
        out = self.forward(feats)
        losses = dict()
        for r, pred in enumerate(out['heatmaps']):
            gt, mask = self._targets(batch_data_samples, r, pred.shape,
                                     pred.device)
            scale = out['scales'][r] if out['scales'] is not None else None
            terms = self.heatmap_losses[r](pred, gt, scale, mask)
            for key, value in terms.items():
                losses[f'{key}_{r}'] = value
        tags = out['tags']
        if not self.tag_per_keypoint:
            tags = tags.expand(-1, self.num_keypoints, -1, -1)
        indices = [
            d.gt_instance_labels.keypoint_indices for d in batch_data_samples
        ]
        losses['loss_pull'], losses['loss_push'] = self.tag_loss(
            tags, indices)
        return losses

    # ------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------
    def _fused(self, feats, align_corners: bool,
               flip_indices: Optional[Sequence[int]] = None
               ) -> Tuple[Tensor, Tensor]:
        """One forward pass fused at the last (highest) resolution, as the
        authors' ``get_multi_stage_outputs`` (HigherHRNet / SWAHR
        ``lib/core/inference.py``): every earlier output (heatmaps and tags)
        is resized bilinearly to the last resolution, the heatmaps are
        averaged over resolutions; for the pass on the mirrored image
        (``flip_indices`` given) the maps are then mirrored back and their
        keypoint channels permuted.

        Returns:
            tuple: heatmaps ``(B, K, H_last, W_last)`` and tags ``(B, K or 1,
            H_last, W_last)``.
        """
        out = self.forward(feats)
        last = tuple(out['heatmaps'][-1].shape[-2:])

        def up(t):
            if tuple(t.shape[-2:]) == last:
                return t
            return F.interpolate(
                t, size=last, mode='bilinear', align_corners=align_corners)

        heatmaps = 0
        for h in out['heatmaps']:
            heatmaps = heatmaps + up(h)
        heatmaps = heatmaps / len(out['heatmaps'])
        tags = up(out['tags'])
        if flip_indices is not None:
            perm = torch.as_tensor(list(flip_indices), device=tags.device)
            heatmaps = heatmaps.flip(-1)[:, perm]
            tags = tags.flip(-1)
            if self.tag_per_keypoint:
                tags = tags[:, perm]
        return heatmaps, tags

    def _predict_one_scale(self, feats, flip_test: bool,
                           flip_indices: Optional[Sequence[int]],
                           size, test_cfg) -> Tuple[Tensor, Tensor]:
        """Heatmaps ``(B, K, h, w)`` averaged over resolutions (and flip)
        and tags ``(B, L*K, h, w)`` (``L = 2`` with flip: original then
        mirrored) of one input scale, ``(h, w)`` = ``size`` or the last
        resolution's. The order is the authors' (``get_multi_stage_outputs``
        with ``project2image``, then ``aggregate_results``): fuse each pass
        at the last resolution (:meth:`_fused`), resize each pass's
        heatmaps and tags to ``size``, then average the two passes'
        heatmaps; tags are concatenated."""
        align_corners = test_cfg.get('align_corners', False)
        passes = [feats]
        if flip_test:
            if not (isinstance(feats, (list, tuple)) and len(feats) == 2):
                raise ValueError('HigherHRNetHead: flip test expects '
                                 '[features, features of the flipped image]')
            if flip_indices is None or len(
                    flip_indices) != self.num_keypoints:
                raise ValueError(
                    'HigherHRNetHead: flip test needs flip_indices with '
                    f'{self.num_keypoints} entries in the data sample '
                    f'metainfo, got {flip_indices!r}')
            passes = list(feats)
        heatmaps, tags = [], []
        for i, f in enumerate(passes):
            hm, tg = self._fused(f, align_corners,
                                 flip_indices if i == 1 else None)
            if size is not None and tuple(hm.shape[-2:]) != tuple(size):
                hm, tg = (F.interpolate(
                    t, size=size, mode='bilinear',
                    align_corners=align_corners) for t in (hm, tg))
            if not self.tag_per_keypoint:
                tg = tg.expand(-1, self.num_keypoints, -1, -1)
            heatmaps.append(hm)
            tags.append(tg)
        if len(passes) == 1:
            return heatmaps[0], tags[0]
        heatmaps_f, tags_f = heatmaps[1], tags[1]
        if test_cfg.get('shift_heatmap', False):
            # pixel-centre alignment of the mirrored maps at the decode size
            # (off in the authors' HigherHRNet / SWAHR test).
            heatmaps_f = torch.cat([heatmaps_f[..., :1], heatmaps_f[..., :-1]],
                                   -1)
            tags_f = torch.cat([tags_f[..., :1], tags_f[..., :-1]], -1)
        return (heatmaps[0] + heatmaps_f) / 2, torch.cat([tags[0], tags_f], 1)

    def fuse_outputs(self,
                     feats,
                     batch_data_samples: OptSampleList,
                     test_cfg: ConfigType = {},
                     size: Optional[Tuple[int, int]] = None
                     ) -> Tuple[Tensor, Tensor]:
        """Test-time fusion without decoding.

        ``feats`` as mmpose's ``BottomupPoseEstimator.predict`` passes them:
        features; ``[feats, feats_flipped]`` with ``flip_test``; a list of
        those (one per scale, the original first) with ``multiscale_test``.

        Per scale see :meth:`_predict_one_scale` (resolutions fused at the
        last resolution first, then resized to ``size``); heatmaps are
        averaged over scales, tags come from the original scale, as the
        authors' ``aggregate_results``.

        Returns:
            tuple: heatmaps ``(B, K, h, w)`` (mean over resolutions, flip and
            scales) and tags ``(B, L*K, h, w)`` of the original scale
            (``L = 2`` with flip: original then mirrored); ``(h, w)`` =
            ``size`` or, when ``None``, the last resolution of the original
            scale.
        """
        flip_test = test_cfg.get('flip_test', False)
        flip_indices = None
        if flip_test and batch_data_samples:
            flip_indices = batch_data_samples[0].metainfo.get('flip_indices')
        scales = feats if test_cfg.get('multiscale_test', False) else [feats]
        heatmaps, tags = self._predict_one_scale(scales[0], flip_test,
                                                 flip_indices, size, test_cfg)
        size = tuple(heatmaps.shape[-2:])
        for f in scales[1:]:
            hm, _ = self._predict_one_scale(f, flip_test, flip_indices, size,
                                            test_cfg)
            heatmaps = heatmaps + hm
        return heatmaps / len(scales), tags

    def _decode_size(self, batch_data_samples) -> Tuple[int, int]:
        """``(w, h)`` of the maps handed to the decoder: its
        ``heatmap_size`` scaled by ``actual input / decoder input_size``, so
        that inputs of another size than the codec's (``BottomupResize``
        with ``resize_mode='expand'``, the official short-side-512 test)
        decode to the right pixels (the decoder multiplies by its fixed
        ``input_size / heatmap_size``)."""
        w, h = (int(v) for v in self.decoder.heatmap_size)
        sizes = {
            tuple(int(v) for v in d.metainfo['input_size'])
            for d in (batch_data_samples or []) if 'input_size' in d.metainfo
        }
        if len(sizes) > 1:
            raise ValueError(
                f'HigherHRNetHead: one input size per batch needed for '
                f'decoding, got {sorted(sizes)}')
        if sizes:
            iw, ih = sizes.pop()
            dw, dh = (int(v) for v in self.decoder.input_size)
            w, h = round(iw * w / dw), round(ih * h / dh)
        return w, h

    def predict(self,
                feats,
                batch_data_samples: OptSampleList,
                test_cfg: ConfigType = {}) -> Predictions:
        """Decoded people in the input space (``keypoints`` ``(N, K, 2)``,
        ``keypoint_scores`` ``(N, K)``, ``bbox_scores`` ``(N,)`` = mean
        keypoint score); with ``test_cfg['output_heatmaps']`` also the
        fused heatmaps and tags as ``PixelData``."""
        if self.decoder is None:
            raise RuntimeError('HigherHRNetHead: set decoder (the '
                               'AssociativeEmbedding-style codec) to predict')
        w, h = self._decode_size(batch_data_samples)
        heatmaps, tags = self.fuse_outputs(feats, batch_data_samples,
                                           test_cfg, (h, w))
        # NaN/Inf outputs: warned, zeroed (float32 for the numpy decoder,
        # also under autocast), their keypoints get score 0 (instance
        # score = mean keypoint score in images where that happens).
        (heatmaps, tags), bad = sanitize_outputs(
            'HigherHRNetHead', self.num_keypoints, heatmaps=heatmaps,
            tags=tags)
        keypoints, scores, instance_scores = self.decoder.batch_decode(
            heatmaps, tags)
        if bad.any():
            bad = bad.cpu().numpy()
            scores = [np.where(b, 0, s) for s, b in zip(scores, bad)]
            instance_scores = [
                s.mean(-1) if b.any() else i
                for s, b, i in zip(scores, bad, instance_scores)
            ]
        preds = [
            InstanceData(
                keypoints=k, keypoint_scores=s, bbox_scores=i)
            for k, s, i in zip(keypoints, scores, instance_scores)
        ]
        if test_cfg.get('output_heatmaps', False):
            fields = [
                PixelData(heatmaps=h, tags=t)
                for h, t in zip(heatmaps.detach(), tags.detach())
            ]
            return preds, fields
        return preds

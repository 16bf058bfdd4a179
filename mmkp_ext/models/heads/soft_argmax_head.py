"""Soft-argmax regression head of HRNet++ (COCO 2019 challenge report).

The head predicts one heatmap of logits per keypoint and turns it into a
coordinate with a soft-argmax: a softmax over all ``H*W`` positions of
``alpha * logits`` followed by the expectation of the pixel indices. Training
supervises the coordinates only (L1 loss), as in the paper's fine-tuning stage.

Coordinate convention (the same normalised units as mmpose's
``RegressionLabel`` codec, i.e. input-image pixels divided by the input size
``(w, h)``)::

    p[i, j] = softmax_{all i, j}(alpha * logits[i, j])
    x = sum_{i, j} p[i, j] * j / W
    y = sum_{i, j} p[i, j] * i / H

with ``i`` the row and ``j`` the column of a heatmap of size ``H x W``.
Heatmap pixel ``j`` lies at input pixel ``j * w / W`` (the placement mmpose's
heatmap codecs use), so ``x * w`` is the keypoint's x in input pixels and
``RegressionLabel.decode`` maps ``x`` back by multiplying with ``w``. This is
also exactly the convention of mmpose's ``IntegralRegressionHead`` with
``beta = alpha`` and ``debias=False``.

The layers before the soft-argmax (optional deconvolutions, optional
convolutions, final convolution) use the attribute names and layouts of
mmpose's ``HeatmapHead``, so a heatmap model trained with ``HeatmapHead`` (the
paper's first stage) loads into this head unchanged for the soft-argmax
fine-tuning stage.
"""
import math
from numbers import Real
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.cnn import build_conv_layer, build_upsample_layer
from mmengine.structures import PixelData
from torch import Tensor, nn

from mmpose.evaluation.functional import keypoint_pck_accuracy
from mmpose.models.heads.base_head import BaseHead
from mmpose.models.utils.tta import flip_heatmaps
from mmpose.registry import KEYPOINT_CODECS, MODELS
from mmpose.utils.tensor_utils import to_numpy
from mmpose.utils.typing import (ConfigType, OptConfigType, OptSampleList,
                                 Predictions)

from ..utils import refuse_mismatched_shapes, sanitize_outputs
from ...utils.validation import check_int

__all__ = ['SoftArgmaxHead', 'soft_argmax_2d', 'window_mass_scores']

#: Keypoint score definitions understood by :class:`SoftArgmaxHead`.
SCORE_MODES = ('peak_mass', 'expected_mass', 'max_prob')

#: Deconvolution kernel sizes and the (padding, output_padding) that make a
#: stride-2 transposed convolution exactly double the spatial size; the same
#: choices as mmpose's ``HeatmapHead`` so its checkpoints stay compatible.
_DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


def soft_argmax_2d(logits: Tensor, alpha: float) -> Tuple[Tensor, Tensor]:
    """Soft-argmax of heatmap logits in normalised coordinates.

    Args:
        logits (Tensor): Heatmap logits, shape ``(B, K, H, W)``.
        alpha (float): Inverse temperature; the softmax is taken over
            ``alpha * logits``.

    Returns:
        tuple:
        - coords (Tensor): ``(B, K, 2)`` float32 coordinates ``(x, y)`` with
          ``x = sum p * j / W`` and ``y = sum p * i / H`` (``j``/``i`` the
          column/row index), i.e. in ``[0, (W-1)/W] x [0, (H-1)/H]``.
        - probs (Tensor): ``(B, K, H, W)`` float32 softmax probabilities
          (each map sums to 1).
    """
    B, K, H, W = logits.shape
    # float32 even under mixed precision: alpha = 60 makes half-precision
    # exponentials overflow; torch.softmax subtracts the max internally.
    scaled = logits.float().reshape(B, K, H * W) * alpha
    probs = torch.softmax(scaled, dim=-1).reshape(B, K, H, W)

    # The expectation of j only needs the column marginal (sum over rows),
    # and vice versa, so no (H, W) coordinate grids are materialised.
    cols = torch.arange(W, dtype=probs.dtype, device=probs.device) / W
    rows = torch.arange(H, dtype=probs.dtype, device=probs.device) / H
    x = (probs.sum(dim=2) * cols).sum(dim=-1)
    y = (probs.sum(dim=3) * rows).sum(dim=-1)
    return torch.stack([x, y], dim=-1), probs


def window_mass_scores(probs: Tensor, centers: Tensor,
                       window: int) -> Tensor:
    """Probability mass inside a square window around given heatmap pixels.

    Args:
        probs (Tensor): Softmax probabilities, shape ``(B, K, H, W)``.
        centers (Tensor): Integer pixel indices ``(col, row)`` of the window
            centres, shape ``(B, K, 2)``, inside the heatmap.
        window (int): Odd side length of the window in heatmap pixels. Parts
            of the window outside the heatmap contribute nothing.

    Returns:
        Tensor: ``(B, K)`` mass in ``[0, 1]``.
    """
    B, K, H, W = probs.shape
    # Gather only the window x window pixels around each centre: O(B*K*w^2)
    # instead of pooling all B*K maps (which dominated predict for K=294).
    r = window // 2
    offsets = torch.arange(-r, r + 1, device=probs.device)
    rows = centers[..., 1, None, None] + offsets[:, None]  # (B, K, w, 1)
    cols = centers[..., 0, None, None] + offsets[None, :]  # (B, K, 1, w)
    inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    flat_idx = (rows.clamp(0, H - 1) * W + cols.clamp(0, W - 1)).reshape(
        B, K, -1)
    vals = probs.reshape(B, K, H * W).gather(2, flat_idx)
    mass = (vals * inside.reshape(B, K, -1)).sum(dim=-1)
    # Float summation can exceed 1 by a few ulps.
    return mass.clamp_(0.0, 1.0)


@MODELS.register_module()
class SoftArgmaxHead(BaseHead):
    """HRNet++ soft-argmax regression head with meaningful keypoint scores.

    Takes the last feature map of the input tuple, applies optional
    deconvolution and convolution layers and a final convolution to ``K``
    heatmap logits, and regresses normalised coordinates with
    :func:`soft_argmax_2d` (see the module docstring for the convention).
    Flip test fuses the heatmap logits of the original and the flipped image
    before the soft-argmax; set ``test_cfg['shift_heatmap'] = True`` with it
    (see :meth:`predict`: without the shift the fused keypoints are 0.375
    heatmap pixel too far left at stride 4, with it 0.125 px right).

    Args:
        in_channels (int): Channels of the last input feature map.
        num_joints (int): Number of keypoints ``K``.
        alpha (float): Inverse softmax temperature (the paper uses 60).
        deconv_out_channels (Sequence[int], optional): Output channels of
            each stride-2 deconvolution (+BN+ReLU). Empty or ``None``: none.
        deconv_kernel_sizes (Sequence[int], optional): Kernel size of each
            deconvolution, each one of 2, 3, 4; same length as
            ``deconv_out_channels``.
        conv_out_channels (Sequence[int], optional): Output channels of each
            stride-1 convolution (+BN+ReLU) after the deconvolutions.
        conv_kernel_sizes (Sequence[int], optional): Odd kernel size of each
            convolution; same length as ``conv_out_channels``.
        final_layer (dict, optional): Arguments updating the final
            ``Conv2d`` to ``num_joints`` channels (default 1x1). ``None``: no
            final layer, the incoming features are the logits (their channel
            count must then be ``num_joints``).
        score_mode (str): Keypoint score definition, all in ``[0, 1]``:

            - ``'peak_mass'``: probability mass within a
              ``score_window x score_window`` window around the arg-max
              pixel; near 1 for a concentrated distribution, small for a flat
              or multi-modal one.
            - ``'expected_mass'``: the same mass around the pixel nearest to
              the predicted (expected) coordinate, so a prediction that falls
              between two modes scores low.
            - ``'max_prob'``: the largest softmax probability.
        score_window (int): Odd window side in heatmap pixels for the
            ``*_mass`` modes.
        loss (dict): Coordinate loss config, built with ``MODELS.build``.
        decoder (dict, optional): Codec config, normally
            ``dict(type='RegressionLabel', input_size=(w, h))``; needed by
            :meth:`predict`.
        init_cfg (dict | list, optional): Initialisation config; defaults to
            that of mmpose's ``HeatmapHead``.

    Example:
        >>> head = dict(
        ...     type='SoftArgmaxHead', in_channels=32, num_joints=17,
        ...     alpha=60.0, loss=dict(type='L1Loss', use_target_weight=True),
        ...     decoder=dict(type='RegressionLabel', input_size=(288, 384)))
    """

    def __init__(self,
                 in_channels: int,
                 num_joints: int,
                 alpha: float = 60.0,
                 deconv_out_channels: Optional[Sequence[int]] = (),
                 deconv_kernel_sizes: Optional[Sequence[int]] = (),
                 conv_out_channels: Optional[Sequence[int]] = (),
                 conv_kernel_sizes: Optional[Sequence[int]] = (),
                 final_layer: Optional[dict] = dict(kernel_size=1),
                 score_mode: str = 'peak_mass',
                 score_window: int = 3,
                 loss: ConfigType = dict(
                     type='L1Loss', use_target_weight=True),
                 decoder: OptConfigType = None,
                 init_cfg: OptConfigType = None):
        if init_cfg is None:
            init_cfg = self.default_init_cfg
        super().__init__(init_cfg)
        refuse_mismatched_shapes(self)

        check_int('in_channels', in_channels)
        check_int('num_joints', num_joints)
        if (isinstance(alpha, bool) or not isinstance(alpha, Real)
                or not math.isfinite(alpha) or alpha <= 0):
            raise ValueError(
                f'alpha must be a finite number > 0, got {alpha!r}')
        if score_mode not in SCORE_MODES:
            raise ValueError(f'Unknown score_mode {score_mode!r}; expected '
                             f'one of {SCORE_MODES}')
        check_int('score_window', score_window)
        if score_window % 2 == 0:
            raise ValueError(
                f'score_window must be odd (centred window), got '
                f'{score_window}')
        deconv_out_channels = _check_layer_lists(
            'deconv', deconv_out_channels, deconv_kernel_sizes)
        conv_out_channels = _check_layer_lists('conv', conv_out_channels,
                                               conv_kernel_sizes)
        for k in deconv_kernel_sizes or ():
            if k not in _DECONV_PADDING:
                raise ValueError(
                    f'deconv_kernel_sizes entries must be one of '
                    f'{sorted(_DECONV_PADDING)}, got {k!r}')
        for k in conv_kernel_sizes or ():
            if k % 2 == 0:
                raise ValueError(
                    f'conv_kernel_sizes entries must be odd (size-'
                    f'preserving padding), got {k!r}')

        self.in_channels = in_channels
        self.num_joints = num_joints
        self.alpha = float(alpha)
        self.score_mode = score_mode
        self.score_window = score_window
        self.loss_module = MODELS.build(loss)
        self.decoder = (
            KEYPOINT_CODECS.build(decoder) if decoder is not None else None)

        channels = in_channels
        if deconv_out_channels:
            self.deconv_layers = self._make_deconv_layers(
                channels, deconv_out_channels, deconv_kernel_sizes)
            channels = deconv_out_channels[-1]
        else:
            self.deconv_layers = nn.Identity()
        if conv_out_channels:
            self.conv_layers = self._make_conv_layers(channels,
                                                      conv_out_channels,
                                                      conv_kernel_sizes)
            channels = conv_out_channels[-1]
        else:
            self.conv_layers = nn.Identity()
        if final_layer is not None:
            cfg = dict(
                type='Conv2d',
                in_channels=channels,
                out_channels=num_joints,
                kernel_size=1)
            cfg.update(final_layer)
            self.final_layer = build_conv_layer(cfg)
        else:
            if channels != num_joints:
                raise ValueError(
                    'final_layer=None uses the incoming features as heatmap '
                    f'logits, so their channel count ({channels}) must equal '
                    f'num_joints ({num_joints})')
            self.final_layer = nn.Identity()

    @staticmethod
    def _make_deconv_layers(in_channels: int, out_channels: Sequence[int],
                            kernel_sizes: Sequence[int]) -> nn.Sequential:
        """Stride-2 ``ConvTranspose2d`` + BN + ReLU blocks, each doubling H
        and W (layout of mmpose's ``HeatmapHead.deconv_layers``)."""
        layers: List[nn.Module] = []
        for out_ch, k in zip(out_channels, kernel_sizes):
            padding, output_padding = _DECONV_PADDING[k]
            layers += [
                build_upsample_layer(
                    dict(
                        type='deconv',
                        in_channels=in_channels,
                        out_channels=out_ch,
                        kernel_size=k,
                        stride=2,
                        padding=padding,
                        output_padding=output_padding,
                        bias=False)),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
            ]
            in_channels = out_ch
        return nn.Sequential(*layers)

    @staticmethod
    def _make_conv_layers(in_channels: int, out_channels: Sequence[int],
                          kernel_sizes: Sequence[int]) -> nn.Sequential:
        """Size-preserving ``Conv2d`` + BN + ReLU blocks (layout of mmpose's
        ``HeatmapHead.conv_layers``)."""
        layers: List[nn.Module] = []
        for out_ch, k in zip(out_channels, kernel_sizes):
            layers += [
                build_conv_layer(
                    dict(
                        type='Conv2d',
                        in_channels=in_channels,
                        out_channels=out_ch,
                        kernel_size=k,
                        stride=1,
                        padding=(k - 1) // 2)),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
            ]
            in_channels = out_ch
        return nn.Sequential(*layers)

    #: What ONNX export takes as the network output (mmkp_ext.deployment):
    #: ``predict`` scores keypoints from the heatmaps, not from ``forward``.
    onnx_network_method = 'forward_heatmaps'

    @property
    def default_init_cfg(self) -> list:
        """Same initialisation as mmpose's ``HeatmapHead``: small normal
        weights, so the initial heatmaps are near flat even with alpha=60."""
        return [
            dict(
                type='Normal', layer=['Conv2d', 'ConvTranspose2d'], std=0.001),
            dict(type='Constant', layer='BatchNorm2d', val=1)
        ]

    def forward_heatmaps(self, feats: Sequence[Tensor]) -> Tensor:
        """Heatmap logits ``(B, K, H', W')`` from the last feature map
        ``(B, in_channels, H, W)``; ``H' = H * 2**num_deconv``, same for W."""
        x = feats[-1]
        x = self.deconv_layers(x)
        x = self.conv_layers(x)
        return self.final_layer(x)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """Normalised keypoint coordinates.

        Args:
            feats (Sequence[Tensor]): Multi-scale features; only the last,
                ``(B, in_channels, H, W)``, is used.

        Returns:
            Tensor: ``(B, K, 2)`` float32 ``(x, y)`` in units of the input
            size: heatmap pixel index divided by the heatmap width/height
            (see the module docstring).
        """
        coords, _ = soft_argmax_2d(self.forward_heatmaps(feats), self.alpha)
        return coords

    def keypoint_scores(self, probs: Tensor, coords: Tensor) -> Tensor:
        """Confidence of each keypoint, ``(B, K)`` in ``[0, 1]``, from the
        softmax probabilities ``(B, K, H, W)`` and the normalised coordinates
        ``(B, K, 2)``, as selected by ``score_mode``."""
        B, K, H, W = probs.shape
        if self.score_mode == 'max_prob':
            return probs.reshape(B, K, H * W).amax(dim=-1)
        if self.score_mode == 'peak_mass':
            flat = probs.reshape(B, K, H * W).argmax(dim=-1)
            centers = torch.stack([flat % W, flat // W], dim=-1)
        else:  # expected_mass
            size = coords.new_tensor([W, H])
            centers = torch.round(coords * size).long()
            # Soft-argmax coordinates lie inside the map; clamp guards only
            # against rounding at the upper edge.
            centers[..., 0].clamp_(0, W - 1)
            centers[..., 1].clamp_(0, H - 1)
        return window_mass_scores(probs, centers, self.score_window)

    def predict(self,
                feats: Union[Sequence[Tensor], List[Sequence[Tensor]]],
                batch_data_samples: OptSampleList,
                test_cfg: ConfigType = {}) -> Predictions:
        """Decoded keypoints in input-image pixels, with scores.

        With ``test_cfg['flip_test']``, ``feats`` is ``[orig, flipped]``: the
        flipped image's logits are flipped back horizontally, their channels
        swapped by the samples' ``flip_indices`` (optionally shifted one
        pixel right with ``test_cfg['shift_heatmap']``, default False) and
        averaged with the original logits; the soft-argmax and the scores are
        computed on this fused map.

        ``shift_heatmap``: the estimator flips the input crop as
        ``inputs.flip(-1)``, which maps input x to ``w - 1 - x``. With
        heatmap pixel ``j`` at input pixel ``j * s`` (stride ``s = w / W``),
        the flipped image's map, flipped back, shows a keypoint at
        ``j - (1 - 1 / s)``: 0.75 heatmap pixel left of the original branch
        for ``s = 4``. ``shift_heatmap=True`` (mmpose's flip-test convention)
        moves it one pixel right, i.e. ``1 / s`` too far (its first column
        is repeated). Averaging the logits of two equally shaped peaks puts
        the fused peak half-way (exactly so for Gaussian peaks, whose logits
        are quadratic), so the flip-test keypoints lie ``1 / (2 s)``
        heatmap pixel right of the truth with the shift (+0.125 px = +0.5
        input px at ``s = 4``) and ``(1 - 1 / s) / 2`` left without it
        (-0.375 px = -1.5 input px), both measured on a mirror-symmetric
        synthetic case; ``tests/test_tools/test_real_coco.py`` pins both on
        real COCO crops. Keep it on (the soft-argmax configs set it).

        Args:
            feats: Multi-scale features, or ``[orig, flipped]`` of them.
            batch_data_samples (list[PoseDataSample]): The batch; with flip
                test their metainfo must hold ``flip_indices``.
            test_cfg (dict): ``flip_test``, ``shift_heatmap`` and
                ``output_heatmaps`` are read.

        Returns:
            list[InstanceData] | tuple: Per sample ``keypoints`` ``(1, K, 2)``
            in input-image pixels (the codec's ``decode``) and
            ``keypoint_scores`` ``(1, K)`` from :meth:`keypoint_scores`. With
            ``test_cfg['output_heatmaps']`` also a list of ``PixelData`` whose
            ``heatmaps`` are the softmax probabilities ``(K, H, W)``.
        """
        if test_cfg.get('flip_test', False):
            if not (isinstance(feats, (list, tuple)) and len(feats) == 2):
                raise ValueError(
                    'flip_test expects feats = [orig_feats, flipped_feats]')
            flip_indices = batch_data_samples[0].metainfo['flip_indices']
            logits = self.forward_heatmaps(feats[0])
            logits_flip = flip_heatmaps(
                self.forward_heatmaps(feats[1]),
                flip_mode='heatmap',
                flip_indices=flip_indices,
                shift_heatmap=test_cfg.get('shift_heatmap', False))
            logits = (logits + logits_flip) * 0.5
        else:
            logits = self.forward_heatmaps(feats)

        # NaN/Inf logits: warned, zeroed, their keypoints get score 0.
        (logits, ), bad = sanitize_outputs(
            'SoftArgmaxHead', self.num_joints, heatmap_logits=logits)
        coords, probs = soft_argmax_2d(logits, self.alpha)
        scores = self.keypoint_scores(probs, coords).masked_fill(bad, 0.0)

        # One instance per top-down sample: (B, 1, K, 2) for the codec.
        preds = self.decode(coords.unsqueeze(1))
        # RegressionLabel.decode only sees coordinates and returns constant
        # ones as scores; the head's confidence replaces them.
        for pred, s in zip(preds, to_numpy(scores)):
            pred.keypoint_scores = s[None].astype(np.float32)

        if test_cfg.get('output_heatmaps', False):
            return preds, [PixelData(heatmaps=p) for p in probs.detach()]
        return preds

    def loss(self,
             feats: Sequence[Tensor],
             batch_data_samples: OptSampleList,
             train_cfg: ConfigType = {}) -> dict:
        """Coordinate loss and PCK accuracy.

        Targets are ``gt_instance_labels.keypoint_labels`` ``(1, K, 2)`` per
        sample in normalised units (``RegressionLabel``) with
        ``keypoint_weights`` ``(1, K)``. Weight-0 keypoints contribute
        nothing, even if their target is NaN/inf (such targets are zeroed:
        ``0 * nan`` would still poison the loss); a non-finite target or
        weight with weight > 0 raises ``ValueError``.

        Returns:
            dict: ``loss_kpt`` (scalar tensor from the configured loss, e.g.
            ``mean(|pred - target| * weight)`` over ``B*K*2`` for
            ``L1Loss``) and ``acc_pose`` (PCK@0.05 in normalised units over
            weighted keypoints).
        """
        pred = self.forward(feats)
        target = torch.cat([
            d.gt_instance_labels.keypoint_labels for d in batch_data_samples
        ]).to(pred)
        weight = torch.cat([
            d.gt_instance_labels.keypoint_weights for d in batch_data_samples
        ]).to(pred)

        if not torch.isfinite(weight).all():
            raise ValueError('keypoint_weights contain NaN/inf values')
        bad = ~torch.isfinite(target).all(dim=-1)
        if (bad & (weight > 0)).any():
            b, k = torch.nonzero(bad & (weight > 0))[0].tolist()
            raise ValueError(
                'keypoint_labels contain NaN/inf for keypoints with weight '
                f'> 0 (first: sample {b}, keypoint {k}); check the dataset '
                'annotations and the pipeline before the codec')
        target = torch.where(bad[..., None], torch.zeros_like(target),
                             target)

        losses = dict(loss_kpt=self.loss_module(pred, target, weight))

        _, avg_acc, _ = keypoint_pck_accuracy(
            pred=to_numpy(pred),
            gt=to_numpy(target),
            mask=to_numpy(weight) > 0,
            thr=0.05,
            norm_factor=np.ones((pred.size(0), 2), dtype=np.float32))
        losses['acc_pose'] = torch.tensor(avg_acc, device=pred.device)
        return losses


def _check_layer_lists(kind: str, out_channels: Optional[Sequence[int]],
                       kernel_sizes: Optional[Sequence[int]]) -> tuple:
    """Validate a pair of per-layer lists; return the channels as a tuple
    (empty when there are no layers)."""
    out_channels = tuple(out_channels or ())
    kernel_sizes = tuple(kernel_sizes or ())
    if len(out_channels) != len(kernel_sizes):
        raise ValueError(
            f'{kind}_out_channels and {kind}_kernel_sizes must have the same '
            f'length, got {out_channels} and {kernel_sizes}')
    for c in out_channels:
        check_int(f'{kind}_out_channels entries', c)
    for k in kernel_sizes:
        check_int(f'{kind}_kernel_sizes entries', k)
    return out_channels

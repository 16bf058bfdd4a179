"""Stacked hourglass / U-Net hybrid with soft-gated skip connections
(Bulat et al., "Toward fast and accurate human pose estimation via
soft-gated skip connections", FG 2020).

One hourglass of ``depth`` levels, level ``l = 0`` at the input resolution::

    encoder:  s_l = skip_l(x_l)                  SoftGatedBlock, resolution r
              x_{l+1} = down_l(maxpool2(x_l))    SoftGatedBlock, resolution r/2
    bottom:   y_depth = bottom(x_depth)          SoftGatedBlock
    decoder:  u_l = upsample2(up_l(y_{l+1}))     SoftGatedBlock at r/2, nearest
              y_l = fuse_l(s_l, u_l)

The fusion ``fuse_l`` is the hybrid's point (``fusion``):

* ``'concat'`` (the paper's best, U-Net like): the two maps are concatenated
  and ONE pre-activated convolution BN-ReLU-Conv(2C -> C) sees both;
* ``'concat_grouped'``: the same convolution with 2 groups (each half of the
  output sees one source only);
* ``'sum'``: ``s_l + u_l``, the fusion rule of the baseline hourglass (mmpose
  ``HourglassModule.forward``: ``up1 + up2``).

The network (Newell et al.'s layout): a stem to stride 4 (7x7 conv stride 2,
block, max-pool, block, block), then ``num_stacks`` hourglasses, each
followed by a block and a 1x1 conv-BN-ReLU (the stack's features) and, with
``num_keypoints``, a 1x1 conv to heatmaps (intermediate supervision). Between
stacks the features and the heatmaps are mapped back with 1x1 convolutions
and added to the stack's input.

``forward`` returns one map per stack (a tuple), so mmpose's multi-stage
``CPMHead`` trains it with a loss per stack: with ``num_keypoints=K`` each
map is the stack's heatmaps ``(B, K, H/4, W/4)`` (head: ``CPMHead(
in_channels=K, out_channels=K, num_stages=num_stacks,
deconv_out_channels=None, final_layer=None)``); with ``num_keypoints=None``
it is the stack's features ``(B, channels, H/4, W/4)`` (head: ``CPMHead``
with its own 1x1 final layers; the stacks then exchange features only).

:func:`soft_gate_values` reads the learned gates per stack / level from a
model or a checkpoint's state dict (the paper's Figure 3; plotted by
``tools/analysis_tools/plot_soft_gates.py``).
"""
import re
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpose.models.backbones.base_backbone import BaseBackbone
from mmpose.registry import MODELS
from ..layers.soft_gated_block import GATE_MODES, SoftGatedBlock
from ..utils import refuse_mismatched_shapes

__all__ = [
    'SoftGatedHourglass', 'HybridFusion', 'FUSION_MODES', 'soft_gate_values'
]

#: Ways an hourglass level merges its encoder and decoder maps.
FUSION_MODES = ('concat', 'concat_grouped', 'sum')


class HybridFusion(nn.Module):
    """Merge the encoder map ``s`` and the upsampled decoder map ``u`` of
    one level, both ``(B, C, H, W)`` -> ``(B, C, H, W)``.

    Args:
        channels (int): ``C``.
        mode (str): One of :data:`FUSION_MODES`.
        kernel_size (int): Kernel of the fusion convolution (concat modes),
            odd. Default 1.
    """

    def __init__(self, channels: int, mode: str = 'concat',
                 kernel_size: int = 1):
        super().__init__()
        if mode not in FUSION_MODES:
            raise ValueError(f'unknown fusion mode {mode!r}; choose one of '
                             f'{FUSION_MODES}')
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f'fusion kernel_size must be odd and >= 1, got {kernel_size}')
        self.mode = mode
        self.channels = channels
        if mode == 'sum':
            self.norm = self.conv = None
        else:
            groups = 2 if mode == 'concat_grouped' else 1
            if mode == 'concat_grouped' and channels % 2:
                raise ValueError('concat_grouped fusion needs an even number '
                                 f'of channels, got {channels}')
            self.norm = nn.BatchNorm2d(2 * channels)
            self.conv = nn.Conv2d(
                2 * channels, channels, kernel_size,
                padding=kernel_size // 2, groups=groups, bias=False)

    def forward(self, s: Tensor, u: Tensor) -> Tensor:
        if self.mode == 'sum':
            return s + u
        return self.conv(F.relu(self.norm(torch.cat([s, u], dim=1))))


class HourglassLevel(nn.Module):
    """The blocks of one level (see the module doc); no forward of its own,
    :class:`SoftGatedHourglassModule` runs the levels iteratively."""

    def __init__(self, channels, fusion, fusion_kernel, block_kwargs):
        super().__init__()
        self.skip = SoftGatedBlock(channels, channels, **block_kwargs)
        self.down = SoftGatedBlock(channels, channels, **block_kwargs)
        self.up = SoftGatedBlock(channels, channels, **block_kwargs)
        self.fuse = HybridFusion(channels, fusion, fusion_kernel)


class SoftGatedHourglassModule(nn.Module):
    """One hourglass / U-Net hybrid of ``depth`` levels:
    ``(B, C, H, W)`` -> ``(B, C, H, W)``."""

    def __init__(self, channels: int, depth: int, fusion: str,
                 fusion_kernel: int, block_kwargs: dict):
        super().__init__()
        self.depth = depth
        self.levels = nn.ModuleList([
            HourglassLevel(channels, fusion, fusion_kernel, block_kwargs)
            for _ in range(depth)
        ])
        self.bottom = SoftGatedBlock(channels, channels, **block_kwargs)

    @staticmethod
    def upsample(low: Tensor, size) -> Tensor:
        """Nearest upsampling to ``size``: exactly mmpose's
        ``nn.Upsample(scale_factor=2)`` when ``size`` is twice ``low``'s;
        odd sizes (floored by the pooling) come back to their own size."""
        return F.interpolate(low, size=size, mode='nearest')

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for level in self.levels:
            if min(x.shape[-2:]) < 2:
                raise ValueError(
                    f'hourglass of depth {self.depth} got a map of size '
                    f'{tuple(x.shape[-2:])} at a level that must be pooled; '
                    'use a larger input or a smaller depth')
            skips.append(level.skip(x))
            x = level.down(F.max_pool2d(x, 2))
        y = self.bottom(x)
        for level, s in zip(reversed(self.levels), reversed(skips)):
            y = level.fuse(s, self.upsample(level.up(y), s.shape[-2:]))
        return y


def _conv_bn_relu(cin, cout, k=1, stride=1, relu=True):
    layers = [
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False),
        nn.BatchNorm2d(cout)
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


@MODELS.register_module()
class SoftGatedHourglass(BaseBackbone):
    """Stacked hourglass / U-Net hybrid with soft-gated skip connections.

    Args:
        in_channels (int): Image channels. Default 3.
        num_stacks (int): Hourglasses, each with intermediate supervision.
            Default 4.
        channels (int): Width of every hourglass block (144: the paper's
            8.5M-parameter model with the defaults; 256: the wide model; see
            docs/benchmarks.md for the settings that match its parameter and
            FLOP counts). Default 144.
        depth (int): Levels (2x poolings) per hourglass; input sides must be
            divisible by ``4 * 2**depth`` for exact nearest upsampling.
            Default 4 (64x64 -> 4x4 at 256x256 input).
        num_keypoints (int | None): If set, every stack predicts ``K``
            heatmaps (returned, and fed back into the next stack); if None,
            the stacks' features are returned. Default None.
        stem_channels (tuple[int, int]): Widths of the stem's 7x7 conv and
            of its first block. Default (64, 128).
        fusion (str): One of :data:`FUSION_MODES`. Default ``'concat'``.
        fusion_kernel (int): Kernel of the concat-fusion conv. Default 1.
        gate (str): Skip mode of every block, one of
            :data:`~mmkp_ext.models.layers.soft_gated_block.GATE_MODES`.
            Default ``'channel'``.
        gate_init (float): Initial gate value. Default 0.0.
        init_cfg (dict | list[dict], optional): Initialisation; default
            Kaiming for convolutions, constant 1 for BatchNorm; heatmap
            convolutions then get N(0, 0.001) as in mmpose's heads.

    Returns (forward): tuple of ``num_stacks`` tensors
    ``(B, K or channels, H/4, W/4)``, first stack first.
    """

    def __init__(self,
                 in_channels: int = 3,
                 num_stacks: int = 4,
                 channels: int = 144,
                 depth: int = 4,
                 num_keypoints: Optional[int] = None,
                 stem_channels: Tuple[int, int] = (64, 128),
                 fusion: str = 'concat',
                 fusion_kernel: int = 1,
                 gate: str = 'channel',
                 gate_init: float = 0.0,
                 init_cfg=[
                     dict(type='Kaiming', layer=['Conv2d']),
                     dict(type='Constant', val=1, layer=['_BatchNorm'])
                 ]):
        super().__init__(init_cfg=init_cfg)
        refuse_mismatched_shapes(self)  # its last layers are per keypoint
        for name, value, low in (('num_stacks', num_stacks, 1),
                                 ('channels', channels, 4),
                                 ('depth', depth, 1),
                                 ('in_channels', in_channels, 1)):
            if int(value) != value or value < low:
                raise ValueError(f'SoftGatedHourglass: {name} must be an '
                                 f'integer >= {low}, got {value!r}')
        if num_keypoints is not None and (int(num_keypoints) != num_keypoints
                                          or num_keypoints < 1):
            raise ValueError('SoftGatedHourglass: num_keypoints must be None '
                             f'or a positive integer, got {num_keypoints!r}')
        if gate not in GATE_MODES:
            raise ValueError(f'SoftGatedHourglass: unknown gate {gate!r}; '
                             f'choose one of {GATE_MODES}')
        if fusion not in FUSION_MODES:
            raise ValueError(f'SoftGatedHourglass: unknown fusion {fusion!r};'
                             f' choose one of {FUSION_MODES}')
        self.num_stacks = num_stacks
        self.channels = channels
        self.depth = depth
        self.num_keypoints = num_keypoints
        block_kwargs = dict(gate=gate, gate_init=gate_init)
        c0, c1 = stem_channels

        self.stem = nn.Sequential(
            _conv_bn_relu(in_channels, c0, 7, stride=2),
            SoftGatedBlock(c0, c1, **block_kwargs),
            nn.MaxPool2d(2),
            SoftGatedBlock(c1, c1, **block_kwargs),
            SoftGatedBlock(c1, channels, **block_kwargs),
        )
        self.hourglasses = nn.ModuleList([
            SoftGatedHourglassModule(channels, depth, fusion, fusion_kernel,
                                     block_kwargs) for _ in range(num_stacks)
        ])
        self.out_blocks = nn.ModuleList([
            nn.Sequential(
                SoftGatedBlock(channels, channels, **block_kwargs),
                _conv_bn_relu(channels, channels, 1))
            for _ in range(num_stacks)
        ])
        n_between = num_stacks - 1
        self.merge_feats = nn.ModuleList(
            [nn.Conv2d(channels, channels, 1) for _ in range(n_between)])
        if num_keypoints is not None:
            self.heatmap_convs = nn.ModuleList([
                nn.Conv2d(channels, num_keypoints, 1)
                for _ in range(num_stacks)
            ])
            self.merge_preds = nn.ModuleList([
                nn.Conv2d(num_keypoints, channels, 1)
                for _ in range(n_between)
            ])
        else:
            self.heatmap_convs = None
            self.merge_preds = None

    def init_weights(self):
        super().init_weights()
        pretrained = isinstance(self.init_cfg, dict) and \
            self.init_cfg.get('type') == 'Pretrained'
        if self.heatmap_convs is not None and not pretrained:
            for conv in self.heatmap_convs:
                nn.init.normal_(conv.weight, std=0.001)
                nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        if x.dim() != 4:
            raise ValueError('SoftGatedHourglass expects images (B, C, H, W),'
                             f' got shape {tuple(x.shape)}')
        x = self.stem(x)
        outs = []
        for i in range(self.num_stacks):
            feat = self.out_blocks[i](self.hourglasses[i](x))
            out = feat if self.heatmap_convs is None else \
                self.heatmap_convs[i](feat)
            outs.append(out)
            if i < self.num_stacks - 1:
                x = x + self.merge_feats[i](feat)
                if self.merge_preds is not None:
                    x = x + self.merge_preds[i](out)
        return tuple(outs)

    def gate_values(self) -> 'OrderedDict[str, np.ndarray]':
        """Learned gates of this model, see :func:`soft_gate_values`."""
        return soft_gate_values(self)


_GATE_KEY = re.compile(r'(?:^|\.)hourglasses\.(\d+)\.(?:levels\.(\d+)\.'
                       r'(\w+)|(bottom))\.alpha$')


def soft_gate_values(
    model_or_state: Union[nn.Module, Mapping[str, Tensor]],
    prefix: str = ''
) -> 'OrderedDict[str, np.ndarray]':
    """Gate values (alphas) of a :class:`SoftGatedHourglass`, grouped per
    stack and hourglass level.

    Args:
        model_or_state: the backbone, a model holding it, or a (checkpoint)
            state dict.
        prefix (str): Only keys starting with it (e.g. ``'backbone.'``).

    Returns:
        OrderedDict: ``'stack{s}/level{l}'`` (``l = 0`` the finest level)
        and ``'stack{s}/bottom'`` (the lowest block) -> 1-d float64 array
        of all alphas of that level's blocks (skip, down, up: ``3 * C``
        values per level with per-channel gates), in state-dict order. Blocks outside the
        hourglasses (stem, stack outputs) are collected under ``'other'``.

    Raises:
        ValueError: if no gate parameter is found (e.g. an identity-gate
            model or a checkpoint of another network).
    """
    state = model_or_state.state_dict() if isinstance(
        model_or_state, nn.Module) else model_or_state
    groups: Dict[str, list] = OrderedDict()
    other = []
    for key, value in state.items():
        if not key.startswith(prefix) or not key.endswith('alpha'):
            continue
        arr = np.asarray(torch.as_tensor(value).detach().cpu().double())
        m = _GATE_KEY.search(key)
        if m is None:
            other.append(arr.ravel())
            continue
        stack = int(m.group(1))
        level = m.group(2)
        name = f'stack{stack}/level{level}' if level is not None else \
            f'stack{stack}/bottom'
        groups.setdefault(name, []).append(arr.ravel())
    if not groups and not other:
        raise ValueError('no soft gates (keys ending in "alpha") found'
                         + (f' under prefix {prefix!r}' if prefix else ''))
    out = OrderedDict((k, np.concatenate(v)) for k, v in groups.items())
    if other:
        out['other'] = np.concatenate(other)
    return out

"""Sub-pixel-convolution fusion of HRNet's branches (HRNet++ head change).

Instead of predicting from the highest-resolution branch alone, HRNet++
upsamples the lower-resolution branches with sub-pixel convolution and
concatenates them with the adjacent higher-resolution features, level by
level up to stride 4; a heatmap (mmpose ``HeatmapHead``) or soft-argmax
(``SoftArgmaxHead``) head then predicts from the fused map.

For branches ``x_0`` (stride 4, highest resolution) ... ``x_{n-1}``::

    f_{n-1} = x_{n-1}
    f_i     = concat([x_i, up_i(f_{i+1})], dim=1)       i = n-2, ..., 0
    up_i(f) = act(norm(PixelShuffle(r)(conv_k(f))))      conv: C_f -> u_i * r^2

``PixelShuffle(r)`` (``torch.nn.PixelShuffle``) rearranges ``(B, u*r^2, H,
W)`` into ``(B, u, r*H, r*W)`` with::

    out[b, c, r*h + i, r*w + j] = in[b, c*r^2 + i*r + j, h, w]

i.e. each group of ``r^2`` consecutive conv channels fills one ``r x r``
output cell row by row. The output is ``(f_0,)``: one map at the resolution
of ``x_0`` with ``out_channels = in_channels[0] + u_0`` channels.
"""
from typing import List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_activation_layer, build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmpose.registry import MODELS
from mmpose.utils.typing import OptConfigType
from ...utils.validation import check_int

__all__ = ['SubPixelFusion', 'SubPixelUpsample']


class SubPixelUpsample(nn.Module):
    """``conv_k (C_in -> C_out * r^2)`` -> ``PixelShuffle(r)`` -> norm ->
    activation: ``(B, C_in, H, W)`` -> ``(B, C_out, r*H, r*W)``.

    Submodules: ``conv``, ``shuffle``, ``norm`` (or ``nn.Identity``),
    ``act`` (or ``nn.Identity``).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 scale: int = 2,
                 kernel_size: int = 3,
                 norm_cfg: OptConfigType = dict(type='BN'),
                 act_cfg: OptConfigType = dict(type='ReLU')):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            out_channels * scale * scale,
            kernel_size,
            padding=kernel_size // 2,
            bias=norm_cfg is None)
        self.shuffle = nn.PixelShuffle(scale)
        self.norm = (
            build_norm_layer(norm_cfg, out_channels)[1]
            if norm_cfg is not None else nn.Identity())
        self.act = (
            build_activation_layer(act_cfg)
            if act_cfg is not None else nn.Identity())

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.shuffle(self.conv(x))))


@MODELS.register_module()
class SubPixelFusion(BaseModule):
    """Progressive sub-pixel upsampling + concatenation of multi-resolution
    features down to the highest resolution (see the module docstring).

    Args:
        in_channels (Sequence[int]): Channels of the input maps, highest
            resolution first (HRNet's branch order), at least 2.
        upsample_channels (Sequence[int], optional): ``u_i``, the channels
            each upsampling produces before being concatenated with branch
            ``i`` (``len(in_channels) - 1`` entries). Default: the channels
            of the branch it joins, ``in_channels[:-1]``.
        scale (int): Resolution ratio ``r`` of adjacent inputs (2 for
            HRNet); every input must be exactly ``r`` times smaller than the
            previous one.
        kernel_size (int): Odd kernel size of the sub-pixel convolutions.
        norm_cfg (dict, optional): Norm after each pixel shuffle; ``None``:
            none (the conv then has a bias).
        act_cfg (dict, optional): Activation after the norm; ``None``: none.
        init_cfg (dict | list, optional): Initialisation config.

    Attributes:
        out_channels (int): ``in_channels[0] + upsample_channels[0]``, the
            ``in_channels`` of the head that follows.

    Forward: tuple/list of ``(B, in_channels[i], H_0 / r^i, W_0 / r^i)`` ->
    ``((B, out_channels, H_0, W_0),)``.

    Example (HRNet-W48 with ``multiscale_output=True`` in stage 4)::

        neck=dict(type='SubPixelFusion', in_channels=(48, 96, 192, 384))
        head=dict(type='HeatmapHead', in_channels=96, out_channels=17, ...)
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 upsample_channels: Optional[Sequence[int]] = None,
                 scale: int = 2,
                 kernel_size: int = 3,
                 norm_cfg: OptConfigType = dict(type='BN'),
                 act_cfg: OptConfigType = dict(type='ReLU'),
                 init_cfg: OptConfigType = None):
        super().__init__(init_cfg)
        if not isinstance(in_channels, Sequence) or len(in_channels) < 2:
            raise ValueError('in_channels must list the channels of at least '
                             f'2 inputs, got {in_channels!r}')
        for c in in_channels:
            check_int('in_channels entries', c)
        n = len(in_channels)
        if upsample_channels is None:
            upsample_channels = tuple(in_channels[:-1])
        if (not isinstance(upsample_channels, Sequence)
                or len(upsample_channels) != n - 1):
            raise ValueError(
                f'upsample_channels needs {n - 1} entries (one per '
                f'upsampling), got {upsample_channels!r}')
        for c in upsample_channels:
            check_int('upsample_channels entries', c)
        check_int('scale', scale)
        if scale < 2:
            raise ValueError(f'scale must be >= 2, got {scale}')
        check_int('kernel_size', kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(
                f'kernel_size must be odd (size-preserving), got '
                f'{kernel_size}')

        self.in_channels = tuple(in_channels)
        self.upsample_channels = tuple(upsample_channels)
        self.scale = scale

        # upsamples[i] lifts level i+1 (already fused) to level i.
        fused = in_channels[-1]
        ups: List[nn.Module] = [None] * (n - 1)
        for i in range(n - 2, -1, -1):
            ups[i] = SubPixelUpsample(fused, upsample_channels[i], scale,
                                      kernel_size, norm_cfg, act_cfg)
            fused = in_channels[i] + upsample_channels[i]
        self.upsamples = nn.ModuleList(ups)
        self.out_channels = fused

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor]:
        """See the class docstring for shapes."""
        if not isinstance(inputs, (list, tuple)) or \
                len(inputs) != len(self.in_channels):
            got = len(inputs) if isinstance(inputs, (list, tuple)) else \
                type(inputs).__name__
            raise ValueError(
                f'SubPixelFusion expects {len(self.in_channels)} feature '
                f'maps (set multiscale_output=True in the backbone\'s last '
                f'stage), got {got}')
        for i, (x, c) in enumerate(zip(inputs, self.in_channels)):
            if x.dim() != 4 or x.shape[1] != c:
                raise ValueError(f'input {i} must be (B, {c}, H, W), got '
                                 f'{tuple(x.shape)}')
            if i and (x.shape[2] * self.scale != inputs[i - 1].shape[2]
                      or x.shape[3] * self.scale != inputs[i - 1].shape[3]):
                raise ValueError(
                    f'input {i} ({tuple(x.shape[2:])}) must be exactly '
                    f'{self.scale}x smaller than input {i - 1} '
                    f'({tuple(inputs[i - 1].shape[2:])})')
        fused = inputs[-1]
        for i in range(len(inputs) - 2, -1, -1):
            fused = torch.cat([inputs[i], self.upsamples[i](fused)], dim=1)
        return (fused, )

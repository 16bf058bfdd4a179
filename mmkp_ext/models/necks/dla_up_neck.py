"""DLA-up / IDA-up aggregation neck of CenterNet's DLA-34 (``DLASeg``).

Fuses a pyramid of feature maps, each level half the size of the previous
one, into ONE map at the resolution of level ``first_level`` (stride 4 for
DLA-34 with ``first_level=2``), as in CenterNet's ``pose_dla_dcn.py``, with
every deformable convolution replaced by a plain ``Conv3x3 + norm + ReLU``
(the grouped-CenterNet paper trains it this way).

Building block, iterative deep aggregation (IDA-up) of maps ``f_0, f_1,
...`` where ``f_0`` already has the target channels ``o`` and resolution and
``f_k`` is ``u_k`` times coarser::

    a_0 = f_0
    a_k = node_k(up_k(proj_k(f_k)) + a_{k-1})        k = 1, 2, ...

``proj_k``: Conv3x3(C_k -> o) + norm + ReLU; ``up_k``: x ``u_k`` upsampling
(a learnable depth-wise ``ConvTranspose2d`` initialised to bilinear
interpolation, or fixed bilinear interpolation); ``node_k``: Conv3x3(o -> o)
+ norm + ReLU. It returns all ``a_k``.

DLA-up (``dla_up``) applies IDA-up stages from the coarsest level down: stage
``i`` aggregates, onto level ``j = n - 2 - i`` (``n = len(in_channels) -
first_level`` levels used), the original level ``j`` and the current maps
of the levels above it (already merged by earlier stages); the last map of
each stage is kept. Its outputs, one per level ``first_level..end``, have
the channels of that level. The final IDA-up (``ida_up``) merges the DLA-up
outputs of the levels ``first_level..last_level - 1`` onto level
``first_level`` with ``out_channels`` channels.

Module names follow CenterNet's (``dla_up.ida_{i}.{proj,up,node}_{k}``,
``ida_up.*``; each conv block ``.conv`` + ``.actf.0`` norm), so the norm
statistics and the 3x3 kernels of a CenterNet DCN checkpoint have the same
names and shapes. With ``conv_type='dcn'`` every block is CenterNet's
``DeformConv`` instead: a modulated deformable 3x3 convolution with bias
(:class:`~mmkp_ext.models.layers.ModulatedDeformConv2dPure`, parameters
``conv.weight``, ``conv.bias``, ``conv.conv_offset_mask.*``) + norm + ReLU,
so the authors' ``multi_pose`` DLA-34 checkpoints load key for key
(``tools/model_converters/convert_centernet_checkpoint.py``).
"""
import copy
import math
from numbers import Integral
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmpose.registry import MODELS
from mmpose.utils.typing import ConfigType, OptMultiConfig

from ..layers.modulated_deform_conv import ModulatedDeformConv2dPure
from ...utils.validation import check_int

__all__ = ['DLAUpNeck', 'bilinear_upsample_kernel']

#: Upsampling layers understood by :class:`DLAUpNeck`.
UPSAMPLE_MODES = ('deconv', 'bilinear')
#: Convolution blocks understood by :class:`DLAUpNeck`.
CONV_TYPES = ('conv', 'dcn')


def bilinear_upsample_kernel(kernel_size: int) -> Tensor:
    """2-D bilinear interpolation kernel of a transposed convolution.

    With ``f = ceil(kernel_size / 2)`` and ``c = (2f - 1 - f % 2) / (2f)``,
    ``k[i, j] = (1 - |i / f - c|) * (1 - |j / f - c|)``; with kernel
    ``2u``, stride ``u`` and padding ``u // 2`` (even ``u``) a
    ``ConvTranspose2d`` with this kernel equals bilinear ``x u`` upsampling
    (``align_corners=False``) away from the borders.

    Args:
        kernel_size (int): Kernel side ``K``.

    Returns:
        Tensor: ``(K, K)`` float32 kernel.
    """
    f = math.ceil(kernel_size / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    profile = 1 - (torch.arange(kernel_size, dtype=torch.float32) / f -
                   c).abs()
    return profile[:, None] * profile[None, :]


class _ConvNormReLU(nn.Module):
    """``Conv3x3(stride 1) -> norm -> ReLU``: the plain-convolution
    stand-in for CenterNet's ``DeformConv``, with its attribute names."""

    def __init__(self, in_channels: int, out_channels: int,
                 norm_cfg: ConfigType):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.actf = nn.Sequential(
            build_norm_layer(norm_cfg, out_channels)[1], nn.ReLU(inplace=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.actf(self.conv(x))


class _DeformConvNormReLU(_ConvNormReLU):
    """CenterNet's ``DeformConv``: modulated deformable 3x3 convolution
    (with bias, offsets predicted by ``conv.conv_offset_mask``) -> norm ->
    ReLU."""

    def __init__(self, in_channels: int, out_channels: int,
                 norm_cfg: ConfigType):
        super().__init__(in_channels, out_channels, norm_cfg)
        self.conv = ModulatedDeformConv2dPure(
            in_channels, out_channels, 3, padding=1, bias=True)


def _conv_block(conv_type: str):
    return _DeformConvNormReLU if conv_type == 'dcn' else _ConvNormReLU


class _Interpolate(nn.Module):
    """Parameter-free bilinear ``x factor`` upsampling."""

    def __init__(self, factor: int):
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(
            x, scale_factor=self.factor, mode='bilinear', align_corners=False)


def _make_upsample(channels: int, factor: int, mode: str) -> nn.Module:
    """``x factor`` upsampling of a ``channels``-channel map."""
    if factor == 1:
        return nn.Identity()
    if mode == 'bilinear':
        return _Interpolate(factor)
    # Depth-wise (one filter per channel) learnable upsampling started at
    # bilinear interpolation, as CenterNet does (fill_up_weights).
    up = nn.ConvTranspose2d(
        channels,
        channels,
        kernel_size=2 * factor,
        stride=factor,
        padding=factor // 2,
        output_padding=0,
        groups=channels,
        bias=False)
    with torch.no_grad():
        up.weight.copy_(
            bilinear_upsample_kernel(2 * factor).expand_as(up.weight))
    return up


class IDAUp(nn.Module):
    """Iterative deep aggregation of maps onto the first one's resolution.

    Args:
        out_channels (int): Channels ``o`` of the aggregated maps.
        in_channels (Sequence[int]): Channels of the input maps. If the first
            differs from ``out_channels`` it is projected too (``proj_0``;
            CenterNet's configurations never need this).
        up_factors (Sequence[int]): Size ratio of each input map to the
            first (``up_factors[0] == 1``).
        norm_cfg (dict): Normalisation layer config.
        upsample (str): ``'deconv'`` or ``'bilinear'``.
        conv_type (str): ``'conv'`` (plain 3x3) or ``'dcn'`` (CenterNet's
            ``DeformConv``) for the projections and nodes.
    """

    def __init__(self, out_channels: int, in_channels: Sequence[int],
                 up_factors: Sequence[int], norm_cfg: ConfigType,
                 upsample: str, conv_type: str = 'conv'):
        super().__init__()
        block = _conv_block(conv_type)
        self.num_inputs = len(in_channels)
        self.has_proj_0 = in_channels[0] != out_channels
        if self.has_proj_0:
            self.proj_0 = block(in_channels[0], out_channels, norm_cfg)
        for k in range(1, self.num_inputs):
            self.add_module(
                f'proj_{k}',
                block(in_channels[k], out_channels, norm_cfg))
            self.add_module(
                f'up_{k}',
                _make_upsample(out_channels, int(up_factors[k]), upsample))
            self.add_module(f'node_{k}',
                            block(out_channels, out_channels, norm_cfg))

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        """``feats[k]``: ``(B, in_channels[k], H / u_k, W / u_k)``. Returns
        the ``num_inputs`` aggregated maps ``a_k``, each
        ``(B, out_channels, H, W)`` (``a_0`` is ``feats[0]``, projected if
        ``proj_0`` exists)."""
        agg = feats[0]
        if self.has_proj_0:
            agg = self.proj_0(agg)
        outs = [agg]
        for k in range(1, self.num_inputs):
            up = getattr(self, f'up_{k}')(getattr(self, f'proj_{k}')(feats[k]))
            agg = getattr(self, f'node_{k}')(up + agg)
            outs.append(agg)
        return outs


class DLAUp(nn.Module):
    """DLA-up: IDA-up stages from the coarsest level to the finest.

    Args:
        channels (Sequence[int]): Channels of the ``n`` used levels, finest
            first; consecutive levels differ by a factor 2 in size.
        norm_cfg (dict): Normalisation layer config.
        upsample (str): ``'deconv'`` or ``'bilinear'``.
        conv_type (str): ``'conv'`` or ``'dcn'`` (see :class:`IDAUp`).
    """

    def __init__(self, channels: Sequence[int], norm_cfg: ConfigType,
                 upsample: str, conv_type: str = 'conv'):
        super().__init__()
        n = len(channels)
        self.num_levels = n
        # Channels and stride (relative to the finest level) of the maps as
        # they stand before each stage.
        cur_channels = list(channels)
        cur_scales = [2**k for k in range(n)]
        for i in range(n - 1):
            j = n - 2 - i
            self.add_module(
                f'ida_{i}',
                IDAUp(channels[j], cur_channels[j:],
                      [s // cur_scales[j] for s in cur_scales[j:]], norm_cfg,
                      upsample, conv_type))
            # Stage i leaves levels j+1.. at level j's size and channels.
            for k in range(j + 1, n):
                cur_channels[k] = channels[j]
                cur_scales[k] = cur_scales[j]

    def forward(self, feats: Sequence[Tensor]) -> List[Tensor]:
        """``feats``: the ``n`` level maps, finest first. Returns ``n`` maps:
        entry ``j`` has level ``j``'s channels and size (the last entry is
        the coarsest input itself)."""
        n = self.num_levels
        cur = list(feats)
        outs = [cur[-1]]
        for i in range(n - 1):
            j = n - 2 - i
            cur[j:] = getattr(self, f'ida_{i}')(cur[j:])
            outs.insert(0, cur[-1])
        return outs


@MODELS.register_module()
class DLAUpNeck(BaseModule):
    """CenterNet's DLA-up + IDA-up neck: a feature pyramid to one map.

    Input: a tuple of ``len(in_channels)`` maps, map ``i`` of shape
    ``(B, in_channels[i], H_i, W_i)``, where from ``first_level`` on each map
    is exactly half the size of the previous one (``DLANet``'s six levels:
    strides 1, 2, 4, 8, 16, 32). Maps below ``first_level`` are ignored;
    maps ``first_level..end`` enter DLA-up, whose outputs at levels
    ``first_level..last_level - 1`` enter the final IDA-up.

    Output: a one-element tuple ``(B, out_channels, H_first, W_first)``,
    at the stride of input ``first_level`` (4 for DLA-34 with the defaults).

    Args:
        in_channels (Sequence[int]): Channels of every input map.
        first_level (int): Index of the finest map used (output resolution).
        last_level (int): One past the coarsest DLA-up output fed to the
            final IDA-up; ``first_level < last_level <= len(in_channels)``.
            CenterNet's DLA-34 uses 2 and 5.
        out_channels (int): Output channels (64 for DLA-34).
        norm_cfg (dict): Normalisation layer config of every conv block.
        upsample (str): ``'deconv'`` (CenterNet: learnable depth-wise
            transposed convolutions initialised to bilinear interpolation,
            see :func:`bilinear_upsample_kernel`) or ``'bilinear'`` (fixed
            interpolation, no parameters).
        conv_type (str): ``'conv'`` (default: plain Conv3x3 + norm + ReLU,
            as the grouped-CenterNet paper trains) or ``'dcn'`` (CenterNet's
            ``pose_dla_dcn.py``: modulated deformable convolutions, the
            layout of the authors' published ``multi_pose`` models).
        init_cfg (dict | list, optional): Initialisation config. ``None``
            keeps PyTorch's default convolution initialisation (the same
            ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` as CenterNet's DCN
            layers) and the bilinear transposed-convolution kernels.

    Example:
        >>> neck = DLAUpNeck(in_channels=(16, 32, 64, 128, 256, 512))
        >>> feats = DLANet()(torch.rand(1, 3, 128, 128))
        >>> [tuple(o.shape) for o in neck(feats)]
        [(1, 64, 32, 32)]
    """

    def __init__(self,
                 in_channels: Sequence[int] = (16, 32, 64, 128, 256, 512),
                 first_level: int = 2,
                 last_level: int = 5,
                 out_channels: int = 64,
                 norm_cfg: ConfigType = dict(type='BN'),
                 upsample: str = 'deconv',
                 conv_type: str = 'conv',
                 init_cfg: OptMultiConfig = None):
        super().__init__(init_cfg)
        if (isinstance(in_channels,
                       (str, bytes)) or not isinstance(in_channels, Sequence)
                or len(in_channels) == 0):
            raise TypeError('in_channels must be a non-empty sequence of '
                            f'ints, got {in_channels!r}')
        in_channels = tuple(
            check_int(f'in_channels[{i}]', c)
            for i, c in enumerate(in_channels))
        n = len(in_channels)
        for name, value in (('first_level', first_level), ('last_level',
                                                           last_level)):
            if isinstance(value, bool) or not isinstance(value, Integral):
                raise TypeError(f'{name} must be an int, got {value!r}')
        if not 0 <= first_level < last_level <= n:
            raise ValueError(
                'need 0 <= first_level < last_level <= len(in_channels) = '
                f'{n}, got first_level={first_level}, '
                f'last_level={last_level}')
        out_channels = check_int('out_channels', out_channels)
        if upsample not in UPSAMPLE_MODES:
            raise ValueError(f'upsample must be one of {UPSAMPLE_MODES}, '
                             f'got {upsample!r}')
        if conv_type not in CONV_TYPES:
            raise ValueError(f'conv_type must be one of {CONV_TYPES}, got '
                             f'{conv_type!r}')
        if not isinstance(norm_cfg, dict) or 'type' not in norm_cfg:
            raise TypeError(
                f'norm_cfg must be a dict with a "type", got {norm_cfg!r}')
        norm_cfg = copy.deepcopy(norm_cfg)

        self.in_channels = in_channels
        self.first_level = int(first_level)
        self.last_level = int(last_level)
        self.out_channels = out_channels
        self.upsample = upsample
        self.conv_type = conv_type

        used = in_channels[first_level:]
        self.dla_up = DLAUp(used, norm_cfg, upsample, conv_type)
        num_final = last_level - first_level
        self.ida_up = IDAUp(out_channels, used[:num_final],
                            [2**k for k in range(num_final)], norm_cfg,
                            upsample, conv_type)

    def _check_inputs(self, inputs) -> None:
        if not isinstance(inputs, (tuple, list)):
            raise TypeError('DLAUpNeck expects a tuple of feature maps, got '
                            f'{type(inputs).__name__}')
        if len(inputs) != len(self.in_channels):
            raise ValueError(
                f'DLAUpNeck got {len(inputs)} feature maps, expected '
                f'{len(self.in_channels)} (in_channels={self.in_channels}); '
                'the backbone must return every level, e.g. DLANet with '
                'out_indices=(0, 1, 2, 3, 4, 5)')
        for i, (x, c) in enumerate(zip(inputs, self.in_channels)):
            if not isinstance(x, Tensor) or x.dim() != 4:
                raise ValueError(
                    f'feature map {i} must be a (B, C, H, W) tensor, got '
                    f'{getattr(x, "shape", type(x).__name__)}')
            if x.shape[1] != c:
                raise ValueError(
                    f'feature map {i} has {x.shape[1]} channels, expected '
                    f'in_channels[{i}] = {c}')
        f = self.first_level
        H, W = inputs[f].shape[-2:]
        for i in range(f + 1, len(inputs)):
            s = 2**(i - f)
            if tuple(inputs[i].shape[-2:]) != (H / s, W / s):
                raise ValueError(
                    f'feature map {i} is {tuple(inputs[i].shape[-2:])}, '
                    f'expected ({H / s:g}, {W / s:g}): 1/{s} of feature map '
                    f'{f} ({H}, {W}); the input image size must be '
                    f'divisible by the coarsest stride')

    def forward(self, inputs: Sequence[Tensor]) -> Tuple[Tensor]:
        """Aggregate the pyramid into one map.

        Args:
            inputs (tuple[Tensor]): ``len(in_channels)`` maps as described
                in the class docstring.

        Returns:
            tuple[Tensor]: ``((B, out_channels, H_first, W_first), )``.
        """
        self._check_inputs(inputs)
        pyramid = self.dla_up(inputs[self.first_level:])
        num_final = self.last_level - self.first_level
        return (self.ida_up(pyramid[:num_final])[-1], )

"""Modulated deformable convolution (DCNv2, Zhu et al., CVPR 2019) in pure
PyTorch, with automatic use of a compiled kernel where one works.

For output position ``p0`` and kernel point ``k`` (``K = kh * kw`` points
``p_k`` of the regular grid, dilated), deformable group ``g``::

    y[o, p0] = bias[o] + sum_{c in group(o)} sum_k w[o, c, k]
                 * m[g(c), k, p0] * x_c(p0 * stride - pad + p_k + dp[g(c), k, p0])

``x_c(q)`` is bilinear interpolation of channel ``c`` at the real-valued
position ``q = (y, x)`` in input pixels, with zero outside the map (a point
more than one pixel outside reads 0, corners outside the map count 0), as
in the DCNv2 CUDA kernel that CenterNet ships. Offsets ``dp`` (B, 2 * G * K,
Ho, Wo) hold, per deformable group ``g`` and kernel point ``k``, the pair
``(dy, dx)`` at channels ``2 * (g * K + k)`` and ``+1``; the modulation
``m`` (B, G * K, Ho, Wo) is already in [0, 1] (the layer applies the
sigmoid). This is the layout of DCNv2, mmcv's ``modulated_deform_conv2d``
and torchvision's ``deform_conv2d``.

The pure version samples with :func:`torch.nn.functional.grid_sample`
(``align_corners=False``, zero padding: exactly the bilinear rule above once
pixel positions are mapped to its normalised coordinates) and multiplies the
sampled columns with the weights, so it differentiates with respect to
input, offsets, mask, weights and bias. :func:`modulated_deform_conv2d`
uses mmcv's compiled op or torchvision's ``deform_conv2d`` instead when
``impl='auto'`` and one of them imports and works (checked once per
process on a small case against the pure version).
"""
import math
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpose.registry import MODELS

__all__ = [
    'modulated_deform_conv2d_pure', 'modulated_deform_conv2d',
    'available_backends', 'ModulatedDeformConv2dPure'
]

IntPair = Union[int, Tuple[int, int]]

#: Values of ``impl``.
IMPLS = ('auto', 'pure', 'torchvision', 'mmcv')


def _pair(v: IntPair, name: str) -> Tuple[int, int]:
    if isinstance(v, int) and not isinstance(v, bool):
        v = (v, v)
    if (not isinstance(v, (tuple, list)) or len(v) != 2 or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in v)):
        raise TypeError(f'{name} must be an int or a pair of ints, got {v!r}')
    return int(v[0]), int(v[1])


def _check_args(x: Tensor, offset: Tensor, mask: Tensor, weight: Tensor,
                bias: Optional[Tensor], stride, padding, dilation,
                groups: int, deform_groups: int):
    if x.dim() != 4 or weight.dim() != 4:
        raise ValueError('input must be (B, C, H, W) and weight (O, C/groups, '
                         f'kh, kw); got {tuple(x.shape)} and '
                         f'{tuple(weight.shape)}')
    B, C, H, W = x.shape
    O, Cg, kh, kw = weight.shape
    if groups < 1 or C % groups or O % groups or Cg * groups != C:
        raise ValueError(f'weight {tuple(weight.shape)} does not fit input '
                         f'channels {C} with groups={groups}')
    if deform_groups < 1 or C % deform_groups:
        raise ValueError(f'input channels {C} are not divisible by '
                         f'deform_groups={deform_groups}')
    sh, sw = stride
    ph, pw = padding
    dh, dw = dilation
    Ho = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    Wo = (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f'input {H}x{W} is too small for kernel {kh}x{kw} '
                         f'with padding {padding} and dilation {dilation}')
    K = kh * kw
    want_off = (B, 2 * deform_groups * K, Ho, Wo)
    want_mask = (B, deform_groups * K, Ho, Wo)
    if tuple(offset.shape) != want_off:
        raise ValueError(f'offset must be {want_off}, got '
                         f'{tuple(offset.shape)}')
    if tuple(mask.shape) != want_mask:
        raise ValueError(f'mask must be {want_mask}, got {tuple(mask.shape)}')
    if bias is not None and tuple(bias.shape) != (O, ):
        raise ValueError(f'bias must be ({O},), got {tuple(bias.shape)}')
    return Ho, Wo


def modulated_deform_conv2d_pure(x: Tensor,
                                 offset: Tensor,
                                 mask: Tensor,
                                 weight: Tensor,
                                 bias: Optional[Tensor] = None,
                                 stride: IntPair = 1,
                                 padding: IntPair = 0,
                                 dilation: IntPair = 1,
                                 groups: int = 1,
                                 deform_groups: int = 1) -> Tensor:
    """DCNv2 of the module docstring in pure PyTorch.

    Args:
        x: (B, C, H, W) input.
        offset: (B, 2 * deform_groups * kh * kw, Ho, Wo), (dy, dx) pairs in
            input pixels.
        mask: (B, deform_groups * kh * kw, Ho, Wo) modulation (no sigmoid
            applied here).
        weight: (O, C / groups, kh, kw); bias: (O,) or None.

    Returns:
        (B, O, Ho, Wo).
    """
    stride, padding, dilation = (_pair(stride, 'stride'),
                                 _pair(padding, 'padding'),
                                 _pair(dilation, 'dilation'))
    Ho, Wo = _check_args(x, offset, mask, weight, bias, stride, padding,
                         dilation, groups, deform_groups)
    B, C, H, W = x.shape
    O, _, kh, kw = weight.shape
    K, G = kh * kw, deform_groups
    dt = x.dtype
    # Regular sampling grid (K, Ho, Wo) in input pixels, y and x.
    ky, kx = torch.meshgrid(
        torch.arange(kh, device=x.device, dtype=dt) * dilation[0],
        torch.arange(kw, device=x.device, dtype=dt) * dilation[1],
        indexing='ij')
    oy = torch.arange(Ho, device=x.device, dtype=dt) * stride[0] - padding[0]
    ox = torch.arange(Wo, device=x.device, dtype=dt) * stride[1] - padding[1]
    base_y = ky.reshape(K, 1, 1) + oy.reshape(1, Ho, 1)
    base_x = kx.reshape(K, 1, 1) + ox.reshape(1, 1, Wo)
    off = offset.reshape(B, G, K, 2, Ho, Wo)
    py = base_y + off[:, :, :, 0]  # (B, G, K, Ho, Wo)
    px = base_x + off[:, :, :, 1]
    # Pixel position -> grid_sample's normalised coordinate (centre of
    # pixel i at (2i + 1) / size - 1 with align_corners=False).
    grid = torch.stack(((2 * px + 1) / W - 1, (2 * py + 1) / H - 1), dim=-1)
    grid = grid.reshape(B * G, K * Ho, Wo, 2)
    cols = F.grid_sample(
        x.reshape(B * G, C // G, H, W),
        grid,
        mode='bilinear',
        padding_mode='zeros',
        align_corners=False)  # (B*G, C/G, K*Ho, Wo)
    cols = cols.reshape(B, G, C // G, K, Ho * Wo)
    cols = cols * mask.reshape(B, G, 1, K, Ho * Wo)
    # (B, groups, C/groups * K, L) x (groups, O/groups, C/groups * K).
    cols = cols.reshape(B, groups, (C // groups) * K, Ho * Wo)
    w = weight.reshape(groups, O // groups, (C // groups) * K)
    out = torch.einsum('gok,bgkl->bgol', w, cols).reshape(B, O, Ho, Wo)
    if bias is not None:
        out = out + bias.reshape(1, O, 1, 1)
    return out


def _torchvision_op(x, offset, mask, weight, bias, stride, padding, dilation,
                    groups, deform_groups):
    from torchvision.ops import deform_conv2d
    # torchvision infers groups / offset groups from the shapes.
    return deform_conv2d(x, offset, weight, bias, stride=stride,
                         padding=padding, dilation=dilation, mask=mask)


def _mmcv_op(x, offset, mask, weight, bias, stride, padding, dilation, groups,
             deform_groups):
    from mmcv.ops import modulated_deform_conv2d as op
    return op(x, offset, mask, weight, bias, stride, padding, dilation,
              groups, deform_groups)


_BACKENDS = {'torchvision': _torchvision_op, 'mmcv': _mmcv_op}
_WORKING: dict = {}


def _backend_works(name: str) -> bool:
    """Whether backend ``name`` imports and matches the pure version on a
    small case with groups and deformable groups (checked once)."""
    if name not in _WORKING:
        try:
            g = torch.Generator().manual_seed(0)
            x = torch.randn(1, 4, 5, 6, generator=g)
            w = torch.randn(4, 2, 3, 3, generator=g)
            off = torch.randn(1, 2 * 2 * 9, 5, 6, generator=g) * 2
            m = torch.rand(1, 2 * 9, 5, 6, generator=g)
            b = torch.randn(4, generator=g)
            args = ((1, 1), (1, 1), (1, 1), 2, 2)
            got = _BACKENDS[name](x, off, m, w, b, *args)
            want = modulated_deform_conv2d_pure(x, off, m, w, b, *args)
            _WORKING[name] = bool(torch.allclose(got, want, atol=1e-4))
        except Exception:  # not installed, no compiled op, broken build
            _WORKING[name] = False
    return _WORKING[name]


def available_backends() -> Tuple[str, ...]:
    """Compiled backends usable in this process, in order of preference
    (``'mmcv'``, ``'torchvision'``); the pure version is always usable."""
    return tuple(n for n in ('mmcv', 'torchvision') if _backend_works(n))


def modulated_deform_conv2d(x: Tensor,
                            offset: Tensor,
                            mask: Tensor,
                            weight: Tensor,
                            bias: Optional[Tensor] = None,
                            stride: IntPair = 1,
                            padding: IntPair = 0,
                            dilation: IntPair = 1,
                            groups: int = 1,
                            deform_groups: int = 1,
                            impl: str = 'auto') -> Tensor:
    """DCNv2 with the implementation chosen by ``impl``: ``'pure'``,
    ``'mmcv'``, ``'torchvision'`` or ``'auto'`` (the first compiled backend
    of :func:`available_backends` for CPU/CUDA float32 inputs, else pure;
    pure while tracing or exporting, so exported graphs need no custom op).
    Arguments as :func:`modulated_deform_conv2d_pure`."""
    if impl not in IMPLS:
        raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}')
    stride, padding, dilation = (_pair(stride, 'stride'),
                                 _pair(padding, 'padding'),
                                 _pair(dilation, 'dilation'))
    args = (x, offset, mask, weight, bias, stride, padding, dilation, groups,
            deform_groups)
    if impl == 'auto':
        exporting = (torch.jit.is_tracing() or torch.jit.is_scripting()
                     or torch.compiler.is_compiling()
                     or torch.onnx.is_in_onnx_export())
        if not exporting and x.dtype == torch.float32:
            for name in available_backends():
                return _BACKENDS[name](*args)
        return modulated_deform_conv2d_pure(*args)
    if impl == 'pure':
        return modulated_deform_conv2d_pure(*args)
    if not _backend_works(impl):
        raise RuntimeError(f'DCNv2 backend {impl!r} is not usable here (not '
                           'installed, no compiled op, or it disagrees with '
                           "the pure version); use impl='pure' or 'auto'")
    _check_args(*args[:5], stride, padding, dilation, groups, deform_groups)
    return _BACKENDS[impl](*args)


@MODELS.register_module()
class ModulatedDeformConv2dPure(nn.Module):
    """DCNv2 layer that predicts its own offsets and mask (as mmcv's
    ``ModulatedDeformConv2dPack`` and CenterNet's ``DCN``).

    A plain convolution ``conv_offset_mask`` (same kernel, stride, padding,
    dilation as the layer; zero-initialised, so training starts from a
    regular convolution with mask 0.5) gives ``3 * G * K`` channels: the
    first ``2 G K`` are the offsets, the last ``G K`` the mask logits (sigmoid
    applied). Parameters: ``weight`` (O, C / groups, kh, kw), ``bias`` (O,),
    ``conv_offset_mask.{weight,bias}``: CenterNet's DCN names. State dicts
    written by mmcv's layer (``conv_offset.*``) load too.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation,
        groups, bias: as ``nn.Conv2d``.
        deform_groups (int): deformable groups G (input channels share
            offsets in G blocks).
        impl (str): see :func:`modulated_deform_conv2d`.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: IntPair,
                 stride: IntPair = 1,
                 padding: IntPair = 0,
                 dilation: IntPair = 1,
                 groups: int = 1,
                 deform_groups: int = 1,
                 bias: bool = True,
                 impl: str = 'auto'):
        super().__init__()
        for name, v in (('in_channels', in_channels),
                        ('out_channels', out_channels), ('groups', groups),
                        ('deform_groups', deform_groups)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f'{name} must be a positive int, got {v!r}')
        if in_channels % groups or out_channels % groups:
            raise ValueError(f'in_channels {in_channels} and out_channels '
                             f'{out_channels} must be divisible by groups='
                             f'{groups}')
        if in_channels % deform_groups:
            raise ValueError(f'in_channels {in_channels} must be divisible by '
                             f'deform_groups={deform_groups}')
        if impl not in IMPLS:
            raise ValueError(f'impl must be one of {IMPLS}, got {impl!r}')
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, 'kernel_size')
        self.stride = _pair(stride, 'stride')
        self.padding = _pair(padding, 'padding')
        self.dilation = _pair(dilation, 'dilation')
        self.groups, self.deform_groups = groups, deform_groups
        self.impl = impl
        kh, kw = self.kernel_size
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.conv_offset_mask = nn.Conv2d(
            in_channels,
            3 * deform_groups * kh * kw,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """DCNv2's initialisation: weights U(-1/sqrt(n), 1/sqrt(n)) with
        n = in_channels * kh * kw, zero bias, zero offset/mask conv."""
        n = self.in_channels * self.kernel_size[0] * self.kernel_size[1]
        stdv = 1.0 / math.sqrt(n)
        nn.init.uniform_(self.weight, -stdv, stdv)
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # mmcv's ModulatedDeformConv2dPack calls the same convolution
        # ``conv_offset``; same shape and channel layout.
        for p in ('weight', 'bias'):
            old, new = f'{prefix}conv_offset.{p}', \
                f'{prefix}conv_offset_mask.{p}'
            if old in state_dict and new not in state_dict:
                state_dict[new] = state_dict.pop(old)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, Ho, Wo)."""
        out = self.conv_offset_mask(x)
        n = 2 * self.deform_groups * self.kernel_size[0] * self.kernel_size[1]
        offset, mask = out[:, :n], out[:, n:].sigmoid()
        return modulated_deform_conv2d(x, offset, mask, self.weight,
                                       self.bias, self.stride, self.padding,
                                       self.dilation, self.groups,
                                       self.deform_groups, self.impl)

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, kernel_size='
                f'{self.kernel_size}, stride={self.stride}, padding='
                f'{self.padding}, dilation={self.dilation}, groups='
                f'{self.groups}, deform_groups={self.deform_groups}, '
                f'impl={self.impl!r}')

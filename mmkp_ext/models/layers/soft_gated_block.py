"""Soft-gated residual block of "Toward fast and accurate human pose
estimation via soft-gated skip connections" (Bulat et al., FG 2020).

The residual branch ``F`` is the hierarchical, parallel, multi-scale block of
Bulat & Tzimiropoulos: three pre-activated 3x3 convolutions in a chain, each
one fed by the previous one, whose outputs are concatenated::

    o1 = Conv3x3(ReLU(BN(x)))      C_in   -> C/2
    o2 = Conv3x3(ReLU(BN(o1)))     C/2    -> C/4
    o3 = Conv3x3(ReLU(BN(o2)))     C/4    -> C/4
    F(x) = cat(o1, o2, o3)                   (C channels)

(the convolutions have no bias: a BatchNorm follows each of them before any
non-linearity). The skip connection is gated::

    out = alpha * P(x) + F(x)

with ``P`` a 1x1 convolution when ``C_in != C_out`` (identity otherwise) and
``alpha`` selected by ``gate`` (the paper's ablation):

* ``'channel'`` (the paper's method): a learnable per-channel vector,
  shape ``(1, C, 1, 1)``;
* ``'scalar'``: one learnable scalar for all channels;
* ``'identity'``: the plain residual connection, ``alpha = 1`` fixed;
* ``'none'``: no skip at all, ``out = F(x)``.

Initial value of the gate (``gate_init``): the paper reports that most
learned alphas end near 0 (its Figure 3); the text we worked from does not
state the initial value, and the third-party PyTorch re-implementation
(dkurzend/Soft_Gated_Pose_Estimation_Pytorch) initialises them with zeros,
citing the paper. ``gate_init=0.0`` is therefore the default (at start-up the
block is then a plain ``F(x)``; the gates open where the skip helps); set
``gate_init=1.0`` to start from a residual block.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

__all__ = ['SoftGatedBlock', 'GATE_MODES', 'split_channels']

#: Skip-connection variants of :class:`SoftGatedBlock` (see module doc).
GATE_MODES = ('channel', 'scalar', 'identity', 'none')


def split_channels(channels: int) -> Tuple[int, int, int]:
    """Output channels of the block's three convolutions: ``C/2, C/4, C/4``,
    rounded so that they always sum to ``channels`` (e.g. 30 -> 15, 7, 8).

    Raises:
        ValueError: if ``channels < 4`` (a branch would be empty).
    """
    if int(channels) != channels or channels < 4:
        raise ValueError(
            f'SoftGatedBlock needs out_channels >= 4 (an integer) so that '
            f'each of the three branches gets a channel, got {channels}')
    c1 = channels // 2
    c2 = (channels - c1) // 2
    return c1, c2, channels - c1 - c2


class SoftGatedBlock(nn.Module):
    """Hierarchical multi-scale block with a soft-gated skip connection.

    Args:
        in_channels (int): Channels ``C_in`` of the input.
        out_channels (int): Channels ``C`` of the output (>= 4).
        gate (str): One of :data:`GATE_MODES`. Default ``'channel'``.
        gate_init (float): Initial value of the learnable gate(s) (modes
            ``'channel'`` and ``'scalar'``). Default 0.0 (see module doc).
        momentum (float): BatchNorm momentum. Default 0.1.

    Shapes: input ``(B, C_in, H, W)`` -> output ``(B, C, H, W)``.

    Attributes:
        alpha (nn.Parameter | None): The gate, shape ``(1, C, 1, 1)``
            (``'channel'``), ``(1, 1, 1, 1)`` (``'scalar'``), else None.
        proj (nn.Conv2d | None): The 1x1 projection of the skip, present
            when ``C_in != C`` and the mode has a skip.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 gate: str = 'channel',
                 gate_init: float = 0.0,
                 momentum: float = 0.1):
        super().__init__()
        if gate not in GATE_MODES:
            raise ValueError(f'unknown gate mode {gate!r} for SoftGatedBlock;'
                             f' choose one of {GATE_MODES}')
        if int(in_channels) != in_channels or in_channels < 1:
            raise ValueError(
                f'in_channels must be a positive integer, got {in_channels}')
        widths = split_channels(out_channels)
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.gate = gate
        self.widths = widths

        convs, norms = [], []
        c_prev = self.in_channels
        for c in widths:
            norms.append(nn.BatchNorm2d(c_prev, momentum=momentum))
            convs.append(nn.Conv2d(c_prev, c, 3, padding=1, bias=False))
            c_prev = c
        self.norms = nn.ModuleList(norms)
        self.convs = nn.ModuleList(convs)
        self.relu = nn.ReLU(inplace=False)

        has_skip = gate != 'none'
        self.proj: Optional[nn.Conv2d] = None
        if has_skip and self.in_channels != self.out_channels:
            self.proj = nn.Conv2d(
                self.in_channels, self.out_channels, 1, bias=False)
        if gate == 'channel':
            self.alpha = nn.Parameter(
                torch.full((1, self.out_channels, 1, 1), float(gate_init)))
        elif gate == 'scalar':
            self.alpha = nn.Parameter(
                torch.full((1, 1, 1, 1), float(gate_init)))
        else:
            self.register_parameter('alpha', None)

    def branch(self, x: Tensor) -> Tensor:
        """The residual branch ``F(x)``: ``(B, C_in, H, W)`` ->
        ``(B, C, H, W)``."""
        outs = []
        y = x
        for norm, conv in zip(self.norms, self.convs):
            y = conv(self.relu(norm(y)))
            outs.append(y)
        return torch.cat(outs, dim=1)

    def skip(self, x: Tensor) -> Optional[Tensor]:
        """The gated skip ``alpha * P(x)`` (None in mode ``'none'``)."""
        if self.gate == 'none':
            return None
        s = x if self.proj is None else self.proj(x)
        if self.alpha is not None:
            s = self.alpha * s
        return s

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f'SoftGatedBlock expects input (B, {self.in_channels}, H, W),'
                f' got {tuple(x.shape)}')
        out = self.branch(x)
        s = self.skip(x)
        return out if s is None else out + s

    def extra_repr(self) -> str:
        return (f'{self.in_channels}, {self.out_channels}, gate={self.gate}, '
                f'widths={self.widths}')

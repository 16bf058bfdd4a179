"""Multi-scale deformable attention in pure PyTorch (``grid_sample``), in the
two forms Poseur compares (Mao et al., ECCV 2022, sec. 3.3):

* :class:`EMSDeformAttn` -- Poseur's *efficient* MSDA (EMSDA). The value maps
  are sampled unprojected: every head samples all ``C`` channels at its own
  points, the samples are weighted and summed, and only then a per-head value
  projection ``C -> C / num_heads`` (plus bias) maps the ``Q`` resulting
  vectors. The value projection costs ``O(Q * C^2)`` instead of
  ``O(sum_l H_l W_l * C^2)``.
* :class:`MSDeformAttn` -- Deformable DETR's standard MSDA: an ``nn.Linear``
  projects the whole flattened value map first; each head then samples only
  its ``C / num_heads`` channels.

No compiled op is used (no ``mmcv.ops``): both run on CPU and GPU with any
torch build. Each forward calls ``F.grid_sample`` once per level, with every
query, head and point of that level in one batched call.

Conventions (shared by both classes):

* ``value`` is the concatenation of the ``L`` level maps, each flattened
  row-major (``index = y * W_l + x``) in the order of ``spatial_shapes``.
* ``reference_points`` are normalised ``(x, y)`` in ``[0, 1]`` of the whole
  map (0 = left/top border of the first pixel, 1 = right/bottom border of
  the last one). A point is sampled at ``ref + offset / (W_l, H_l)``, i.e.
  offsets are in pixels of level ``l``; bilinear ``grid_sample`` with zeros
  padding and ``align_corners=False``, so pixel ``(i, j)`` of level ``l``
  has its centre at ``((j + 0.5) / W_l, (i + 0.5) / H_l)``.
* The attention weights are a softmax over the ``L * P`` samples of each head.

Parameter names and shapes (``C = embed_dims``, ``M = num_heads``,
``L = num_levels``, ``P = num_points``, ``d = C // M``), for checkpoint
converters:

* ``sampling_offsets.weight`` ``(M*L*P*2, C)`` and ``.bias`` ``(M*L*P*2,)``:
  output index ``((m*L + l)*P + p)*2 + xy``; the bias holds the radial grid.
* ``attention_weights.weight`` ``(M*L*P, C)`` and ``.bias`` ``(M*L*P,)``:
  output index ``(m*L + l)*P + p``.
* ``output_proj.weight`` ``(C, C)``, ``output_proj.bias`` ``(C,)``.
* EMSDA only: ``value_proj_weight`` ``(M*C, d)`` (row ``m*C + c`` = input
  channel ``c`` of head ``m``) and ``value_proj_bias`` ``(M, d)``.
* MSDA only: ``value_proj.weight`` ``(C, C)`` (``nn.Linear``: out, in) and
  ``value_proj.bias`` ``(C,)``.

The EMSDA projection of head ``m`` is ``y_m = x_m @ W_m + b_m`` with
``W_m = value_proj_weight[m*C:(m+1)*C]`` (``C x d``, input rows) and
``b_m = value_proj_bias[m]``; the head outputs are concatenated in head
order. This is exactly the layout of the official Poseur checkpoints'
``...attentions.1.value_proj_weight.weight`` (an ``nn.Embedding(8*256, 32)``)
and ``...value_proj_bias.weight`` (``nn.Embedding(8, 32)``): a converter only
drops the trailing ``.weight`` of those two keys, no reshape or transpose.
The same function as an MSDA ``value_proj`` (``nn.Linear``) has
``value_proj.weight[m*d:(m+1)*d] = W_m.T`` and
``value_proj.bias = b.flatten()``.
"""
import math
from numbers import Integral
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ['EMSDeformAttn', 'MSDeformAttn']


def _is_int(v) -> bool:
    """A Python int, or a 0-d integer tensor (what ``Tensor.shape`` yields
    while a model is traced, e.g. by mmengine's FLOP counter)."""
    if isinstance(v, Tensor):
        return v.dim() == 0 and not v.is_floating_point() and \
            v.dtype != torch.bool
    return isinstance(v, Integral) and not isinstance(v, bool)


class _DeformAttnBase(nn.Module):
    """Shared parameters, argument checks and sampling-location maths."""

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 4,
                 num_points: int = 4,
                 dropout: float = 0.1):
        super().__init__()
        for name, val in (('embed_dims', embed_dims),
                          ('num_heads', num_heads),
                          ('num_levels', num_levels),
                          ('num_points', num_points)):
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise ValueError(f'{name} must be a positive int, got {val!r}')
        if embed_dims % num_heads != 0:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible by '
                             f'num_heads ({num_heads})')
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f'dropout must be in [0, 1), got {dropout!r}')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.head_dims = embed_dims // num_heads
        self.sampling_offsets = nn.Linear(
            embed_dims, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(
            embed_dims, num_heads * num_levels * num_points)
        self.output_proj = nn.Linear(embed_dims, embed_dims)
        self.dropout = nn.Dropout(float(dropout))

    def _init_common(self) -> None:
        """Deformable-DETR init: zero offset weights and a radial bias (head
        ``m`` points along angle ``2 pi m / M``, scaled so the larger
        component is 1, times ``p + 1`` for point ``p``, the same on every
        level); zero attention weights and bias (uniform softmax); xavier
        output projection with zero bias."""
        nn.init.zeros_(self.sampling_offsets.weight)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (
            2.0 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        scale = torch.arange(1, self.num_points + 1, dtype=torch.float32)
        grid = grid[:, None, None, :] * scale[None, None, :, None]
        grid = grid.expand(self.num_heads, self.num_levels, self.num_points,
                           2)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def _check_inputs(self, query: Tensor, value: Tensor,
                      reference_points: Tensor,
                      spatial_shapes: Union[Tensor, Sequence],
                      query_pos: Optional[Tensor],
                      identity: Optional[Tensor]) -> list:
        """Validate shapes; return the level shapes as ``[(H_l, W_l), ...]``
        (Python ints: they size the per-level splits)."""
        C, L = self.embed_dims, self.num_levels
        if query.dim() != 3 or query.shape[-1] != C:
            raise ValueError(f'query must have shape (B, Q, {C}), got '
                             f'{tuple(query.shape)}')
        B, Q = query.shape[:2]
        if value.dim() != 3 or value.shape[0] != B or value.shape[-1] != C:
            raise ValueError(f'value must have shape ({B}, N, {C}) to match '
                             f'query, got {tuple(value.shape)}')
        if isinstance(spatial_shapes, Tensor):
            if spatial_shapes.dim() != 2 or \
                    spatial_shapes.shape != (L, 2) or \
                    spatial_shapes.is_floating_point():
                raise ValueError(
                    f'spatial_shapes must be an integer tensor of shape '
                    f'({L}, 2) = num_levels x (H_l, W_l), got '
                    f'{spatial_shapes.dtype} {tuple(spatial_shapes.shape)}')
            hw = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
        else:
            # Python ints stay Python ints (no tensor round trip): what
            # graph exporters such as torch.onnx's dynamo path need.
            hw = [tuple(s) for s in spatial_shapes]
            if len(hw) != L or any(
                    len(s) != 2 or not all(_is_int(v) for v in s)
                    for s in hw):
                raise ValueError(
                    f'spatial_shapes must be {L} (H_l, W_l) pairs of ints '
                    f'(or an integer tensor of shape ({L}, 2)), got '
                    f'{spatial_shapes!r}')
            hw = [(int(h), int(w)) for h, w in hw]
        if any(h < 1 or w < 1 for h, w in hw):
            raise ValueError(f'spatial_shapes must be positive, got {hw}')
        num_value = sum(h * w for h, w in hw)
        if value.shape[1] != num_value:
            raise ValueError(f'value has {value.shape[1]} positions but '
                             f'spatial_shapes {hw} sum to {num_value}')
        rp = reference_points
        if not ((rp.dim() == 3 and tuple(rp.shape) == (B, Q, 2)) or
                (rp.dim() == 4 and tuple(rp.shape) == (B, Q, L, 2))):
            raise ValueError(f'reference_points must have shape ({B}, {Q}, 2)'
                             f' or ({B}, {Q}, {L}, 2), got {tuple(rp.shape)}')
        for name, t in (('query_pos', query_pos), ('identity', identity)):
            if t is not None and t.shape != query.shape:
                raise ValueError(f'{name} must have the shape of query '
                                 f'{tuple(query.shape)}, got {tuple(t.shape)}')
        return hw

    def _locations(self, query: Tensor, reference_points: Tensor,
                   hw: list) -> tuple:
        """Sampling grids in ``grid_sample``'s [-1, 1] units and softmaxed
        weights. Returns ``grid`` (B, Q, M, L, P, 2) as (x, y) and ``attn``
        (B, Q, M, L * P)."""
        B, Q, _ = query.shape
        M, L, P = self.num_heads, self.num_levels, self.num_points
        offsets = self.sampling_offsets(query).view(B, Q, M, L, P, 2)
        attn = self.attention_weights(query).view(B, Q, M, L * P)
        attn = attn.softmax(-1)
        # Locations in at least float32: under half-precision autocast the
        # offsets are bf16/fp16, whose rounding of ref (~1e-3) would be
        # ~0.1 px on a 64-px level.
        dtype = torch.promote_types(
            torch.promote_types(offsets.dtype, reference_points.dtype),
            torch.float32)
        # (W_l, H_l) per level: offsets are in pixels of their level.
        norm = torch.tensor([[w, h] for h, w in hw], dtype=dtype,
                            device=offsets.device)
        if reference_points.dim() == 3:
            ref = reference_points[:, :, None, None, None, :]
        else:
            ref = reference_points[:, :, None, :, None, :]
        loc = ref.to(dtype) + offsets.to(dtype) / norm[None, None, None, :,
                                                       None, :]
        return 2.0 * loc - 1.0, attn

    def _finish(self, out: Tensor, query: Tensor,
                identity: Optional[Tensor]) -> Tensor:
        identity = query if identity is None else identity
        return identity + self.dropout(self.output_proj(out))


class EMSDeformAttn(_DeformAttnBase):
    """Poseur's efficient multi-scale deformable attention (EMSDA).

    Args:
        embed_dims (int): channels ``C`` of query and value. Default 256.
        num_heads (int): heads ``M``; ``C`` must be divisible by it.
        num_levels (int): feature levels ``L``.
        num_points (int): sampling points ``P`` per head and level.
        dropout (float): dropout on the output projection before the
            residual addition.

    Parameters (see the module docstring for the index layout):
    ``sampling_offsets``, ``attention_weights``, ``output_proj``
    (``nn.Linear``), ``value_proj_weight`` ``(M*C, C//M)`` and
    ``value_proj_bias`` ``(M, C//M)`` (``nn.Parameter``).
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 4,
                 num_points: int = 4,
                 dropout: float = 0.1):
        super().__init__(embed_dims, num_heads, num_levels, num_points,
                         dropout)
        self.value_proj_weight = nn.Parameter(
            torch.empty(num_heads * embed_dims, self.head_dims))
        self.value_proj_bias = nn.Parameter(
            torch.empty(num_heads, self.head_dims))
        self.init_weights()

    def init_weights(self) -> None:
        """Deformable-DETR init (see ``_init_common``) plus, per head, a
        xavier-uniform ``C -> C//M`` value projection and zero bias. (The
        official code leaves its ``nn.Embedding`` default N(0, 1) init
        here; the published checkpoints overwrite it anyway.)"""
        self._init_common()
        C, d = self.embed_dims, self.head_dims
        bound = math.sqrt(6.0 / (C + d))
        nn.init.uniform_(self.value_proj_weight, -bound, bound)
        nn.init.zeros_(self.value_proj_bias)

    def forward(self,
                query: Tensor,
                value: Tensor,
                reference_points: Tensor,
                spatial_shapes: Union[Tensor, Sequence],
                query_pos: Optional[Tensor] = None,
                identity: Optional[Tensor] = None) -> Tensor:
        """Attend from ``Q`` queries to the multi-level value map.

        Args:
            query (Tensor): (B, Q, C) query content.
            value (Tensor): (B, sum_l H_l*W_l, C) flattened level maps.
            reference_points (Tensor): (B, Q, 2) or (B, Q, L, 2), normalised
                (x, y) in [0, 1].
            spatial_shapes (Tensor | Sequence): (L, 2) integer tensor of
                (H_l, W_l), or L pairs of Python ints (export friendly).
            query_pos (Tensor, optional): (B, Q, C) added to the query to
                predict offsets and weights.
            identity (Tensor, optional): (B, Q, C) residual; default
                ``query`` (without ``query_pos``).

        Returns:
            Tensor: (B, Q, C) ``identity + dropout(output_proj(out))``.
        """
        hw = self._check_inputs(query, value, reference_points,
                                spatial_shapes, query_pos, identity)
        q = query if query_pos is None else query + query_pos
        B, Q, C = query.shape
        M, L, P, d = (self.num_heads, self.num_levels, self.num_points,
                      self.head_dims)
        grid, attn = self._locations(q, reference_points, hw)
        dtype = torch.promote_types(value.dtype, grid.dtype)
        # (B, C, N) view of value (channels-last strides), shared by all
        # heads.
        value_t = value.transpose(1, 2).to(dtype)
        # (L, B, Q*M, P, 2): one contiguous grid per level (a strided grid
        # makes CPU grid_sample several times slower).
        grid = grid.permute(3, 0, 1, 2, 4, 5).reshape(
            L, B, Q * M, P, 2).to(dtype).contiguous()
        # (L, B, Q*M, 1, P): contiguous row vectors per level.
        attn = attn.view(B, Q * M, L, P).permute(2, 0, 1, 3).to(
            dtype).contiguous()[..., None, :]
        mixed = 0
        start = 0
        for lvl, (h, w) in enumerate(hw):
            # A view with channels-last strides (grid_sample's fast layout
            # on CPU), no copy.
            v_l = value_t[:, :, start:start + h * w].reshape(B, C, h, w)
            start += h * w
            # All Q*M*P points of this level in one call.
            s_l = F.grid_sample(v_l, grid[lvl], mode='bilinear',
                                padding_mode='zeros', align_corners=False)
            # Weighted sum over this level's P samples: (B, Q*M, C).
            # matmul, not einsum: exact FLOP counts (mmengine's einsum count
            # is rounded) and no concatenation of the levels.
            mixed = mixed + torch.matmul(attn[lvl], s_l.permute(
                0, 2, 3, 1)).squeeze(-2)
        # Per-head value projection of the Q*M mixed vectors only.
        mixed = mixed.reshape(B, Q, M, C).transpose(1, 2)  # (B, M, Q, C)
        weight = self.value_proj_weight.view(M, C, d).to(mixed.dtype)
        out = torch.matmul(mixed, weight)  # (B, M, Q, d)
        out = out + self.value_proj_bias.to(out.dtype)[None, :, None, :]
        out = out.transpose(1, 2).reshape(B, Q, M * d)
        return self._finish(out.to(query.dtype), query, identity)


class MSDeformAttn(_DeformAttnBase):
    """Standard multi-scale deformable attention (Deformable DETR), pure
    PyTorch: ``value_proj`` (``nn.Linear(C, C)``) maps the whole value map,
    then head ``m`` samples channels ``m*d:(m+1)*d``.

    Same arguments, forward signature and conventions as
    :class:`EMSDeformAttn`; parameters ``sampling_offsets``,
    ``attention_weights``, ``value_proj``, ``output_proj``.
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 4,
                 num_points: int = 4,
                 dropout: float = 0.1):
        super().__init__(embed_dims, num_heads, num_levels, num_points,
                         dropout)
        self.value_proj = nn.Linear(embed_dims, embed_dims)
        self.init_weights()

    def init_weights(self) -> None:
        """Deformable-DETR init (see ``_init_common``) plus a xavier-uniform
        ``value_proj`` with zero bias."""
        self._init_common()
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)

    def forward(self,
                query: Tensor,
                value: Tensor,
                reference_points: Tensor,
                spatial_shapes: Union[Tensor, Sequence],
                query_pos: Optional[Tensor] = None,
                identity: Optional[Tensor] = None) -> Tensor:
        """Same arguments and result as :meth:`EMSDeformAttn.forward`."""
        hw = self._check_inputs(query, value, reference_points,
                                spatial_shapes, query_pos, identity)
        q = query if query_pos is None else query + query_pos
        B, Q, C = query.shape
        M, L, P, d = (self.num_heads, self.num_levels, self.num_points,
                      self.head_dims)
        grid, attn = self._locations(q, reference_points, hw)
        value = self.value_proj(value)  # the O(N * C^2) step EMSDA avoids
        dtype = torch.promote_types(value.dtype, grid.dtype)
        # (B*M, d, N) with channels-last strides: each head's channels as
        # its own map.
        value_t = value.view(B, -1, M, d).transpose(1, 2).reshape(
            B * M, -1, d).transpose(1, 2).to(dtype)
        # (L, B*M, Q, P, 2): heads folded into the batch, one contiguous
        # grid per level.
        grid = grid.permute(3, 0, 2, 1, 4, 5).reshape(
            L, B * M, Q, P, 2).to(dtype).contiguous()
        # (L, B*M, Q, 1, P): contiguous row vectors per level.
        attn = attn.view(B, Q, M, L, P).permute(3, 0, 2, 1, 4).reshape(
            L, B * M, Q, 1, P).to(dtype).contiguous()
        out = 0
        start = 0
        for lvl, (h, w) in enumerate(hw):
            v_l = value_t[:, :, start:start + h * w].reshape(B * M, d, h, w)
            start += h * w
            s_l = F.grid_sample(v_l, grid[lvl], mode='bilinear',
                                padding_mode='zeros', align_corners=False)
            # (B*M, d, Q, P) -> weighted sum over P: (B*M, Q, d).
            out = out + torch.matmul(attn[lvl], s_l.permute(
                0, 2, 3, 1)).squeeze(-2)
        out = out.reshape(B, M, Q, d).transpose(1, 2).reshape(B, Q, M * d)
        return self._finish(out.to(query.dtype), query, identity)

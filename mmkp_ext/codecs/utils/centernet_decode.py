"""Decode kernels of the grouped-CenterNet codec (torch, batched over images,
objects and keypoints, in bounded-memory chunks): the non-finite guard, the
lazily activated heatmap, 3x3 local maxima, the exact Gaussian-rescored
argmax and CenterNet's nearest-peak snapping. Used by
:meth:`mmkp_ext.codecs.GroupedCenterNetLabel.batch_decode`."""
import math
import warnings
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    'NO_EVIDENCE_LOGIT', 'finite_outputs', 'Heatmap', 'local_max',
    'chunk_slices', 'rescore_cells', 'values_at_cells', 'nearest_peaks'
]

#: Logit standing for "no evidence" (sigmoid 0 in float32; logsigmoid
#: finite) in place of a non-finite heatmap value.
NO_EVIDENCE_LOGIT = -1e4


def finite_outputs(outputs: Dict[str, Tensor], logits: bool
                    ) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
    """Float32 copies of the head outputs with non-finite values replaced,
    and where they were.

    Heatmap values become "no evidence" (probability 0: logit
    ``NO_EVIDENCE_LOGIT``, or 0 for probabilities), everything else 0.
    One ``UserWarning`` names every output holding non-finite values with
    their count.

    Returns:
        tuple: the outputs (``(B, ch, H, W)`` float32) and, only for outputs
        with non-finite values, ``(B, ch, H*W)`` bool masks of them.
    """
    fixed, bad, counts = {}, {}, []
    for key, value in outputs.items():
        value = value.float()
        # fast path: a sum is finite iff no value is NaN / inf (or it
        # overflows, which only sends it down the exact path)
        if bool(torch.isfinite(value.sum())):
            fixed[key] = value
            continue
        ok = torch.isfinite(value)
        n_bad = value.numel() - int(ok.sum())
        if n_bad:
            fill = 0.0
            if key in ('center_heatmap', 'keypoint_heatmap') and logits:
                fill = NO_EVIDENCE_LOGIT
            value = torch.where(ok, value, value.new_tensor(fill))
            bad[key] = ~ok.flatten(2)
            counts.append(f'{key}: {n_bad} non-finite of {value.numel()}')
        fixed[key] = value
    if counts:
        warnings.warn(
            'GroupedCenterNetLabel decode: non-finite head outputs ('
            + '; '.join(counts) + '); keypoints and objects that read them '
            'get score 0 (heatmap values count as probability 0, offsets, '
            'sizes and regressions as 0; a keypoint without a finite '
            'regression is placed at its object\'s centre)',
            stacklevel=3)
    return fixed, bad


class Heatmap:
    """A ``(B, G, H, W)`` heatmap held raw (logits or probabilities) with
    the activation applied only to gathered values."""

    def __init__(self, raw: Tensor, logits: bool):
        self.raw = raw
        self.logits = logits
        self.shape = raw.shape

    def prob(self, v: Tensor) -> Tensor:
        return torch.sigmoid(v) if self.logits else v.clamp_min(0)

    def log_prob(self, v: Tensor) -> Tensor:
        if self.logits:
            return F.logsigmoid(v)
        return v.clamp_min(1e-30).log()


def local_max(x: Tensor) -> Tensor:
    """``x == maxpool3x3(x)`` (stride 1, -inf padding) as a bool tensor.

    Two 1-D max-pools (rows, then columns): several times faster on CPU
    than ``F.max_pool2d`` for hundreds of channels, same result.
    """
    B, C, H, W = x.shape
    rows = F.max_pool1d(x.reshape(-1, 1, W), 3, 1, 1).view(B, C, H, W)
    both = F.max_pool1d(rows.transpose(2, 3).reshape(-1, 1, H), 3, 1,
                        1).view(B, C, W, H)
    return both.transpose(2, 3) == x


def chunk_slices(num: int, per_item: int,
                 chunk_elements: int) -> List[slice]:
    """Slices of ``range(num)`` holding about ``chunk_elements`` elements
    of ``per_item`` each."""
    step = max(1, chunk_elements // max(1, per_item))
    return [slice(i, min(i + step, num)) for i in range(0, num, step)]

def rescore_cells(hm: 'Heatmap', coarse: Tensor, channel: Tensor,
                  sigma: float, window: float, candidates: int,
                  chunk_elements: int) -> Tuple[Tensor, Tensor]:
    """Exact Gaussian-rescored argmax cell of every query.

    Maximises ``log h(p) - |p + 0.5 - c|^2 / (2 sigma^2)`` (the log of
    ``h * mask``; no underflow for far coarse points; ``p + 0.5`` is the
    centre of cell ``p``) over the cells ``p`` of channel ``channel``
    for the coarse point ``c``. Candidates:
    the ``(2R+1)^2`` window around ``round(c)`` (``R = ceil(window *
    sigma)``) and the channel's ``T = candidates`` highest cells.
    Any other cell is at least ``R + 0.5`` from ``c`` and at most the
    ``T``-th highest value, so it cannot beat ``log h_T - (R + 0.5)^2 /
    (2 sigma^2)``; queries whose best candidate falls below that bound
    are redone over the whole map. The result is the exact argmax.

    Args:
        hm: keypoint heatmap ``(B, G, H, W)``.
        coarse (Tensor): ``(B, N, S, 2)`` coarse points, output px.
        channel (Tensor): ``(B, N, S)`` heatmap channel per query.
        chunk_elements: bound on the elements processed at once.

    Returns:
        tuple: integer cells ``x``, ``y``, each ``(B, N, S)`` int64.
    """
    B, G, H, W = hm.shape
    N, S = coarse.shape[1:3]
    HW = H * W
    device = coarse.device
    inv2s2 = 1.0 / (2 * sigma * sigma)
    # Cell (i, j) stands for the points of [j, j + 1) x [i, i + 1) (a
    # keypoint's peak sits in cell floor(kp)), so distances are measured
    # to cell centres: shifting the coarse point by -0.5 lets integer
    # cell indices stand for those centres below. Keep rounding and
    # index arithmetic finite for wild regressions.
    coarse = (coarse.nan_to_num(0.0) - 0.5).clamp(-4.0 * max(H, W),
                                                  5.0 * max(H, W))
    best_x = torch.zeros(B, N, S, dtype=torch.long, device=device)
    best_y = torch.zeros_like(best_x)
    R = int(math.ceil(window * sigma))
    L = 2 * R + 1
    T = min(candidates, HW)
    if L * L + T < HW:
        top_raw, top_idx = hm.raw.view(B, G, HW).topk(T)
        top_log = hm.log_prob(top_raw)  # (B, G, T) descending
        top_x = (top_idx % W).float()
        top_y = (top_idx // W).float()
        best = torch.empty(B, N, S, device=device)
        offs = torch.arange(-R, R + 1, device=device)
        flat_raw = hm.raw.view(B, G * HW)
        for sl in chunk_slices(N, B * S * (L * L + T), chunk_elements):
            c = coarse[:, sl]
            ch = channel[:, sl]
            n = ch.shape[1]
            # window candidates
            wx = c[..., 0].round().long()[..., None] + offs  # (B,n,S,L)
            wy = c[..., 1].round().long()[..., None] + offs
            gx = -(wx - c[..., 0, None])**2 * inv2s2
            gy = -(wy - c[..., 1, None])**2 * inv2s2
            gx = gx.masked_fill((wx < 0) | (wx >= W), -math.inf)
            gy = gy.masked_fill((wy < 0) | (wy >= H), -math.inf)
            flat = (
                ch[..., None, None] * HW +
                wy.clamp(0, H - 1)[..., :, None] * W +
                wx.clamp(0, W - 1)[..., None, :])
            vals = hm.log_prob(flat_raw.gather(1, flat.view(B, -1)))
            score = (
                vals.view(B, n, S, L, L) + gy[..., :, None] +
                gx[..., None, :])
            w_best, w_arg = score.view(B, n, S, L * L).max(-1)
            w_x = wx.gather(-1, (w_arg % L)[..., None])[..., 0]
            w_y = wy.gather(-1, (w_arg // L)[..., None])[..., 0]
            # the channel's T highest cells
            idx = ch.reshape(B, n * S, 1).expand(-1, -1, T)
            tx = top_x.gather(1, idx).view(B, n, S, T)
            ty = top_y.gather(1, idx).view(B, n, S, T)
            t_score = (
                top_log.gather(1, idx).view(B, n, S, T) -
                ((tx - c[..., 0, None])**2 +
                 (ty - c[..., 1, None])**2) * inv2s2)
            t_best, t_arg = t_score.max(-1)
            use_t = t_best > w_best
            best[:, sl] = torch.maximum(w_best, t_best)
            best_x[:, sl] = torch.where(
                use_t,
                tx.gather(-1, t_arg[..., None])[..., 0].long(), w_x)
            best_y[:, sl] = torch.where(
                use_t,
                ty.gather(-1, t_arg[..., None])[..., 0].long(), w_y)
        bound = (
            top_log[..., -1].gather(1, channel.view(B, -1)).view(B, N, S) -
            (R + 0.5)**2 * inv2s2)
        redo = ~(best >= bound)
    else:
        redo = torch.ones(B, N, S, dtype=torch.bool, device=device)

    if redo.any():
        b, n, s = torch.nonzero(redo, as_tuple=True)
        q_ch = channel[b, n, s]
        q_c = coarse[b, n, s]  # (Q, 2)
        cols = torch.arange(W, device=device, dtype=torch.float32)
        rows = torch.arange(H, device=device, dtype=torch.float32)
        for sl in chunk_slices(b.numel(), HW, chunk_elements):
            gx = -(cols - q_c[sl, 0, None])**2 * inv2s2  # (q, W)
            gy = -(rows - q_c[sl, 1, None])**2 * inv2s2  # (q, H)
            score = (
                hm.log_prob(hm.raw[b[sl], q_ch[sl]]) + gy[:, :, None] +
                gx[:, None, :])
            arg = score.view(-1, HW).argmax(-1)
            best_x[b[sl], n[sl], s[sl]] = arg % W
            best_y[b[sl], n[sl], s[sl]] = arg // W
    return best_x, best_y

def values_at_cells(hm: 'Heatmap', offset: Tensor, channel: Tensor,
                    x: Tensor, y: Tensor) -> Tuple[Tensor, Tensor]:
    """Keypoint = integer cell ``(x, y)`` + keypoint offset there (offset
    ``(B, 2, HW)``); score = heatmap of the query's channel there."""
    B, G, H, W = hm.shape
    cell = y * W + x
    flat_cell = cell.view(B, -1)
    ox = offset[:, 0].gather(1, flat_cell).view_as(cell)
    oy = offset[:, 1].gather(1, flat_cell).view_as(cell)
    score = hm.prob(
        hm.raw.view(B, G * H * W).gather(1, (channel * H * W + cell).view(
            B, -1))).view_as(cell)
    kp = torch.stack([x.float() + ox, y.float() + oy], dim=-1)
    return kp, score

def nearest_peaks(hm: 'Heatmap', offset: Tensor, coarse: Tensor,
                  channel: Tensor, boxes: Tensor, topk: int,
                  score_thr: float, dist_ratio: float,
                  chunk_elements: int) -> Tuple[Tensor, Tensor, Tensor]:
    """CenterNet's snapping to the nearest heatmap peak (see
    :meth:`~mmkp_ext.codecs.GroupedCenterNetLabel.batch_decode`): among the
    ``topk`` NMS peaks of the query's channel scoring at least
    ``score_thr``, the nearest; the coarse point is kept when none exists,
    when it lies outside the box or farther than ``dist_ratio * max(w,
    h)``. ``coarse`` ``(B, N, S, 2)``, ``channel`` ``(B, N, S)``, ``boxes``
    ``(B, N, 4)`` in output pixels, ``offset`` ``(B, 2, HW)``. Returns
    keypoints ``(B, N, S, 2)``, scores ``(B, N, S)`` and the flat cell whose
    keypoint offset was used ``(B, N, S)`` int64, -1 where the coarse point
    was kept."""
    B, G, H, W = hm.shape
    N, S = coarse.shape[1:3]
    HW = H * W
    T = min(topk, HW)
    # NMS + top-T per channel, in channel chunks: bounded memory.
    p_raw = hm.raw.new_empty(B, G, T)
    p_idx = torch.empty(B, G, T, dtype=torch.long, device=coarse.device)
    for sl in chunk_slices(G, B * HW, chunk_elements):
        raw = hm.raw[:, sl]
        raw = raw.masked_fill(~local_max(raw), -math.inf)
        p_raw[:, sl], p_idx[:, sl] = raw.flatten(2).topk(T)
    p_score = hm.prob(p_raw)
    p_x = (p_idx % W).float() + offset[:, 0].gather(1, p_idx.view(
        B, -1)).view(B, G, T)
    p_y = (p_idx // W).float() + offset[:, 1].gather(1, p_idx.view(
        B, -1)).view(B, G, T)
    p_score = p_score.masked_fill(p_score < score_thr, -1.0)

    kp = torch.empty_like(coarse)
    score = torch.empty(B, N, S, device=coarse.device)
    used = torch.empty(B, N, S, dtype=torch.long, device=coarse.device)
    for sl in chunk_slices(N, B * S * T, chunk_elements):
        ch = channel[:, sl]  # (B, n, S)
        n = ch.shape[1]
        idx = ch.reshape(B, n * S, 1).expand(-1, -1, T)
        qx = p_x.gather(1, idx).view(B, n, S, T)
        qy = p_y.gather(1, idx).view(B, n, S, T)
        qs = p_score.gather(1, idx).view(B, n, S, T)
        c = coarse[:, sl]
        dist = torch.hypot(qx - c[..., 0, None], qy - c[..., 1, None])
        dist = dist.masked_fill(qs < 0, math.inf)
        d_min, arg = dist.min(-1)
        sel_x = qx.gather(-1, arg[..., None])[..., 0]
        sel_y = qy.gather(-1, arg[..., None])[..., 0]
        sel_s = qs.gather(-1, arg[..., None])[..., 0]
        sel_cell = p_idx.gather(1, idx).view(B, n, S, T).gather(
            -1, arg[..., None])[..., 0]
        box = boxes[:, sl, None, :]  # (B, n, 1, 4)
        size = torch.maximum(box[..., 2] - box[..., 0],
                             box[..., 3] - box[..., 1])
        keep_coarse = (~torch.isfinite(d_min) | (sel_x < box[..., 0])
                       | (sel_x > box[..., 2]) | (sel_y < box[..., 1])
                       | (sel_y > box[..., 3])
                       | (d_min > dist_ratio * size))
        kp[:, sl] = torch.where(keep_coarse[..., None], c,
                                torch.stack([sel_x, sel_y], -1))
        # score of a kept coarse point: heatmap at its cell (0 outside)
        cx = c[..., 0].nan_to_num(-1.0).floor()
        cy = c[..., 1].nan_to_num(-1.0).floor()
        inside = (cx >= 0) & (cx < W) & (cy >= 0) & (cy < H)
        cell = (cy.clamp(0, H - 1) * W + cx.clamp(0, W - 1)).long()
        h_at = hm.prob(
            hm.raw.view(B, G * HW).gather(1, (ch * HW + cell).view(
                B, -1))).view(B, n, S)
        score[:, sl] = torch.where(keep_coarse, h_at * inside, sel_s)
        used[:, sl] = sel_cell.masked_fill(keep_coarse, -1)
    return kp, score, used

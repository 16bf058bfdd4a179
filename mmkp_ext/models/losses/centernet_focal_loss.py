"""CenterNet's penalty-reduced focal loss on heatmap logits, with the
per-sample channel mask of the grouped-CenterNet paper ("modified loss").

With ``p = sigmoid(logits)`` clamped to ``[1e-4, 1 - 1e-4]`` and ``gt`` a
heatmap in ``[0, 1]`` whose positives are exactly 1::

    pos = sum_{gt == 1} log(p) * (1 - p)^2
    neg = sum_{gt < 1}  log(1 - p) * p^2 * (1 - gt)^4
    loss = -(pos + neg) / num_pos      (num_pos = #{gt == 1})
    loss = -neg                        when num_pos == 0

With a ``channel_mask`` of shape ``(B, C)`` only the unmasked channels of each
sample enter both sums and ``num_pos``.
"""
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpose.registry import MODELS

__all__ = ['CenterNetFocalLoss']

#: CenterNet clamps probabilities to [1e-4, 1 - 1e-4]; clamping the logits
#: at logit(1 - 1e-4) is the same thing and keeps log-sigmoid stable.
_P_EPS = 1e-4
_LOGIT_CLAMP = math.log((1 - _P_EPS) / _P_EPS)


@MODELS.register_module()
class CenterNetFocalLoss(nn.Module):
    """Penalty-reduced pixel-wise focal loss (CenterNet) on logits.

    Args:
        alpha (float): Exponent of the ``(1 - p)`` / ``p`` modulating
            factors (CenterNet: 2).
        beta (float): Exponent of the ``(1 - gt)`` penalty reduction of
            negatives (CenterNet: 4).
        loss_weight (float): Factor on the returned loss.
    """

    def __init__(self,
                 alpha: float = 2.0,
                 beta: float = 4.0,
                 loss_weight: float = 1.0):
        super().__init__()
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.loss_weight = float(loss_weight)

    def forward(self,
                logits: Tensor,
                gt: Tensor,
                channel_mask: Optional[Tensor] = None) -> Tensor:
        """Focal loss of a batch of heatmaps.

        Args:
            logits (Tensor): ``(B, C, H, W)`` raw outputs (before sigmoid).
            gt (Tensor): ``(B, C, H, W)`` target heatmaps in ``[0, 1]``;
                pixels equal to 1 are the positives.
            channel_mask (Tensor, optional): ``(B, C)`` bool / {0, 1}: which
                channels of each sample count. ``None``: all.

        Returns:
            Tensor: scalar, ``loss_weight`` times the formula of the module
            docstring, summed over the batch (one ``num_pos`` for the whole
            batch, as CenterNet does).
        """
        if logits.shape != gt.shape or logits.dim() != 4:
            raise ValueError('logits and gt must have the same (B, C, H, W) '
                             f'shape, got {tuple(logits.shape)} and '
                             f'{tuple(gt.shape)}')
        gt = gt.to(logits.dtype)
        # Clamping the logit is exactly clamping p = sigmoid(logit) to
        # [1e-4, 1-1e-4] (sigmoid is monotonic), with the same zero gradient
        # outside as CenterNet's clamped sigmoid.
        x = logits.clamp(-_LOGIT_CLAMP, _LOGIT_CLAMP)
        log_p = F.logsigmoid(x)
        log_1mp = F.logsigmoid(-x)
        p = torch.sigmoid(x)

        pos = gt.eq(1).to(x.dtype)
        neg = gt.lt(1).to(x.dtype)
        if channel_mask is not None:
            if channel_mask.shape != logits.shape[:2]:
                raise ValueError(f'channel_mask must have shape (B, C) = '
                                 f'{tuple(logits.shape[:2])}, got '
                                 f'{tuple(channel_mask.shape)}')
            m = channel_mask.to(x.dtype)[:, :, None, None]
            pos = pos * m
            neg = neg * m

        pos_loss = (log_p * (1 - p).pow(self.alpha) * pos).sum()
        neg_loss = (log_1mp * p.pow(self.alpha) * (1 - gt).pow(self.beta) *
                    neg).sum()
        num_pos = pos.sum()
        if num_pos > 0:
            loss = -(pos_loss + neg_loss) / num_pos
        else:
            loss = -neg_loss
        return loss * self.loss_weight

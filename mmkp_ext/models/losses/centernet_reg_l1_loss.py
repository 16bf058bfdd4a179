"""Masked L1 loss of CenterNet's sparse regression targets.

``loss = loss_weight * sum(|pred - gt| * mask) / (sum(mask) + 1e-4)``

mmpose's ``L1Loss`` divides by the number of elements (``reduction='mean'``)
or not at all (``'sum'``), never by the mask sum, hence this loss.
"""
from typing import Optional

import torch
from torch import Tensor, nn

from mmpose.registry import MODELS

__all__ = ['CenterNetRegL1Loss']


@MODELS.register_module()
class CenterNetRegL1Loss(nn.Module):
    """L1 loss normalised by the mask sum (CenterNet's ``RegL1Loss``).

    Args:
        loss_weight (float): Factor on the returned loss.
        eps (float): Added to the mask sum (CenterNet: 1e-4), so an all-zero
            mask gives a zero loss.
    """

    def __init__(self, loss_weight: float = 1.0, eps: float = 1e-4):
        super().__init__()
        self.loss_weight = float(loss_weight)
        self.eps = float(eps)

    def forward(self,
                pred: Tensor,
                target: Tensor,
                mask: Optional[Tensor] = None) -> Tensor:
        """Masked, mask-normalised L1 loss.

        Args:
            pred (Tensor): predictions, any shape.
            target (Tensor): targets, same shape as ``pred``.
            mask (Tensor, optional): weights (usually {0, 1}) broadcastable
                to ``pred``; counted once per broadcast element. ``None``:
                all ones.

        Returns:
            Tensor: scalar loss. Masked-out elements contribute nothing even
            if their target is NaN or inf.
        """
        if pred.shape != target.shape:
            raise ValueError('pred and target must have the same shape, got '
                             f'{tuple(pred.shape)} and {tuple(target.shape)}')
        target = target.to(pred.dtype)
        if mask is None:
            mask = torch.ones_like(pred)
        else:
            mask = mask.to(pred.dtype).expand_as(pred)
        diff = (pred - target).abs() * mask
        # 0 * nan is nan: zero the masked-out elements explicitly.
        diff = torch.where(mask != 0, diff, torch.zeros_like(diff))
        loss = diff.sum() / (mask.sum() + self.eps)
        return loss * self.loss_weight

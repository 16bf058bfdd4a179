"""Scale- and weight-adaptive heatmap regression loss (SWAHR, CVPR 2021;
formulas in ``shared/specs/swahr.md``).

Per resolution, with gt heatmap ``H``, prediction ``P``, raw scale-branch
output ``s`` and ignore mask ``M`` (1 = use the pixel, broadcast over the
keypoint channels):

- ``a = s * [H > 0]`` (the scale map only counts where a target exists,
  as in the authors' code);
- scale-adaptive target, second-order Taylor expansion of ``H^(1+a)`` at
  ``a = 0``: ``d = log(H)`` where ``H > 0`` else 0,
  ``H_s = H + H d a + H d^2 a^2 / 2``;
- weight-adaptive weights (not detached, so they carry gradient):
  ``W = |1 - P| H^gamma + |P| (1 - H^gamma)``;
- ``loss_heatmap = loss_weight * mean_b mean_(k,y,x) (P - H_s)^2 W M``;
- ``loss_scale = scale_loss_weight * mean_b mean_(k,y,x) a^2 M``.

With ``scale_adaptive=False`` the target is ``H``; with
``weight_adaptive=False`` the weight is 1. Both off is HigherHRNet's plain
masked MSE (its ``HeatmapLoss``). Note that ``gamma -> 0`` does NOT give
plain MSE: the weight tends to ``|1 - P|`` on ``H > 0`` and ``|P|`` on
``H = 0``; plain MSE is the ``weight_adaptive=False`` switch.
"""
from typing import Dict, Optional

import torch
from torch import Tensor, nn

from mmpose.registry import MODELS

__all__ = ['SWAHRLoss']


@MODELS.register_module()
class SWAHRLoss(nn.Module):
    """SWAHR heatmap loss of one resolution.

    Args:
        loss_weight (float): factor on the heatmap term.
        scale_loss_weight (float): ``lambda``, factor on the scale
            regulariser (paper: 1).
        gamma (float): exponent of the weight-adaptive weights (paper: 0.01);
            must be > 0 (``0^0 = 1`` would weight background pixels as
            foreground).
        scale_adaptive (bool): use the scale-adaptive target (needs the
            ``scale`` map).
        weight_adaptive (bool): use the weight-adaptive weights.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 scale_loss_weight: float = 1.0,
                 gamma: float = 0.01,
                 scale_adaptive: bool = True,
                 weight_adaptive: bool = True):
        super().__init__()
        if not gamma > 0:
            raise ValueError(f'SWAHRLoss: gamma must be > 0, got {gamma!r}')
        for name, value in (('loss_weight', loss_weight),
                            ('scale_loss_weight', scale_loss_weight)):
            if not value >= 0:
                raise ValueError(
                    f'SWAHRLoss: {name} must be >= 0, got {value!r}')
        self.loss_weight = float(loss_weight)
        self.scale_loss_weight = float(scale_loss_weight)
        self.gamma = float(gamma)
        self.scale_adaptive = bool(scale_adaptive)
        self.weight_adaptive = bool(weight_adaptive)

    def forward(self, pred: Tensor, gt: Tensor, scale: Optional[Tensor],
                mask: Tensor) -> Dict[str, Tensor]:
        """Heatmap and scale terms.

        Args:
            pred (Tensor): predicted heatmaps ``(B, K, H, W)``.
            gt (Tensor): target heatmaps ``(B, K, H, W)``, values in [0, 1].
            scale (Tensor | None): RAW scale-branch output ``(B, K, H, W)``
                (multiplied by ``gt > 0`` here). ``None`` (no scale branch)
                is allowed only with ``scale_adaptive=False``; then no
                ``loss_scale`` is returned.
            mask (Tensor): ``(B, H, W)``, 1 = use the pixel, 0 = ignore
                (crowd / unlabelled people).

        Returns:
            dict: ``loss_heatmap`` and (when ``scale`` is given)
            ``loss_scale``, scalars with their weights applied.
        """
        if pred.dim() != 4 or gt.shape != pred.shape:
            raise ValueError(
                'SWAHRLoss: pred and gt must both be (B, K, H, W), got '
                f'{tuple(pred.shape)} and {tuple(gt.shape)}')
        if scale is not None and scale.shape != pred.shape:
            raise ValueError(
                f'SWAHRLoss: scale has shape {tuple(scale.shape)}, expected '
                f'{tuple(pred.shape)} like pred')
        B, _, H, W = pred.shape
        if mask.shape != (B, H, W):
            raise ValueError(
                f'SWAHRLoss: mask has shape {tuple(mask.shape)}, expected '
                f'(B, H, W) = {(B, H, W)}')
        if scale is None and self.scale_adaptive:
            raise ValueError(
                'SWAHRLoss: scale_adaptive=True needs the scale map; give '
                'the head scale branches or set scale_adaptive=False')
        gt = gt.to(pred.dtype)
        m = mask.to(pred.dtype)[:, None]  # (B, 1, H, W), broadcast over K
        keep = m != 0
        zero = pred.new_zeros(())

        with torch.no_grad():  # target-only quantities: no graph needed
            fg = gt > 0
            if self.scale_adaptive or self.weight_adaptive:
                # log(H) on the foreground; 0 elsewhere (H = 0 there anyway)
                d = torch.log(torch.where(fg, gt, torch.ones_like(gt)))
            if self.weight_adaptive:
                g = torch.where(fg, torch.exp(self.gamma * d), zero)  # H^gamma
            if self.scale_adaptive:
                hd = gt * d
                half_hd2 = 0.5 * hd * d

        alpha = None
        if scale is not None:
            # a = scale * [H > 0]; zero at ignored pixels too, which changes
            # neither term (both are masked there)
            alpha = torch.where(fg & keep, scale, zero)
        if self.scale_adaptive:
            # H + H d a + H d^2 a^2 / 2 = H + a (H d + (H d^2 / 2) a)
            target = gt + alpha * (hd + half_hd2 * alpha)
        else:
            target = gt
        diff = pred - target
        sq = diff * diff
        if self.weight_adaptive:
            # |1 - P| H^g + |P| (1 - H^g) = lerp(|P|, |1 - P|, H^g)
            sq = sq * torch.lerp(pred.abs(), (1 - pred).abs(), g)
        losses = dict(loss_heatmap=self.loss_weight * (sq * m).mean())
        if alpha is not None:
            losses['loss_scale'] = self.scale_loss_weight * (
                alpha * alpha * m).mean()
        return losses

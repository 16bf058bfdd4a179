"""Associative-embedding (push/pull, 'exp') loss as HigherHRNet and SWAHR
train it, vectorised over people and images.

For image ``b`` with ``N_b`` people that have at least one labelled
keypoint, person ``n`` with labelled keypoints ``J_n`` and tags ``t_nk``
(one value per keypoint, read at the keypoint's pixel of keypoint channel
``k``), ``tbar_n = mean_(k in J_n) t_nk``:

- ``pull_b = (1 / N_b) sum_n mean_(k in J_n) (t_nk - tbar_n)^2``
- ``push_b = 0.5 / (N_b (N_b - 1)) sum_(n != m) exp(-(tbar_n - tbar_m)^2)``
  (0 when ``N_b < 2``);

both averaged over the batch and multiplied by their weights (HigherHRNet:
0.001 each). This is the authors' ``AELoss('exp')`` followed by their
``.mean(dim=0)``.

mmpose 1.x's ``AssociativeEmbeddingLoss`` differs in two ways (checked in
``tests/test_models/test_losses/test_higherhrnet_ae_loss.py``): it SUMS the
per-image losses over the batch instead of averaging, and its push sum
includes the ``N_b`` diagonal terms ``exp(0) = 1``, adding the constant
``0.5 / (N_b - 1)`` per image (no gradient change). Hence this module.
"""
from typing import List, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from mmpose.registry import MODELS

__all__ = ['HigherHRNetAELoss']


@MODELS.register_module()
class HigherHRNetAELoss(nn.Module):
    """HigherHRNet's associative-embedding loss ('exp' push).

    Args:
        pull_loss_weight (float): factor on the pull term (HigherHRNet:
            0.001).
        push_loss_weight (float): factor on the push term (HigherHRNet:
            0.001).
    """

    def __init__(self,
                 pull_loss_weight: float = 0.001,
                 push_loss_weight: float = 0.001):
        super().__init__()
        self.pull_loss_weight = float(pull_loss_weight)
        self.push_loss_weight = float(push_loss_weight)

    def forward(self, tags: Tensor,
                keypoint_indices: Union[Tensor, Sequence[Tensor]]
                ) -> Tuple[Tensor, Tensor]:
        """Pull and push losses of a batch.

        Args:
            tags (Tensor): ``(B, K, H, W)`` tag maps, one channel per
                keypoint.
            keypoint_indices (Tensor | list[Tensor]): per image ``(N_b, K,
                2)`` integer ``[y * W + x, valid]`` (mmpose's
                ``AssociativeEmbedding`` codec layout), as a list of ``B``
                tensors or one ``(B, N, K, 2)`` tensor.

        Returns:
            tuple: ``(pull, push)`` scalars, weights applied.
        """
        if tags.dim() != 4:
            raise ValueError('HigherHRNetAELoss: tags must be (B, K, H, W), '
                             f'got {tuple(tags.shape)}')
        B, K, H, W = tags.shape
        if len(keypoint_indices) != B:
            raise ValueError(
                f'HigherHRNetAELoss: {len(keypoint_indices)} keypoint_indices '
                f'entries for a batch of {B} tag maps')
        device = tags.device
        per_image: List[Tensor] = []
        for b, idx in enumerate(keypoint_indices):
            idx = torch.as_tensor(idx, device=device).long()
            if idx.numel() == 0:
                idx = idx.reshape(0, K, 2)
            if idx.dim() != 3 or idx.shape[1:] != (K, 2):
                raise ValueError(
                    f'HigherHRNetAELoss: keypoint_indices[{b}] has shape '
                    f'{tuple(idx.shape)}, expected (N, K={K}, 2)')
            per_image.append(idx)
        counts = torch.as_tensor([len(i) for i in per_image], device=device)
        allidx = torch.cat(per_image)  # (M, K, 2)
        img = torch.repeat_interleave(torch.arange(B, device=device), counts)

        valid = allidx[..., 1] > 0
        flat = allidx[..., 0]
        bad = valid & ((flat < 0) | (flat >= H * W))
        if bool(bad.any()):
            raise ValueError(
                f'HigherHRNetAELoss: labelled keypoint index '
                f'{int(flat[bad][0])} outside the {H}x{W} tag map; the '
                'codec must encode keypoint_indices at the first (1/4) '
                'output resolution')
        flat = torch.where(valid, flat, torch.zeros_like(flat))
        kpt = torch.arange(K, device=device)
        t = tags.flatten(2)[img[:, None], kpt[None], flat]  # (M, K)
        v = valid.to(t.dtype)
        n_kpt = v.sum(1)
        has = n_kpt > 0  # people counted by the loss
        n_safe = n_kpt.clamp(min=1)
        mean = (t * v).sum(1) / n_safe  # (M,) reference tag per person
        pull_person = ((t - mean[:, None])**2 * v).sum(1) / n_safe

        hasf = has.to(t.dtype)
        n_people = torch.zeros(B, device=device, dtype=t.dtype).index_add(
            0, img, hasf)
        pull = torch.zeros_like(n_people).index_add(
            0, img, pull_person * hasf) / n_people.clamp(min=1)

        pair = (img[:, None] == img[None]) & has[:, None] & has[None]
        pair &= ~torch.eye(len(img), dtype=torch.bool, device=device)
        e = torch.exp(-(mean[:, None] - mean[None])**2)
        e = torch.where(pair, e, torch.zeros_like(e)).sum(1)
        denom = (n_people * (n_people - 1)).clamp(min=1)
        push = 0.5 * torch.zeros_like(n_people).index_add(0, img, e) / denom
        # ``+ zero`` keeps the graph connected when no person is labelled.
        zero = tags.sum() * 0
        return (self.pull_loss_weight * pull.mean() + zero,
                self.push_loss_weight * push.mean() + zero)

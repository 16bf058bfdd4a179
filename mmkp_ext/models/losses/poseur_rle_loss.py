"""Poseur's residual log-likelihood (RLE) loss with its own RealNVP flow.

For a prediction ``mu`` with scale ``sigma`` and target ``y`` (all normalised
to [0, 1] of the model input), per keypoint and coordinate::

    bar    = (mu - y) / sigma                       # (B, K, 2)
    log_phi = flow.log_prob(bar)                    # (B, K), one per keypoint
    nf     = log(sigma) - log_phi                   # log_phi for x and y
    logQ   = log(sigma * sqrt(2 pi)) + |y - mu| / (sqrt(2) * sigma + 1e-9)
    loss   = loss_weight * sum_{b, k, xy} (nf + logQ) * w[b, k] / N

This is the authors' ``RLELoss_poseur`` with the head's ``nf_loss`` (aim-uofa/
Poseur, ``mmpose/models/losses/rle_loss.py`` and ``heads/poseur_head.py``),
the flow's prior is ``N((0.5, 0.5), I)``. The divisor ``N`` differs between
the authors' releases (option ``normalize``):

* ``'batch'`` (default): ``N = B``, the batch size only, not the number of
  (visible) keypoints -- ``loss.sum() / len(loss)`` of the original release
  (July 2022, the code of the paper's models, up to the MPII refactor of
  January 2023);
* ``'batch_queries'``: ``N = B * K``, ``K`` the number of predictions per
  sample (``K * (1 + S)`` with ``S`` noisy query groups) --
  ``loss.sum() / (loss.shape[0] * loss.shape[1])`` of the later code (from
  the Poseur3D commit of February 2023 on).

Both divide only when some weight is non-zero (an all-zero-weight batch
gives 0 either way). mmpose 1.x's
``RLELoss`` differs (Laplace term, zero-mean prior), hence a separate loss.

Numerical safety (beyond the reference code):

* the whole loss runs with autocast disabled in float32 (float64 if the
  inputs are float64): ``bar`` reaches ~1e9 for ``sigma`` = 1e-9, which
  overflows half precision;
* ``sigma`` is clamped to ``>= sigma_min`` (1e-9): a no-op in the supported
  range, it keeps a sigmoid that underflowed to 0 in half precision from
  giving ``log(0)``;
* keypoints with weight 0 have their target replaced by the (detached)
  prediction and their terms zeroed with ``torch.where``, so NaN/inf targets
  of invisible keypoints neither reach the loss nor its gradient.

Flow parameter names (for checkpoint converters; the official head's
``enc_flow.*`` / ``dec_flow.*`` map 1:1 onto ``<loss>.flow.*``):

* ``flow.mask`` (6, 2) buffer, rows ``[0, 1], [1, 0]`` x 3 (persistent, as in
  the official checkpoints);
* ``flow.s.{i}.{0,2,4}.{weight,bias}``: scale nets ``Linear(2, 64)``,
  ``Linear(64, 64)``, ``Linear(64, 2)`` (LeakyReLU after the first two,
  Tanh after the last), ``i = 0..5``;
* ``flow.t.{i}.{0,2,4}.{weight,bias}``: translation nets, the same without
  the Tanh;
* ``flow.prior_loc`` (2,) = 0.5 and ``flow.prior_scale`` (2,) = 1 are
  NON-persistent buffers (constants; the official code keeps its prior in a
  ``torch.distributions`` object outside the state dict), so they neither
  appear in nor are required from checkpoints.

The nets keep PyTorch's default ``nn.Linear`` init, as the authors' code does
(their ``RealNVP._init`` is never called in Poseur).
"""
import math

import torch
from torch import Tensor, nn

from mmpose.registry import MODELS

__all__ = ['PoseurRealNVP', 'PoseurRLELoss']


def _scale_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(2, 64), nn.LeakyReLU(), nn.Linear(64, 64), nn.LeakyReLU(),
        nn.Linear(64, 2), nn.Tanh())


def _translation_net() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(2, 64), nn.LeakyReLU(), nn.Linear(64, 64), nn.LeakyReLU(),
        nn.Linear(64, 2))


class PoseurRealNVP(nn.Module):
    """2-D RealNVP density with affine coupling layers (RLE's flow).

    Generative direction (``z`` ~ prior, ``x`` = data), coupling ``i`` with
    mask ``m`` (1 = passed through)::

        x = m * z + (1 - m) * (z * exp(s_i(m * z)) + t_i(m * z))

    with ``s_i`` and ``t_i`` masked to the changed coordinate. ``log_prob``
    inverts the couplings in reverse order and adds ``-sum s_i`` (the
    log-determinant of the inverse) to the prior's log density.

    Args:
        num_couplings (int): coupling layers; masks alternate
            ``[0, 1], [1, 0]`` (6 in Poseur).
        prior_mean (float): mean of the isotropic unit-variance Gaussian
            prior on each coordinate (0.5 in Poseur).
    """

    def __init__(self, num_couplings: int = 6, prior_mean: float = 0.5):
        super().__init__()
        if num_couplings < 1:
            raise ValueError(
                f'num_couplings must be >= 1, got {num_couplings}')
        masks = torch.tensor([[0.0, 1.0], [1.0, 0.0]]).repeat(
            (num_couplings + 1) // 2, 1)[:num_couplings]
        self.register_buffer('mask', masks)
        self.register_buffer('prior_loc', torch.full((2, ), float(prior_mean)),
                             persistent=False)
        self.register_buffer('prior_scale', torch.ones(2), persistent=False)
        self.s = nn.ModuleList(_scale_net() for _ in range(num_couplings))
        self.t = nn.ModuleList(
            _translation_net() for _ in range(num_couplings))

    def inverse(self, x: Tensor) -> tuple:
        """Map data ``x`` (N, 2) to latent ``z`` (N, 2); also return
        ``log|det dz/dx|`` (N,)."""
        z = x
        log_det = x.new_zeros(x.shape[:-1])
        for i in reversed(range(len(self.s))):
            keep = self.mask[i]
            change = 1.0 - keep
            z_keep = z * keep
            s = self.s[i](z_keep) * change
            t = self.t[i](z_keep) * change
            z = z_keep + change * (z - t) * torch.exp(-s)
            log_det = log_det - s.sum(-1)
        return z, log_det

    def log_prob(self, x: Tensor) -> Tensor:
        """Log density of ``x`` (..., 2); returns (...,). Computed in the
        flow's parameter dtype."""
        if x.shape[-1] != 2:
            raise ValueError(f'flow input must end in 2 coordinates, got '
                             f'{tuple(x.shape)}')
        lead = x.shape[:-1]
        x = x.reshape(-1, 2).to(self.mask.dtype)
        z, log_det = self.inverse(x)
        u = (z - self.prior_loc) / self.prior_scale
        log_prior = (-0.5 * u.pow(2) - torch.log(self.prior_scale) -
                     0.5 * math.log(2.0 * math.pi)).sum(-1)
        return (log_prior + log_det).reshape(lead)


@MODELS.register_module()
class PoseurRLELoss(nn.Module):
    """Poseur's RLE loss (see the module docstring for the formula).

    Args:
        loss_weight (float): factor on the returned loss (1 in Poseur).
        sigma_min (float): lower clamp on ``sigma`` (default 1e-9).
        num_couplings (int): coupling layers of the flow (6).
        prior_mean (float): mean of the flow's Gaussian prior (0.5).
        normalize (str): ``'batch'`` (divide by the batch size, the original
            release; default) or ``'batch_queries'`` (divide by batch size x
            predictions per sample, the later release); see the module
            docstring.
    """

    NORMALIZE = ('batch', 'batch_queries')

    def __init__(self,
                 loss_weight: float = 1.0,
                 sigma_min: float = 1e-9,
                 num_couplings: int = 6,
                 prior_mean: float = 0.5,
                 normalize: str = 'batch'):
        super().__init__()
        if not sigma_min > 0:
            raise ValueError(f'sigma_min must be > 0, got {sigma_min}')
        if normalize not in self.NORMALIZE:
            raise ValueError(f'normalize must be one of {self.NORMALIZE}, '
                             f'got {normalize!r}')
        self.normalize = normalize
        self.loss_weight = float(loss_weight)
        self.sigma_min = float(sigma_min)
        self.flow = PoseurRealNVP(num_couplings, prior_mean)

    def forward(self, pred: Tensor, sigma: Tensor, target: Tensor,
                target_weight: Tensor) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): (B, K, 2) predicted (x, y), normalised input
                coordinates.
            sigma (Tensor): (B, K, 2) predicted scales, > 0.
            target (Tensor): (B, K, 2) target (x, y), normalised.
            target_weight (Tensor): (B, K) keypoint weights (0 = ignored),
                applied to both coordinates.

        Returns:
            Tensor: scalar, float32 (float64 for float64 inputs).
        """
        if pred.dim() != 3 or pred.shape[-1] != 2:
            raise ValueError(f'pred must have shape (B, K, 2), got '
                             f'{tuple(pred.shape)}')
        for name, t in (('sigma', sigma), ('target', target)):
            if t.shape != pred.shape:
                raise ValueError(f'{name} must have the shape of pred '
                                 f'{tuple(pred.shape)}, got {tuple(t.shape)}')
        if target_weight.shape != pred.shape[:2]:
            raise ValueError(f'target_weight must have shape (B, K) = '
                             f'{tuple(pred.shape[:2])}, got '
                             f'{tuple(target_weight.shape)}')
        divisor = pred.shape[0]
        if self.normalize == 'batch_queries':
            divisor *= pred.shape[1]
        dtype = torch.promote_types(pred.dtype, torch.float32)
        with torch.autocast(device_type=pred.device.type, enabled=False):
            pred = pred.to(dtype)
            sigma = sigma.to(dtype).clamp(min=self.sigma_min)
            weight = target_weight.to(dtype)
            valid = (weight != 0)[..., None]  # (B, K, 1)
            # Ignored keypoints: residual 0, so NaN targets stay harmless.
            target = torch.where(valid, target.to(dtype), pred.detach())
            residual = pred - target
            log_phi = self.flow.log_prob(residual / sigma).to(dtype)
            nf = torch.log(sigma) - log_phi[..., None]
            log_q = torch.log(sigma * math.sqrt(2.0 * math.pi)) + \
                residual.abs() / (math.sqrt(2.0) * sigma + 1e-9)
            per_coord = (nf + log_q) * weight[..., None]
            per_coord = torch.where(valid, per_coord,
                                    torch.zeros_like(per_coord))
            return per_coord.sum() / divisor * self.loss_weight

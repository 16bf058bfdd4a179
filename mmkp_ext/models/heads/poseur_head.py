"""Poseur's head (Mao et al., ECCV 2022): a transformer query decoder that
regresses keypoints directly, with efficient multi-scale deformable attention
(EMSDA) and a residual log-likelihood (RLE) loss.

Inputs are the ``L`` feature maps of the neck (``L = 4``, ``C = 256``
channels each, highest resolution first). All coordinates are normalised to
the input crop: ``(x / w, y / h)`` in input pixels, the units of mmpose's
``RegressionLabel`` codec, so ``(0, 0)`` is the first pixel and the last
pixel is at ``1 - 1 / w``.

Pipeline (shapes for a batch of ``B`` crops, ``K`` keypoints, ``G`` query
groups: 1 at inference, ``1 + num_noise_groups`` in training)::

    coarse branch   GAP(feats[-1]) (B, C) -> coords (B, K, 2) with a
                    normalised linear layer, sigma (B, K, 2) with a sigmoid
    references      training: the detached coarse coords plus noisy copies
                    (B, G*K, 2); inference: the coarse coords (B, K, 2)
    query init      LayerNorm(Linear(cat(PE(ref), PE(clip(ref, 0, 1)))))
                    (B, G*K, C); the class embedding (K, C) is the query
                    position term
    decoder layer   self-attention within each group of K queries -> norm ->
                    deformable cross-attention on the value memory -> norm
                    -> FFN -> norm (post-norm)
    per layer l     ref_l = sigmoid(coord_branch_l(q_l) + logit(ref_{l-1})),
                    coords_l = ref_l + coord_output_branch_l(q_l),
                    sigma_l = sigmoid(sigma_branch_l(q_l))

The value memory is the neck features plus a 2D sine positional encoding and
a learnable per-level embedding (the official model has a zero-layer
encoder, i.e. no encoder). Loss: the coarse branch's RLE loss plus one per
decoder layer (one ``PoseurRLELoss`` for the coarse branch, one shared by the
decoder layers). Keypoint scores come from the Laplace approximation of the
predicted distribution (paper eq. 8).
"""
import math
from typing import Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpose.evaluation.functional import keypoint_pck_accuracy
from mmpose.models.heads.base_head import BaseHead
from mmpose.models.utils.tta import flip_coordinates
from mmpose.registry import KEYPOINT_CODECS, MODELS
from mmpose.utils.tensor_utils import to_numpy

from mmpose.utils.typing import (ConfigType, OptConfigType, OptSampleList,
                                 Predictions)

from ...utils.validation import check_int, check_real
from ..layers.poseur_deform_attn import EMSDeformAttn, MSDeformAttn
from ..utils import refuse_mismatched_shapes, sanitize_outputs

__all__ = [
    'PoseurHead', 'NormalisedLinear', 'inverse_sigmoid', 'sine_point_encoding',
    'sine_map_encoding', 'laplace_keypoint_scores', 'fuse_flip_predictions'
]

#: Cross-attention kinds of :class:`PoseurHead` and their layers.
CROSS_ATTENTIONS = {'EMSDA': EMSDeformAttn, 'MSDA': MSDeformAttn}
#: How the perturbed keypoints of the noisy query groups are drawn.
NOISE_SAMPLINGS = ('joint', 'per_group')
#: Initialisation schemes of :meth:`PoseurHead.init_weights`.
INITS = ('intended', 'authors')


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Logit of ``x`` clamped to ``[0, 1]``, with both ``x`` and ``1 - x``
    kept above ``eps`` (finite for any input)."""
    x = x.clamp(0.0, 1.0)
    return torch.log(x.clamp(min=eps) / (1.0 - x).clamp(min=eps))


def _sine_features(values: Tensor, num_feats: int,
                   temperature: float) -> Tensor:
    """``(..., )`` angles -> ``(..., num_feats)`` features interleaved as
    ``sin(v / t_0), cos(v / t_0), sin(v / t_1), cos(v / t_1), ...`` with
    ``t_i = temperature ** (2 i / num_feats)`` (DETR's encoding)."""
    half = torch.arange(num_feats // 2, dtype=torch.float32,
                        device=values.device)
    dim_t = temperature**(2 * half / num_feats)
    angles = values.float()[..., None] / dim_t
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)


def sine_point_encoding(points: Tensor, num_feats: int = 128,
                        temperature: float = 10000.0) -> Tensor:
    """Sine encoding of normalised points (Poseur's keypoint encoder).

    Args:
        points (Tensor): ``(..., 2)`` normalised ``(x, y)``.
        num_feats (int): Features per axis (even).
        temperature (float): Frequency base.

    Returns:
        Tensor: ``(..., 2 * num_feats)``, the x features then the y
        features, each of ``coordinate * 2 pi``.
    """
    feats = _sine_features(points * (2 * math.pi), num_feats, temperature)
    return feats.flatten(-2)


def sine_map_encoding(height: int, width: int, num_feats: int = 128,
                      temperature: float = 10000.0,
                      device=None) -> Tensor:
    """2D sine positional encoding of a feature map (DETR's, normalised
    with offset -0.5: pixel ``(i, j)`` has the angles
    ``2 pi (i + 0.5) / H`` and ``2 pi (j + 0.5) / W``).

    Returns:
        Tensor: ``(2 * num_feats, H, W)``, the y features then the x
        features (mmcv's ``SinePositionalEncoding`` layout).
    """
    # mmcv divides by (H + 1e-6); kept for bit-level agreement.
    ys = (torch.arange(height, dtype=torch.float32, device=device) +
          0.5) / (height + 1e-6) * (2 * math.pi)
    xs = (torch.arange(width, dtype=torch.float32, device=device) +
          0.5) / (width + 1e-6) * (2 * math.pi)
    fy = _sine_features(ys, num_feats, temperature)  # (H, F)
    fx = _sine_features(xs, num_feats, temperature)  # (W, F)
    pos = torch.cat([
        fy[:, None, :].expand(height, width, num_feats),
        fx[None, :, :].expand(height, width, num_feats)
    ], dim=-1)
    return pos.permute(2, 0, 1).contiguous()


def laplace_keypoint_scores(sigma: Tensor, a: float = 0.2) -> Tensor:
    """Keypoint confidence from the predicted scales (paper eq. 8): the
    probability mass of a Laplace distribution of scale ``sigma`` within
    ``+-a`` of its mean, per axis, multiplied over x and y:
    ``(1 - exp(-a / sigma_x)) * (1 - exp(-a / sigma_y))``.

    Args:
        sigma (Tensor): ``(..., 2)`` positive scales (normalised units).
        a (float): Half-width of the window (normalised units).

    Returns:
        Tensor: ``(...)`` scores in ``[0, 1]``.
    """
    mass = -torch.expm1(-a / sigma.clamp(min=1e-12))
    return mass[..., 0] * mass[..., 1]


def fuse_flip_predictions(coords: Tensor, scores: Tensor, flip_coords: Tensor,
                          flip_scores: Tensor,
                          power: float = 5.0) -> Tuple[Tensor, Tensor]:
    """Fuse the predictions of a crop and of its mirror image (already
    mapped back to the crop) as Poseur does: coordinates weighted by
    ``score ** power``, scores averaged.

    Args:
        coords, flip_coords (Tensor): ``(B, K, 2)``.
        scores, flip_scores (Tensor): ``(B, K)``.
        power (float): Exponent of the coordinate weights.

    Returns:
        tuple: fused coords ``(B, K, 2)`` and scores ``(B, K)``.
    """
    w = scores.pow(power)[..., None]
    w_flip = flip_scores.pow(power)[..., None]
    fused = (coords * w + flip_coords * w_flip) / (w + w_flip + 1e-10)
    return fused, (scores + flip_scores) * 0.5


class NormalisedLinear(nn.Module):
    """``y = x W^T / ||x|| + b``: a linear layer on the direction of the
    input only (Poseur's coarse coordinate regressor). Parameters live in
    ``self.linear`` (an ``nn.Linear``)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x: Tensor) -> Tensor:
        # No epsilon, as in the official model: a zero feature vector after
        # GroupNorm + global pooling does not occur in practice.
        y = F.linear(x, self.linear.weight) / x.norm(dim=-1, keepdim=True)
        return y + self.linear.bias


class PoseurDecoderLayer(nn.Module):
    """One post-norm decoder layer: grouped self-attention, deformable
    cross-attention, FFN, each followed by a LayerNorm.

    Args:
        embed_dims (int): Query and value channels ``C``.
        num_heads (int): Attention heads (self and cross).
        num_levels (int): Feature levels of the value memory.
        num_points (int): Sampling points per head and level.
        feedforward_channels (int): Hidden width of the FFN.
        dropout (float): Dropout of the attentions and the FFN.
        cross_attention (str): ``'EMSDA'`` or ``'MSDA'``.
    """

    def __init__(self, embed_dims: int, num_heads: int, num_levels: int,
                 num_points: int, feedforward_channels: int, dropout: float,
                 cross_attention: str):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(
            embed_dims, num_heads, dropout=dropout, batch_first=True)
        self.self_attn_drop = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.cross_attn = CROSS_ATTENTIONS[cross_attention](
            embed_dims=embed_dims, num_heads=num_heads,
            num_levels=num_levels, num_points=num_points, dropout=dropout)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.ffn_in = nn.Linear(embed_dims, feedforward_channels)
        self.ffn_out = nn.Linear(feedforward_channels, embed_dims)
        self.ffn_drop = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(embed_dims)

    def forward(self, query: Tensor, query_pos: Tensor, value: Tensor,
                reference_points: Tensor, spatial_shapes: list,
                group_size: int) -> Tensor:
        """
        Args:
            query (Tensor): ``(B, G*K, C)``.
            query_pos (Tensor): ``(B, G*K, C)`` class embeddings.
            value (Tensor): ``(B, sum_l H_l*W_l, C)`` value memory.
            reference_points (Tensor): ``(B, G*K, 2)`` normalised ``(x, y)``.
            spatial_shapes (list): ``L`` pairs ``(H_l, W_l)`` of ints (or
                an ``(L, 2)`` integer tensor).
            group_size (int): ``K``; self-attention stays within groups.

        Returns:
            Tensor: ``(B, G*K, C)``.
        """
        B, Q, C = query.shape
        # Each group of K queries attends only to itself: fold the groups
        # into the batch dimension.
        q = query.reshape(B * Q // group_size, group_size, C)
        pos = query_pos.reshape(q.shape)
        attn = self.self_attn(q + pos, q + pos, q, need_weights=False)[0]
        query = self.norm1(query + self.self_attn_drop(attn.reshape(B, Q, C)))
        query = self.norm2(
            self.cross_attn(query, value, reference_points, spatial_shapes,
                            query_pos=query_pos))
        hidden = self.ffn_drop(F.relu(self.ffn_in(query)))
        query = query + self.ffn_drop(self.ffn_out(hidden))
        return self.norm3(query)


def _mlp(channels: int, out: int, activation: bool) -> nn.Sequential:
    """Linear-(ReLU)-Linear-(ReLU)-Linear(out), the per-layer branches."""
    if activation:
        return nn.Sequential(
            nn.Linear(channels, channels), nn.ReLU(inplace=True),
            nn.Linear(channels, channels), nn.ReLU(inplace=True),
            nn.Linear(channels, out))
    return nn.Sequential(
        nn.Linear(channels, channels), nn.Linear(channels, channels),
        nn.Linear(channels, out))


@MODELS.register_module()
class PoseurHead(BaseHead):
    """Poseur's query-decoder regression head (see the module docstring).

    Args:
        num_joints (int): Number of keypoints ``K``.
        in_channels (int): Channels ``C`` of every input level (the neck's
            output channels); also the transformer width.
        num_feature_levels (int): Number of input levels ``L``.
        num_decoder_layers (int): Decoder layers (paper: 3, 5, 6, 12).
        num_heads (int): Attention heads.
        num_points (int): Deformable sampling points per head and level.
        feedforward_channels (int): FFN hidden width.
        dropout (float): Dropout in the decoder layers.
        cross_attention (str): ``'EMSDA'`` (Poseur's efficient attention:
            value projection after sampling) or ``'MSDA'`` (Deformable DETR's:
            the whole value map projected before sampling).
        num_noise_groups (int): Extra query groups with noisy references in
            training (paper: 3). 0 disables them.
        num_noise_points (int): Keypoints perturbed per noisy group
            (exactly, or on average: see ``noise_sampling``).
        noise_variance (float): Variance of the Gaussian reference noise
            (normalised units); the noise is clipped to ``[-1, 1]`` and the
            perturbed references to ``[-0.7, 1.7]``.
        laplace_a (float): Half-width ``a`` of the Laplace keypoint score.
        flip_power (float): Exponent ``n`` of the flip-test weights
            ``score ** n`` (the authors' ``filp_fuse_type='type2'``: 5).
        keypoint_score_factor (float): Factor on every keypoint score, in
            ``(0, 1]``. 1 (default) = the paper's eq. 8; the authors'
            ``Poseur.get_p`` multiplies by 0.7 (set 0.7 to reproduce their
            scores; it rescales instance scores, not the ranking within an
            image nor the flip-fused coordinates, whose ``p ** 5`` weights
            are normalised).
        noise_sampling (str): How the perturbed queries of the noisy groups
            are drawn: ``'joint'`` (default; the authors' code,
            ``PoseurTransformer.ref_po_gua``): ``num_noise_groups *
            num_noise_points`` of all ``num_noise_groups * K`` noisy queries
            in one random permutation, so a group gets that many only on
            average; ``'per_group'``: exactly ``num_noise_points`` keypoints
            in every group (the spec's reading of the paper). Either way
            the choice is shared by the whole batch.
        init (str): Initialisation for training from scratch (see
            :meth:`init_weights`): ``'intended'`` (default) = what the
            authors' ``init_weights`` functions are written to do (zero
            deformable-attention offset/weight matrices, gain-0.01 Xavier on
            the coarse layers, the coordinate branches and the last sigma
            layers); ``'authors'`` = what their code actually leaves (those
            steps are overwritten or skipped: Xavier gain 1 on the
            attention matrices and coarse layers, PyTorch's default init on
            the coordinate branches and the first two sigma layers,
            identical branches in every decoder layer).
        loss_coarse (dict): Loss of the coarse branch (one
            ``PoseurRLELoss``, with its own flow).
        loss_decoder (dict): Loss shared by all decoder layers.
        decoder (dict, optional): Codec, normally ``dict(type=
            'RegressionLabel', input_size=(w, h))``; needed by
            :meth:`predict`.
        init_cfg (dict | list, optional): Unused by default: when given
            (e.g. ``Pretrained``), it replaces :meth:`init_weights`'s own
            scheme.

    Test-time options (``test_cfg``): ``flip_test`` (bool) fuses the
    predictions of the crop and of its mirror with :func:`
    fuse_flip_predictions`; ``shift_coords`` (bool, default True) mirrors
    normalised x as ``1 - x - 1 / w`` (pixel ``x -> w - 1 - x``, mmpose's
    ``flip_coordinates``), which matches how ``RegressionLabel``
    normalises targets (pixel / w) and mmpose's image flip; ``False``
    mirrors as ``1 - x``, the authors' ``fliplr_rle_regression`` (the
    fused x then differs by ``w_f / (w + w_f)`` input px, ``w`` and ``w_f``
    the two fusion weights: under 1 px).

    Instance scores are computed by the metric from the keypoint scores:
    ``CocoMetric(score_mode='bbox_rle')`` gives the official code's
    ``box + mean + max``, ``CocoMetric(score_mode='bbox_keypoint',
    keypoint_score_thr=0.0)`` the paper's ``box * mean`` (eq. 5; all Laplace
    scores are > 0, so nothing is dropped by the threshold).
    """

    def __init__(self,
                 num_joints: int = 17,
                 in_channels: int = 256,
                 num_feature_levels: int = 4,
                 num_decoder_layers: int = 6,
                 num_heads: int = 8,
                 num_points: int = 4,
                 feedforward_channels: int = 1024,
                 dropout: float = 0.1,
                 cross_attention: str = 'EMSDA',
                 num_noise_groups: int = 3,
                 num_noise_points: int = 4,
                 noise_variance: float = 0.2,
                 laplace_a: float = 0.2,
                 flip_power: float = 5.0,
                 keypoint_score_factor: float = 1.0,
                 noise_sampling: str = 'joint',
                 init: str = 'intended',
                 loss_coarse: ConfigType = dict(type='PoseurRLELoss'),
                 loss_decoder: ConfigType = dict(type='PoseurRLELoss'),
                 decoder: OptConfigType = None,
                 init_cfg: OptConfigType = None):
        super().__init__(init_cfg)
        refuse_mismatched_shapes(self)
        check_int('num_joints', num_joints, 1)
        check_int('in_channels', in_channels, 2)
        check_int('num_feature_levels', num_feature_levels, 1)
        check_int('num_decoder_layers', num_decoder_layers, 1)
        check_int('num_heads', num_heads, 1)
        check_int('num_points', num_points, 1)
        check_int('feedforward_channels', feedforward_channels, 1)
        check_int('num_noise_groups', num_noise_groups, 0)
        check_int('num_noise_points', num_noise_points, 0)
        if in_channels % 4 or in_channels % num_heads:
            raise ValueError(
                f'in_channels ({in_channels}) must be divisible by 4 (sine '
                f'encodings) and by num_heads ({num_heads})')
        if num_noise_points > num_joints:
            raise ValueError(f'num_noise_points ({num_noise_points}) cannot '
                             f'exceed num_joints ({num_joints})')
        if cross_attention not in CROSS_ATTENTIONS:
            raise ValueError(f'Unknown cross_attention {cross_attention!r}; '
                             f'expected one of {sorted(CROSS_ATTENTIONS)}')
        check_real('dropout', dropout, 0.0, 1.0)
        check_real('noise_variance', noise_variance, 0.0)
        check_real('laplace_a', laplace_a, 0.0, low_open=True)
        check_real('flip_power', flip_power, 0.0)
        check_real('keypoint_score_factor', keypoint_score_factor, 0.0,
                    1.0, low_open=True)
        if noise_sampling not in NOISE_SAMPLINGS:
            raise ValueError(f'Unknown noise_sampling {noise_sampling!r}; '
                             f'expected one of {NOISE_SAMPLINGS}')
        if init not in INITS:
            raise ValueError(f'Unknown init {init!r}; expected one of '
                             f'{INITS}')

        self.num_joints = num_joints
        self.in_channels = in_channels
        self.num_feature_levels = num_feature_levels
        self.num_decoder_layers = num_decoder_layers
        self.cross_attention = cross_attention
        self.num_noise_groups = num_noise_groups
        self.num_noise_points = num_noise_points
        self.noise_variance = float(noise_variance)
        self.laplace_a = float(laplace_a)
        self.flip_power = float(flip_power)
        self.keypoint_score_factor = float(keypoint_score_factor)
        self.noise_sampling = noise_sampling
        self.init_scheme = init

        C = in_channels
        self.level_embeds = nn.Parameter(torch.zeros(num_feature_levels, C))
        # Coarse proposal from the globally pooled last level.
        self.coarse_coord = NormalisedLinear(C, num_joints * 2)
        self.coarse_sigma = nn.Linear(C, num_joints * 2)
        # Keypoint encoder: sine PE of the raw and of the clipped reference
        # (C features each) -> C, plus a class embedding per keypoint.
        self.query_proj = nn.Linear(2 * C, C)
        self.query_norm = nn.LayerNorm(C)
        self.class_embed = nn.Embedding(num_joints, C)
        self.layers = nn.ModuleList([
            PoseurDecoderLayer(C, num_heads, num_feature_levels, num_points,
                               feedforward_channels, dropout,
                               cross_attention)
            for _ in range(num_decoder_layers)
        ])
        self.coord_branches = nn.ModuleList(
            [_mlp(C, 2, True) for _ in range(num_decoder_layers)])
        self.coord_output_branches = nn.ModuleList(
            [_mlp(C, 2, True) for _ in range(num_decoder_layers)])
        self.sigma_branches = nn.ModuleList(
            [_mlp(C, 2, False) for _ in range(num_decoder_layers)])

        self.loss_coarse = MODELS.build(loss_coarse)
        self.loss_decoder = MODELS.build(loss_decoder)
        self.decoder = (
            KEYPOINT_CODECS.build(decoder) if decoder is not None else None)
        self._pos_cache = {}

    # ------------------------------------------------------------------
    # initialisation
    def init_weights(self):
        """Initialise the head (not the loss flows, which keep PyTorch's
        default ``nn.Linear`` init as in the authors' code). Skipped when
        ``init_cfg`` is given (e.g. ``Pretrained``). Two schemes, chosen
        by the ``init`` argument:

        ``'intended'``: what the authors' ``init_weights`` functions *say*:
        Xavier-uniform for every matrix of the transformer part, the
        attention layers' own Deformable-DETR init (zero sampling-offset and
        attention-weight matrices, radial offset bias), N(0, 1) level
        embeddings, and Xavier with gain 0.01 for every layer of the
        coordinate branches and for the coarse and last sigma layers, so
        that the first predictions sit near the references.

        ``'authors'``: what the authors' code (aim-uofa/Poseur,
        ``PoseurHead.init_weights`` -> ``PoseurTransformer.init_weights``)
        actually leaves, see :meth:`_init_authors`.
        """
        if self.init_cfg is not None:
            super().init_weights()
            return
        if self.init_scheme == 'authors':
            self._init_authors()
        else:
            self._init_intended()
        self._is_init = True

    def _head_matrices(self, skip=()):
        """``(name, parameter)`` of every >= 2-D parameter of the head
        outside the losses and outside the module prefixes in ``skip``."""
        for name, p in self.named_parameters():
            if p.dim() > 1 and not name.startswith(('loss_', ) + skip):
                yield name, p

    def _init_intended(self):
        for _, p in self._head_matrices():
            nn.init.xavier_uniform_(p)
        for layer in self.layers:
            layer.cross_attn.init_weights()
        nn.init.normal_(self.level_embeds)
        small = [self.coarse_coord.linear, self.coarse_sigma]
        for branches in (self.coord_branches, self.coord_output_branches):
            small += [
                m for m in branches.modules() if isinstance(m, nn.Linear)
            ]
        small += [branch[-1] for branch in self.sigma_branches]
        for m in small:
            nn.init.xavier_uniform_(m.weight, gain=0.01)

    def _init_authors(self):
        """The authors' initialisation as it runs (read off aim-uofa/Poseur
        ``poseur_head.py``, ``utils/transformer.py``,
        ``ops/multi_scale_deform_attn.py``):

        1. constructors: PyTorch default init everywhere; the deformable
           attention (``MultiScaleDeformableAttention_post_value``) runs its
           own Deformable-DETR init; the last sigma layer
           (``Linear_with_norm``) and the coarse layers get Xavier gain 0.01
           on their weights; ``_get_clones`` deep-copies ONE coordinate /
           output / sigma branch per decoder layer, so all layers' branches
           start identical;
        2. ``PoseurTransformer.init_weights``: Xavier-uniform (gain 1) on
           EVERY >= 2-D parameter of the transformer -- which also
           overwrites the attention's zero ``sampling_offsets`` and
           ``attention_weights`` matrices, the coarse layers' gain-0.01
           weights, the class embedding and both value-projection
           ``nn.Embedding`` tables (the ``(8*C, C/8)`` weight and the
           ``(8, C/8)`` bias, each as one 2-D matrix); the loop that would
           call the attention's ``init_weights`` again tests
           ``isinstance(m, MultiScaleDeformableAttention)``, which the
           Poseur attention is not, and the gain-0.01 loop over
           ``fc_layers`` tests ``isinstance(m, nn.Linear)``, which
           ``Linear_with_norm`` is not; level embeddings N(0, 1);
        3. ``PoseurHead.init_weights``: the gain-0.01 loops over the
           coordinate branches iterate over the ``nn.Sequential`` branches
           and test ``isinstance(mm, nn.Linear)``: never true, so the
           branches keep PyTorch's default init.

        Biases keep their constructor values (PyTorch default, except the
        attention's radial offset bias and zero attention-weight /
        output-projection / self-attention biases).
        """
        # 1. constructor state, made explicit so it does not depend on what
        # happened to the parameters before.
        for name, m in self.named_modules():
            if name.startswith('loss_') or m is self:
                continue
            if isinstance(m, (nn.Linear, nn.LayerNorm, nn.Embedding)):
                m.reset_parameters()
        # After the Linear resets: this zeroes out_proj's bias again.
        for layer in self.layers:
            layer.self_attn._reset_parameters()
        for layer in self.layers:
            layer.cross_attn.init_weights()
        for branches in (self.coord_branches, self.coord_output_branches,
                         self.sigma_branches):
            for branch in branches[1:]:
                branch.load_state_dict(branches[0].state_dict())
        for branch in self.sigma_branches:
            nn.init.xavier_uniform_(branch[-1].weight, gain=0.01)
        # 2. the transformer's blanket Xavier (the branches live outside the
        # authors' transformer module).
        skip = ('coord_branches.', 'coord_output_branches.',
                'sigma_branches.')
        for _, p in self._head_matrices(skip):
            nn.init.xavier_uniform_(p)
        nn.init.normal_(self.level_embeds)

    # ------------------------------------------------------------------
    # forward
    def _value_memory(self, feats: Sequence[Tensor]) -> Tuple[Tensor, list]:
        """Flattened value memory ``(B, sum H_l W_l, C)`` = features + sine
        PE + level embedding, and the ``L`` spatial shapes ``(H_l, W_l)``
        as Python ints."""
        values, shapes = [], []
        for lvl, feat in enumerate(feats):
            _, _, h, w = feat.shape
            key = (h, w, feat.device)
            if key not in self._pos_cache:
                self._pos_cache[key] = sine_map_encoding(
                    h, w, self.in_channels // 2, device=feat.device)
            pos = self._pos_cache[key].to(feat.dtype)
            v = feat + pos + self.level_embeds[lvl][:, None, None].to(
                feat.dtype)
            values.append(v.flatten(2).transpose(1, 2))
            shapes.append((h, w))
        # Python ints: the attention needs them as split sizes anyway, and
        # a tensor would be read back with .tolist() (graph-export unsafe).
        return torch.cat(values, dim=1), shapes

    def noisy_references(self, coarse: Tensor) -> Tensor:
        """References of the extra training groups.

        Args:
            coarse (Tensor): ``(B, K, 2)`` detached coarse coordinates.

        Returns:
            Tensor: ``(B, S*K, 2)``, ``S = num_noise_groups`` copies of
            ``coarse`` in which ``S * num_noise_points`` of the ``S*K``
            noisy queries (the same ones for the whole batch) moved by
            Gaussian noise of variance ``noise_variance`` clipped to
            ``[-1, 1]``, the moved positions clipped to ``[-0.7, 1.7]``.
            Other keypoints are exact copies. Which queries move depends
            on ``noise_sampling``: ``'joint'`` (the authors' code,
            ``PoseurTransformer.ref_po_gua``: one random permutation of all
            ``S*K`` noisy queries, so a group may get more or fewer than
            ``num_noise_points``) or ``'per_group'`` (exactly
            ``num_noise_points`` distinct keypoints in every group).
        """
        B, K, _ = coarse.shape
        S, n = self.num_noise_groups, self.num_noise_points
        if self.noise_sampling == 'joint':
            order = torch.rand(S * K, device=coarse.device).argsort()
            chosen = torch.zeros(S * K, dtype=torch.bool,
                                 device=coarse.device)
            chosen[order[:S * n]] = True
            chosen = chosen.view(S, K)
        else:
            order = torch.rand(S, K, device=coarse.device).argsort(dim=1)
            chosen = torch.zeros(S, K, dtype=torch.bool,
                                 device=coarse.device)
            chosen.scatter_(1, order[:, :n], True)
        noise = torch.randn(B, S, K, 2, device=coarse.device,
                            dtype=coarse.dtype)
        noise = (noise * math.sqrt(self.noise_variance)).clamp(-1.0, 1.0)
        refs = coarse[:, None].expand(B, S, K, 2)
        moved = (refs + noise).clamp(-0.7, 1.7)
        refs = torch.where(chosen[None, :, :, None], moved, refs)
        return refs.reshape(B, S * K, 2)

    def forward(self, feats: Sequence[Tensor]) -> dict:
        """
        Args:
            feats (Sequence[Tensor]): ``L`` maps ``(B, C, H_l, W_l)``.

        Returns:
            dict:
            - ``coarse_coords``, ``coarse_sigma``: ``(B, K, 2)``;
            - ``coords``, ``sigmas``: ``(N, B, G*K, 2)`` per decoder layer,
              ``G = 1 + num_noise_groups`` in training mode (with noise
              groups), else 1; the first ``K`` queries are the clean group;
            - ``references``: ``(B, G*K, 2)`` initial references (raw).
        """
        feats = tuple(feats)
        if len(feats) != self.num_feature_levels:
            raise ValueError(
                f'PoseurHead expects {self.num_feature_levels} feature '
                f'levels, got {len(feats)}')
        for i, f in enumerate(feats):
            if f.dim() != 4 or f.shape[1] != self.in_channels:
                raise ValueError(
                    f'feature level {i} must have shape (B, '
                    f'{self.in_channels}, H, W), got {tuple(f.shape)}')
        B = feats[0].shape[0]
        K = self.num_joints
        value, spatial_shapes = self._value_memory(feats)

        pooled = feats[-1].mean(dim=(2, 3))
        coarse_coords = self.coarse_coord(pooled).reshape(B, K, 2)
        coarse_sigma = self.coarse_sigma(pooled).reshape(B, K, 2).sigmoid()

        refs = coarse_coords.detach()
        groups = 1
        if self.training and self.num_noise_groups > 0:
            refs = torch.cat([refs, self.noisy_references(refs)], dim=1)
            groups += self.num_noise_groups
        clipped = refs.clamp(0.0, 1.0)
        num_feats = self.in_channels // 2
        pe = torch.cat([
            sine_point_encoding(refs, num_feats),
            sine_point_encoding(clipped, num_feats)
        ], dim=-1).to(value.dtype)
        query = self.query_norm(self.query_proj(pe))
        query_pos = self.class_embed.weight[None].repeat(B, groups, 1)

        coords, sigmas = [], []
        # Layer 0 samples at the raw coarse references; the refinement
        # starts from their clipped logit (inverse_sigmoid clamps anyway).
        sample_at = refs
        reference = clipped
        for lid, layer in enumerate(self.layers):
            query = layer(query, query_pos, value, sample_at, spatial_shapes,
                          K)
            reference = torch.sigmoid(
                self.coord_branches[lid](query) + inverse_sigmoid(reference))
            coords.append(reference + self.coord_output_branches[lid](query))
            sigmas.append(self.sigma_branches[lid](query).sigmoid())
            sample_at = reference
        return dict(
            coarse_coords=coarse_coords,
            coarse_sigma=coarse_sigma,
            coords=torch.stack(coords),
            sigmas=torch.stack(sigmas),
            references=refs)

    # ------------------------------------------------------------------
    # inference
    def _predict_one(self, feats) -> Tuple[Tensor, Tensor, Tensor]:
        out = self.forward(feats)
        coords = out['coords'][-1, :, :self.num_joints]
        sigma = out['sigmas'][-1, :, :self.num_joints]
        return coords, sigma, self._scores(sigma)

    def _scores(self, sigma: Tensor) -> Tensor:
        """Keypoint scores ``(B, K)`` from sigmas ``(B, K, 2)``: the
        Laplace mass (paper eq. 8) times ``keypoint_score_factor``."""
        scores = laplace_keypoint_scores(sigma, self.laplace_a)
        if self.keypoint_score_factor != 1.0:
            scores = scores * self.keypoint_score_factor
        return scores

    def predict(self,
                feats,
                batch_data_samples: OptSampleList,
                test_cfg: ConfigType = {}) -> Predictions:
        """Keypoints (input pixels via the codec) and Laplace keypoint
        scores of the last decoder layer, with optional flip test (``feats``
        is then ``[feats, feats_of_the_flipped_crops]``, as mmpose's
        ``TopdownPoseEstimator`` passes them).

        Returns:
            list[InstanceData]: per sample ``keypoints`` ``(1, K, 2)``,
            ``keypoint_scores`` ``(1, K)`` and ``keypoint_sigmas``
            ``(1, K, 2)`` (normalised units; the flip-fused value is the
            mean of the two predictions').
        """
        if self.decoder is None:
            raise RuntimeError('PoseurHead.predict needs a decoder (codec) '
                               'config, e.g. dict(type="RegressionLabel", '
                               'input_size=(192, 256))')
        if test_cfg.get('flip_test', False):
            if not (isinstance(feats, (list, tuple)) and len(feats) == 2
                    and all(isinstance(f, (list, tuple)) for f in feats)):
                raise ValueError('flip_test expects feats = [feats, '
                                 'flipped_feats], two sequences of maps')
            meta = batch_data_samples[0].metainfo
            flip_indices = meta['flip_indices']
            if len(flip_indices) != self.num_joints:
                raise ValueError(
                    f'flip_indices has {len(flip_indices)} entries, the '
                    f'head has {self.num_joints} keypoints')
            coords, sigma, scores = self._predict_one(feats[0])
            f_coords, f_sigma, _ = self._predict_one(feats[1])
            f_coords = flip_coordinates(
                f_coords.clone(), flip_indices=flip_indices,
                shift_coords=test_cfg.get('shift_coords', True),
                input_size=meta['input_size'])
            f_sigma = f_sigma[:, flip_indices]
            f_scores = self._scores(f_sigma)
            coords, scores = fuse_flip_predictions(coords, scores, f_coords,
                                                   f_scores, self.flip_power)
            sigma = (sigma + f_sigma) * 0.5
        else:
            coords, sigma, scores = self._predict_one(feats)

        # NaN/Inf outputs: warned, zeroed, their keypoints get score 0.
        (coords, sigma, scores), bad = sanitize_outputs(
            'PoseurHead', self.num_joints, coordinates=coords, sigmas=sigma,
            keypoint_scores=scores)
        scores = scores.masked_fill(bad, 0.0)
        preds = self.decode(coords[:, None])
        scores_np = to_numpy(scores.float())
        sigma_np = to_numpy(sigma.float())
        for i, pred in enumerate(preds):
            pred.keypoint_scores = scores_np[i:i + 1]
            pred.keypoint_sigmas = sigma_np[i:i + 1]
        return preds

    # ------------------------------------------------------------------
    # training
    def loss(self,
             feats: Tuple[Tensor],
             batch_data_samples: OptSampleList,
             train_cfg: ConfigType = {}) -> dict:
        """RLE losses: ``loss_coarse`` and ``loss_dec{l}`` per decoder
        layer (every query group against the same targets), plus
        ``acc_pose`` (PCK@0.05 of the last layer's clean group)."""
        out = self.forward(feats)
        target = torch.cat([
            d.gt_instance_labels.keypoint_labels for d in batch_data_samples
        ]).to(out['coords'].dtype)
        weight = torch.cat([
            d.gt_instance_labels.keypoint_weights for d in batch_data_samples
        ]).to(out['coords'].dtype)
        if target.shape != out['coarse_coords'].shape:
            raise ValueError(
                f'keypoint_labels of shape {tuple(target.shape)} do not '
                f'match the predictions {tuple(out["coarse_coords"].shape)} '
                f'(one instance per sample expected, top-down)')
        losses = dict(
            loss_coarse=self.loss_coarse(out['coarse_coords'],
                                         out['coarse_sigma'], target, weight))
        groups = out['coords'].shape[2] // self.num_joints
        target_g = target.repeat(1, groups, 1)
        weight_g = weight.repeat(1, groups)
        for lid in range(out['coords'].shape[0]):
            losses[f'loss_dec{lid}'] = self.loss_decoder(
                out['coords'][lid], out['sigmas'][lid], target_g, weight_g)

        final = out['coords'][-1, :, :self.num_joints]
        _, avg_acc, _ = keypoint_pck_accuracy(
            pred=to_numpy(final.detach().float()),
            gt=to_numpy(target.float()),
            mask=to_numpy(weight) > 0,
            thr=0.05,
            norm_factor=np.ones((final.size(0), 2), dtype=np.float32))
        losses['acc_pose'] = torch.tensor(avg_acc, device=target.device)
        return losses

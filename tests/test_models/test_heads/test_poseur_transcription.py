"""``PoseurHead`` against a transcription of the authors' Poseur decoder.

The module ``AuthorsPoseurHead`` below re-derives, in plain PyTorch, what the
authors' code computes (aim-uofa/Poseur, mmpose 0.28 fork):

* ``mmpose/models/heads/poseur_head.py`` -- ``PoseurHead.forward`` (per-layer
  coordinates ``sigmoid(branch(h) + logit(ref)) + output_branch(h)`` and
  sigmas), ``get_enc_rle_loss`` / ``get_dec_rle_loss`` (``nf_loss``),
  ``fliplr_rle_regression`` (``x -> 2 * 0.5 - x``);
* ``mmpose/models/utils/transformer.py`` -- ``PoseurTransformer.forward``
  (zero-layer encoder: memory = feature + sine PE + level embedding; coarse
  proposal from the pooled LAST level through ``Linear_with_norm``; query =
  LayerNorm(Linear(PE(raw ref) ++ PE(clipped ref))); class embeddings as
  query positions), ``get_proposal_pos_embed``,
  ``DeformableDetrTransformerDecoder.forward`` (layer 0 samples at the raw
  reference, refinement with ``inverse_sigmoid``, no detach) and
  ``DetrTransformerDecoderLayer_grouped`` (self-attention within each group of
  K queries, post-norm);
* ``mmpose/ops/multi_scale_deform_attn.py`` --
  ``MultiScaleDeformableAttention_post_value`` with
  ``multi_scale_deformable_attn_pytorch`` (value repeated for each of the 8
  heads, sampled unprojected, then the per-head ``nn.Embedding`` value
  projection);
* mmcv 1.x ``SinePositionalEncoding`` (``normalize=True, offset=-0.5``),
  ``MultiheadAttention`` (``q = k = x + pos, v = x``, residual) and ``FFN``;
* ``mmpose/models/detectors/poseur.py`` -- flip fusion ``type2`` with
  ``get_p`` (Laplace mass times 0.7, coordinates weighted by ``p ** 5``);
* ``mmpose/models/losses/rle_loss.py`` -- ``RLELoss_poseur`` in both of its
  released normalisations, and the RealNVP of ``rle_regression_head.py``.

Its parameters carry the official checkpoint names (``keypoint_head.*``
without the prefix); the same random weights reach our head only through
``convert_poseur_state_dict``. Everything runs in float32 on tiny shapes.
"""
import math
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.structures import InstanceData
from torch import nn

import mmkp_ext  # noqa: F401  (registration)
from mmkp_ext.converters.poseur_checkpoint import convert_poseur_state_dict
from mmkp_ext.models.heads.poseur_head import PoseurHead
from mmpose.structures import PoseDataSample

B, K, C, HEADS, P, NUM_LAYERS, S = 2, 5, 32, 8, 2, 3, 2
FLIP_PAIRS = [(1, 2), (3, 4)]
FLIP = [0, 2, 1, 4, 3]
LEVELS = [(8, 6), (4, 3), (2, 2)]  # (H, W), highest resolution first
INPUT = (24, 32)  # (w, h)
FFN = 64


# ----------------------------------------------------------------------------
# transcription of the authors' code
def authors_inverse_sigmoid(x, eps=1e-5):
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def mmcv_sine_pe(mask, num_feats, temperature=10000, offset=-0.5,
                 eps=1e-6, scale=2 * math.pi):
    """mmcv 1.x SinePositionalEncoding(normalize=True) of a padding mask
    (B, H, W) -> (B, 2 * num_feats, H, W), y features first."""
    not_mask = 1 - mask.to(torch.int)
    y_embed = not_mask.cumsum(1, dtype=torch.float32)
    x_embed = not_mask.cumsum(2, dtype=torch.float32)
    y_embed = (y_embed + offset) / (y_embed[:, -1:, :] + eps) * scale
    x_embed = (x_embed + offset) / (x_embed[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_feats, dtype=torch.float32)
    dim_t = temperature**(2 * (dim_t // 2) / num_feats)
    pos_x = x_embed[:, :, :, None] / dim_t
    pos_y = y_embed[:, :, :, None] / dim_t
    b, h, w = mask.shape
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()),
                        dim=4).view(b, h, w, -1)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()),
                        dim=4).view(b, h, w, -1)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


def proposal_pos_embed(proposals, embed_dims, temperature=10000):
    """PoseurTransformer.get_proposal_pos_embed: (N, Q, 2) -> (N, Q, C)."""
    num_feats = embed_dims // 2
    dim_t = torch.arange(num_feats, dtype=torch.float32)
    dim_t = temperature**(2 * (dim_t // 2) / num_feats)
    pos = (proposals * 2 * math.pi)[:, :, :, None] / dim_t
    return torch.stack((pos[:, :, :, 0::2].sin(), pos[:, :, :, 1::2].cos()),
                       dim=4).flatten(2)


class LinearWithNorm(nn.Module):
    """Linear_with_norm: x W^T (/ ||x|| if norm) + b; weights in .linear."""

    def __init__(self, cin, cout, norm=True):
        super().__init__()
        self.norm = norm
        self.linear = nn.Linear(cin, cout)

    def forward(self, x):
        y = x.matmul(self.linear.weight.t())
        if self.norm:
            y = y / torch.norm(x, dim=-1, keepdim=True)
        return y + self.linear.bias


class SelfAttn(nn.Module):
    """mmcv MultiheadAttention (seq-first, post-norm: identity = query)."""

    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(C, HEADS, dropout=0.0)

    def forward(self, query, query_pos):
        q = query + query_pos
        return query + self.attn(q, q, query)[0]


class PostValueAttn(nn.Module):
    """MultiScaleDeformableAttention_post_value, batch_first=False, with the
    pure-PyTorch sampling (multi_scale_deformable_attn_pytorch)."""

    def __init__(self):
        super().__init__()
        L = len(LEVELS)
        self.sampling_offsets = nn.Linear(C, HEADS * L * P * 2)
        self.attention_weights = nn.Linear(C, HEADS * L * P)
        self.output_proj = nn.Linear(C, C)
        self.value_proj_weight = nn.Embedding(8 * C, C // 8)
        self.value_proj_bias = nn.Embedding(8, C // 8)

    def forward(self, query, value, query_pos, reference_points,
                spatial_shapes):
        identity = query
        query = (query + query_pos).permute(1, 0, 2)
        value = value.permute(1, 0, 2)
        bs, nq, _ = query.shape
        L = len(LEVELS)
        value = value[:, :, None, :].repeat(1, 1, HEADS, 1)
        offsets = self.sampling_offsets(query).view(bs, nq, HEADS, L, P, 2)
        attn = self.attention_weights(query).view(bs, nq, HEADS, L * P)
        attn = attn.softmax(-1).view(bs, nq, HEADS, L, P)
        normalizer = torch.stack(
            [spatial_shapes[..., 1], spatial_shapes[..., 0]], -1)
        loc = reference_points[:, :, None, :, None, :] + \
            offsets / normalizer[None, None, None, :, None, :]
        # multi_scale_deformable_attn_pytorch
        _, _, nh, dims = value.shape
        value_list = value.split([h * w for h, w in LEVELS], dim=1)
        grids = 2 * loc - 1
        sampled = []
        for lvl, (h, w) in enumerate(LEVELS):
            v_l = value_list[lvl].flatten(2).transpose(1, 2).reshape(
                bs * nh, dims, h, w)
            g_l = grids[:, :, :, lvl].transpose(1, 2).flatten(0, 1)
            sampled.append(F.grid_sample(v_l, g_l, mode='bilinear',
                                         padding_mode='zeros',
                                         align_corners=False))
        attn = attn.transpose(1, 2).reshape(bs * nh, 1, nq, L * P)
        out = (torch.stack(sampled, dim=-2).flatten(-2) * attn).sum(-1)
        out = out.view(bs, nh * dims, nq).transpose(1, 2)
        # the per-head value projection after sampling
        ch = out.shape[-1]
        w_proj = self.value_proj_weight.weight.reshape(8, ch // 8, -1)
        out = out.reshape(bs, nq, 8, ch // 8)
        out = torch.einsum('bqhc,hco->bqho', out, w_proj)
        out = out + self.value_proj_bias.weight[None, None]
        out = self.output_proj(out.flatten(-2)).permute(1, 0, 2)
        return out + identity


class GroupedDecoderLayer(nn.Module):
    """DetrTransformerDecoderLayer_grouped, operation order self_attn, norm,
    cross_attn, norm, ffn, norm (seq-first tensors (Q, B, C))."""

    def __init__(self):
        super().__init__()
        self.attentions = nn.ModuleList([SelfAttn(), PostValueAttn()])
        ffn = nn.Module()
        ffn.layers = nn.Sequential(
            nn.Sequential(nn.Linear(C, FFN), nn.ReLU()), nn.Linear(FFN, C))
        self.ffns = nn.ModuleList([ffn])
        self.norms = nn.ModuleList([nn.LayerNorm(C) for _ in range(3)])

    def forward(self, query, value, query_pos, reference_points,
                spatial_shapes):
        q_total, bs, _ = query.shape
        g = q_total // K
        # '(g k) b c -> k (g b) c'
        regroup = (lambda t: t.reshape(g, K, bs, C).permute(1, 0, 2, 3)
                   .reshape(K, g * bs, C))
        ungroup = (lambda t: t.reshape(K, g, bs, C).permute(1, 0, 2, 3)
                   .reshape(g * K, bs, C))
        query = ungroup(self.attentions[0](regroup(query),
                                           regroup(query_pos)))
        query = self.norms[0](query)
        query = self.attentions[1](query, value, query_pos,
                                   reference_points, spatial_shapes)
        query = self.norms[1](query)
        query = query + self.ffns[0].layers(query)
        return self.norms[2](query)


class RealNVP(nn.Module):
    """rle_regression_head.RealNVP with prior N((0.5, 0.5), I)."""

    def __init__(self):
        super().__init__()
        self.register_buffer(
            'mask', torch.tensor([[0, 1], [1, 0]] * 3, dtype=torch.float32))
        net = (lambda tanh: nn.Sequential(
            nn.Linear(2, 64), nn.LeakyReLU(), nn.Linear(64, 64),
            nn.LeakyReLU(), nn.Linear(64, 2), *([nn.Tanh()] if tanh else [])))
        self.t = nn.ModuleList([net(False) for _ in range(6)])
        self.s = nn.ModuleList([net(True) for _ in range(6)])

    def log_prob(self, x):
        log_det, z = x.new_zeros(x.shape[0]), x
        for i in reversed(range(6)):
            z_ = self.mask[i] * z
            s = self.s[i](z_) * (1 - self.mask[i])
            t = self.t[i](z_) * (1 - self.mask[i])
            z = (1 - self.mask[i]) * (z - t) * torch.exp(-s) + z_
            log_det = log_det - s.sum(dim=1)
        prior = torch.distributions.MultivariateNormal(
            torch.zeros(2) + 0.5, torch.eye(2))
        return prior.log_prob(z) + log_det


def rle_loss_poseur(pred, sigma, nf_loss, target, weight, per_query):
    """RLELoss_poseur.forward; ``per_query`` selects the later release's
    ``/ (B * K)`` instead of the original ``/ B``. weight: (B, K, 2)."""
    amp = 1 / math.sqrt(2 * math.pi)
    log_q = torch.log(sigma / amp) + torch.abs(target - pred) / (
        math.sqrt(2) * sigma + 1e-9)
    loss = nf_loss * weight[:, :, :1] + log_q * weight
    if weight.sum() > 0:
        if per_query:
            return loss.sum() / (loss.shape[0] * loss.shape[1])
        return loss.sum() / len(loss)
    return loss.sum()


class AuthorsPoseurHead(nn.Module):
    """The authors' keypoint head (with its PoseurTransformer), eval or
    train with externally given noisy references."""

    def __init__(self):
        super().__init__()
        L = len(LEVELS)
        t = nn.Module()
        t.level_embeds = nn.Parameter(torch.empty(L, C))
        t.fc_coord = LinearWithNorm(C, K * 2)
        t.fc_sigma = LinearWithNorm(C, K * 2, norm=False)
        t.pos_trans = nn.Linear(C * 2, C)
        t.pos_trans_norm = nn.LayerNorm(C)
        t.pos_embed = nn.Embedding(K, C)
        t.decoder = nn.Module()
        t.decoder.layers = nn.ModuleList(
            [GroupedDecoderLayer() for _ in range(NUM_LAYERS)])
        self.transformer = t

        def mlp():
            return nn.Sequential(nn.Linear(C, C), nn.ReLU(), nn.Linear(C, C),
                                 nn.ReLU(), nn.Linear(C, 2))

        self.fc_coord_branches = nn.ModuleList(
            [mlp() for _ in range(NUM_LAYERS)])
        self.fc_coord_output_branches = nn.ModuleList(
            [mlp() for _ in range(NUM_LAYERS)])
        self.fc_sigma_branches = nn.ModuleList([
            nn.Sequential(nn.Linear(C, C), nn.Linear(C, C),
                          LinearWithNorm(C, 2, norm=False))
            for _ in range(NUM_LAYERS)
        ])
        self.enc_flow = RealNVP()
        self.dec_flow = RealNVP()

    def forward(self, mlvl_feats, noisy_refs=None):
        t = self.transformer
        bs = mlvl_feats[0].shape[0]
        feats, pos = [], []
        for lvl, feat in enumerate(mlvl_feats):
            mask = feat.new_zeros((bs, ) + feat.shape[-2:], dtype=torch.bool)
            pe = mmcv_sine_pe(mask, C // 2)
            feats.append(feat.flatten(2).transpose(1, 2))
            pos.append(pe.flatten(2).transpose(1, 2) +
                       t.level_embeds[lvl].view(1, 1, -1))
        # zero-layer encoder: query + query_pos
        memory = torch.cat(feats, 1) + torch.cat(pos, 1)  # (B, N, C)
        spatial_shapes = torch.as_tensor(LEVELS, dtype=torch.long)

        x = mlvl_feats[-1].mean(dim=(2, 3))  # AdaptiveAvgPool2d(1)
        pred_jts = t.fc_coord(x).reshape(bs, K, 2)
        sigma = t.fc_sigma(x).reshape(bs, K, -1).sigmoid()
        enc = dict(pred_jts=pred_jts, sigma=sigma)

        reference_points = pred_jts.detach()
        groups = 1
        if noisy_refs is not None:
            reference_points = torch.cat([reference_points, noisy_refs], 1)
            groups += noisy_refs.shape[1] // K
        clipped = reference_points.clip(0, 1)
        query = t.pos_trans_norm(t.pos_trans(torch.cat([
            proposal_pos_embed(reference_points, C),
            proposal_pos_embed(clipped, C)
        ], dim=2)))
        query_pos = t.pos_embed.weight.repeat(bs, groups, 1)

        # DeformableDetrTransformerDecoder (valid ratios all 1)
        output = query.permute(1, 0, 2)
        value = memory.permute(1, 0, 2)
        query_pos = query_pos.permute(1, 0, 2)
        hs, inter_refs = [], []
        ref = reference_points
        for lid, layer in enumerate(t.decoder.layers):
            ref_input = ref[:, :, None].expand(-1, -1, len(LEVELS), -1)
            output = layer(output, value, query_pos, ref_input,
                           spatial_shapes)
            tmp = self.fc_coord_branches[lid](output.permute(1, 0, 2))
            ref = (tmp + authors_inverse_sigmoid(ref)).sigmoid()
            hs.append(output.permute(1, 0, 2))
            inter_refs.append(ref)

        # PoseurHead.forward
        coords, sigmas = [], []
        for lvl in range(len(hs)):
            reference = clipped if lvl == 0 else inter_refs[lvl - 1]
            tmp = self.fc_coord_branches[lvl](hs[lvl]) + \
                authors_inverse_sigmoid(reference)
            coords.append(tmp.sigmoid() +
                          self.fc_coord_output_branches[lvl](hs[lvl]))
            sigmas.append(self.fc_sigma_branches[lvl](hs[lvl]))
        return enc, dict(pred_jts=torch.stack(coords),
                         sigma=torch.stack(sigmas).sigmoid())

    def get_loss(self, enc, dec, target, weight, per_query):
        """get_enc_rle_loss + get_dec_rle_loss (with_box_refine=True)."""
        bs = target.shape[0]
        losses = {}
        bar = (enc['pred_jts'] - target) / enc['sigma']
        log_phi = self.enc_flow.log_prob(bar.reshape(-1, 2)).reshape(bs, K, 1)
        nf = torch.log(enc['sigma']) - log_phi
        losses['enc'] = rle_loss_poseur(enc['pred_jts'], enc['sigma'], nf,
                                        target, weight, per_query)
        groups = dec['pred_jts'].shape[2] // K
        target = target.repeat(1, groups, 1)
        weight = weight.repeat(1, groups, 1)
        for i, (pred, sig) in enumerate(zip(dec['pred_jts'], dec['sigma'])):
            bar = (pred - target) / sig
            log_phi = self.dec_flow.log_prob(bar.reshape(-1, 2)).reshape(
                bs, K * groups, 1)
            nf = torch.log(sig) - log_phi
            losses[f'dec{i}'] = rle_loss_poseur(pred, sig, nf, target,
                                                weight, per_query)
        return losses


def authors_get_p(sigma, p_x=0.2, factor=0.7):
    """Poseur.get_p: Laplace mass within +-p_x per axis, product, x 0.7."""
    p = 1 - torch.exp(-(p_x / sigma))
    return (p[..., 0] * p[..., 1])[..., None] * factor


def authors_flip_fuse(dec_a, dec_b, shift_px, factor):
    """Poseur.forward_test with filp_fuse_type='type2': the flipped pass goes
    through fliplr_rle_regression (pairs swapped, x -> 2 * 0.5 - x; our
    shift_coords=True additionally moves x by -1/w), then p ** 5 weights.
    Returns normalised coords (B, K, 2) and scores (B, K)."""
    coords, sigma = dec_a['pred_jts'][-1], dec_a['sigma'][-1]
    f_coords = dec_b['pred_jts'][-1].clone()
    f_sigma = dec_b['sigma'][-1].clone()
    for left, right in FLIP_PAIRS:
        f_coords[:, [left, right]] = f_coords[:, [right, left]]
        f_sigma[:, [left, right]] = f_sigma[:, [right, left]]
    f_coords[..., 0] = 0.5 * 2 - f_coords[..., 0] - shift_px / INPUT[0]
    p, p_f = authors_get_p(sigma, factor=factor), authors_get_p(
        f_sigma, factor=factor)
    n = 5
    fused = (coords * p**n + f_coords * p_f**n) / (p**n + p_f**n + 1e-10)
    return fused, ((p + p_f) * 0.5)[..., 0]


# ----------------------------------------------------------------------------
# fixtures
def authors_model(seed=0):
    torch.manual_seed(seed)
    model = AuthorsPoseurHead()
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = p.shape[-1] if p.dim() > 1 else 16
            p.uniform_(-1.0, 1.0).mul_(1.0 / math.sqrt(fan_in))
        t = model.transformer
        t.level_embeds.normal_()
        # Outputs sensitive to every term: unit-scale class embeddings (the
        # self-attention's positional term) and branches that keep the
        # variance of their input.
        t.pos_embed.weight.normal_()
        for branches in (model.fc_coord_branches,
                         model.fc_coord_output_branches):
            for branch in branches:
                for m in branch[:4]:
                    if isinstance(m, nn.Linear):
                        m.weight.mul_(math.sqrt(6.0))
        # Coarse proposals partly outside [0, 1]: layer 0 must sample at
        # the raw reference, the query must encode raw and clipped ones.
        t.fc_coord.linear.weight.mul_(0.3)
        t.fc_coord.linear.bias.copy_(torch.linspace(-0.35, 1.3, 2 * K))
        for layer in t.decoder.layers:
            so = layer.attentions[1].sampling_offsets
            so.bias.uniform_(-3.0, 3.0)
            so.weight.mul_(2.0)
        # Sigmas spread over (0, 1), so keypoint scores differ a lot.
        for branch in model.fc_sigma_branches:
            branch[2].linear.weight.mul_(60.0)
            branch[2].linear.bias.fill_(-2.0)
    return model.eval()


def our_head(authors, **kw):
    cfg = dict(num_joints=K, in_channels=C,
               num_feature_levels=len(LEVELS),
               num_decoder_layers=NUM_LAYERS, num_heads=HEADS, num_points=P,
               feedforward_channels=FFN, dropout=0.0, num_noise_groups=S,
               decoder=dict(type='RegressionLabel', input_size=INPUT))
    cfg.update(kw)
    head = PoseurHead(**cfg)
    official = {f'keypoint_head.{k}': v for k, v in
                authors.state_dict().items()}
    converted = convert_poseur_state_dict(official)
    head.load_state_dict({k[len('head.'):]: v for k, v in converted.items()},
                         strict=True)
    return head.eval()


def feats_for(seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, C, h, w, generator=g) for h, w in LEVELS]


def official_grad_names(model):
    """official parameter name -> our head's name (through the converter)."""
    names = {f'keypoint_head.{n}': n for n, _ in model.named_parameters()}
    converted = convert_poseur_state_dict(
        {k: torch.zeros(1) for k in names})
    ours = list(converted)
    return {names[k]: o[len('head.'):] for k, o in zip(names, ours)}


# ----------------------------------------------------------------------------
# tests
def test_forward_matches_authors_eval():
    """Coarse coords and sigmas, every decoder layer's coords and sigmas."""
    authors = authors_model()
    head = our_head(authors)
    feats = feats_for(1)
    with torch.no_grad():
        enc, dec = authors(feats)
        out = head(feats)
    coarse = enc['pred_jts']
    assert (coarse < 0).any() and (coarse > 1).any(), \
        'the test needs coarse references outside [0, 1]'
    tol = dict(atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out['coarse_coords'], enc['pred_jts'], **tol)
    torch.testing.assert_close(out['coarse_sigma'], enc['sigma'], **tol)
    assert out['coords'].shape == (NUM_LAYERS, B, K, 2)
    for lid in range(NUM_LAYERS):
        torch.testing.assert_close(out['coords'][lid], dec['pred_jts'][lid],
                                   **tol)
        torch.testing.assert_close(out['sigmas'][lid], dec['sigma'][lid],
                                   **tol)
    # the layers really differ from one another
    assert (dec['pred_jts'][0] - dec['pred_jts'][-1]).abs().max() > 1e-2


def _with_noise(head, noisy):
    head.noisy_references = types.MethodType(lambda self, coarse: noisy,
                                             head)
    return head


def test_training_forward_loss_and_gradients_match_authors():
    """Train mode with the same noisy references in both (S groups), every
    layer's outputs, both RLE normalisations, and the gradient of every
    parameter (which pins the un-detached reference chain)."""
    authors = authors_model(seed=3)
    feats = feats_for(4)
    g = torch.Generator().manual_seed(5)
    noisy = torch.rand(B, S * K, 2, generator=g) * 2.2 - 0.6
    target = torch.rand(B, K, 2, generator=g)
    vis = torch.tensor([[1, 1, 0, 1, 1], [1, 0, 1, 1, 1]], dtype=torch.float)
    for normalize in ('batch', 'batch_queries'):
        authors.zero_grad()
        enc, dec = authors(feats, noisy_refs=noisy)
        ref_losses = authors.get_loss(
            enc, dec, target, vis[..., None].repeat(1, 1, 2),
            per_query=normalize == 'batch_queries')
        sum(ref_losses.values()).backward()

        loss_cfg = dict(type='PoseurRLELoss', normalize=normalize)
        head = _with_noise(
            our_head(authors, loss_coarse=loss_cfg, loss_decoder=loss_cfg),
            noisy).train()
        out = head(feats)
        tol = dict(atol=1e-5, rtol=1e-5)
        assert out['coords'].shape == (NUM_LAYERS, B, (1 + S) * K, 2)
        for lid in range(NUM_LAYERS):
            torch.testing.assert_close(out['coords'][lid],
                                       dec['pred_jts'][lid], **tol)
            torch.testing.assert_close(out['sigmas'][lid], dec['sigma'][lid],
                                       **tol)
        samples = []
        for b in range(B):
            s = PoseDataSample()
            s.gt_instance_labels = InstanceData(
                keypoint_labels=target[b:b + 1],
                keypoint_weights=vis[b:b + 1])
            samples.append(s)
        losses = head.loss(feats, samples)
        torch.testing.assert_close(losses['loss_coarse'], ref_losses['enc'],
                                   atol=1e-4, rtol=1e-5)
        for lid in range(NUM_LAYERS):
            torch.testing.assert_close(losses[f'loss_dec{lid}'],
                                       ref_losses[f'dec{lid}'], atol=1e-4,
                                       rtol=1e-5)
        total = sum(v for k, v in losses.items() if k.startswith('loss'))
        head.zero_grad()
        total.backward()
        ours = dict(head.named_parameters())
        checked = 0
        for off_name, our_name in official_grad_names(authors).items():
            p_ref = dict(authors.named_parameters())[off_name]
            g_ours = ours[our_name].grad
            g_ref = p_ref.grad
            if g_ref is None:
                assert g_ours is None or not g_ours.any(), our_name
                continue
            # float32 sums in another order: tolerance relative to the
            # largest gradient entry of the tensor
            scale = max(1.0, g_ref.abs().max().item())
            torch.testing.assert_close(g_ours, g_ref, atol=2e-5 * scale,
                                       rtol=1e-3,
                                       msg=lambda m: f'{our_name}: {m}')
            checked += 1
        assert checked > 100
    # the two normalisations differ by the number of queries
    assert ref_losses['dec0'].item() != pytest.approx(
        ref_losses['enc'].item())


def _samples():
    out = []
    for _ in range(B):
        s = PoseDataSample()
        s.set_metainfo(dict(flip_indices=FLIP, input_size=INPUT))
        out.append(s)
    return out


@pytest.mark.parametrize('shift_coords', [True, False])
@pytest.mark.parametrize('score_factor', [1.0, 0.7])
def test_flip_test_matches_authors_type2(shift_coords, score_factor):
    """predict with flip test = the authors' type2 fusion (p ** 5 weights of
    get_p) of the transcription's two passes. shift_coords=False is the
    authors' mirror x -> 1 - x; True (our default) x -> 1 - x - 1/w. The
    authors' get_p carries the factor 0.7 (keypoint_score_factor=0.7); the
    paper's score has none (1.0)."""
    authors = authors_model(seed=6)
    head = our_head(authors, keypoint_score_factor=score_factor)
    fa, fb = feats_for(7), feats_for(8)
    with torch.no_grad():
        _, dec_a = authors(fa)
        _, dec_b = authors(fb)
        preds = head.predict([fa, fb], _samples(),
                             test_cfg=dict(flip_test=True,
                                           shift_coords=shift_coords))
    fused, scores = authors_flip_fuse(dec_a, dec_b,
                                      1.0 if shift_coords else 0.0,
                                      score_factor)
    kpts = np.stack([p.keypoints[0] for p in preds])
    kscores = np.stack([p.keypoint_scores[0] for p in preds])
    np.testing.assert_allclose(kpts, fused.numpy() * INPUT, atol=2e-4,
                               rtol=1e-5)
    np.testing.assert_allclose(kscores, scores.numpy(), atol=1e-6,
                               rtol=1e-5)
    # The test can tell p ** 5 from p ** 1 and the two mirror conventions.
    p_a = authors_get_p(dec_a['sigma'][-1])[..., 0]
    f_sig = dec_b['sigma'][-1][:, FLIP]
    p_b = authors_get_p(f_sig)[..., 0]
    assert (p_a / p_b - 1).abs().max() > 0.2, 'scores too similar'
    f_xy = dec_b['pred_jts'][-1][:, FLIP].clone()
    f_xy[..., 0] = 1 - f_xy[..., 0] - (1.0 if shift_coords else 0.0) / \
        INPUT[0]
    w1 = (p_a / (p_a + p_b))[..., None]
    linear = dec_a['pred_jts'][-1] * w1 + f_xy * (1 - w1)
    assert np.abs(kpts - linear.numpy() * INPUT).max() > 0.05
    other = fused.clone()
    other[..., 0] += (1.0 if shift_coords else -1.0) / INPUT[0] * (
        p_b**5 / (p_a**5 + p_b**5))
    assert np.abs(kpts - other.numpy() * INPUT).max() > 0.05


def test_predict_without_flip_matches_authors_last_layer():
    authors = authors_model(seed=9)
    head = our_head(authors)
    feats = feats_for(10)
    with torch.no_grad():
        _, dec = authors(feats)
        preds = head.predict(feats, _samples(), test_cfg={})
    kpts = np.stack([p.keypoints[0] for p in preds])
    np.testing.assert_allclose(kpts, dec['pred_jts'][-1].numpy() * INPUT,
                               atol=1e-4, rtol=1e-5)
    scores = np.stack([p.keypoint_scores[0] for p in preds])
    # the paper's score: get_p without the 0.7
    np.testing.assert_allclose(
        scores, authors_get_p(dec['sigma'][-1], factor=1.0)[..., 0].numpy(),
        rtol=1e-5)

"""Tests of the pure-PyTorch deformable attention layers (EMSDA and MSDA):
sampling location and units on hand-made value maps (value = pixel
coordinate), equality of the two forms with the same weights, the
Deformable-DETR init, half-precision autocast, and argument errors."""
import math

import pytest
import torch

from _helpers import randomise_
from mmkp_ext.models.layers import EMSDeformAttn, MSDeformAttn

# 256x192 input, strides 8/16 would be too big for a unit test: tiny levels.
SHAPES = torch.tensor([[4, 6], [2, 3]])


def coordinate_value(shapes, batch=1):
    """(B, N, 4) value: per level, channel 0 = pixel column j, 1 = row i,
    2 = 1, 3 = level index, flattened row-major level after level."""
    maps = []
    for lvl, (h, w) in enumerate(shapes.tolist()):
        i, j = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                              torch.arange(w, dtype=torch.float32),
                              indexing='ij')
        m = torch.stack([j, i, torch.ones_like(i), torch.full_like(i, lvl)],
                        -1)
        maps.append(m.reshape(-1, 4))
    return torch.cat(maps, 0)[None].repeat(batch, 1, 1)


def make_hand_layer(cls, offsets, level_logits):
    """C=4, 2 heads, 2 levels, 1 point; identity value/output projections
    that give head m the sampled (x, y) channels; fixed offsets (pixels)
    per (head, level); attention logits per (head, level) so that a level
    can be selected exactly (-1e4 -> weight exactly 0)."""
    layer = cls(embed_dims=4, num_heads=2, num_levels=2, num_points=1,
                dropout=0.0)
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
        layer.sampling_offsets.bias.copy_(
            torch.tensor(offsets, dtype=torch.float32).reshape(-1))
        layer.attention_weights.bias.copy_(
            torch.tensor(level_logits, dtype=torch.float32).reshape(-1))
        layer.output_proj.weight.copy_(torch.eye(4))
        if cls is EMSDeformAttn:
            # head m: rows m*C + c; take channels 0 (x) and 1 (y).
            w = layer.value_proj_weight.view(2, 4, 2)
            w[:, 0, 0] = 1.0
            w[:, 1, 1] = 1.0
        else:
            # identity: head 0 samples channels (x, y); head 1 gets them too
            # through rows 2, 3.
            vw = torch.zeros(4, 4)
            vw[0, 0] = vw[1, 1] = vw[2, 0] = vw[3, 1] = 1.0
            layer.value_proj.weight.copy_(vw)
    return layer.eval()


@pytest.mark.parametrize('cls', [EMSDeformAttn, MSDeformAttn])
def test_sampling_location_and_units(cls):
    """Sample = pixel coordinate: out = ref * (W, H) + offset - 0.5 (pixel
    centres at +0.5, align_corners=False), per head and per level."""
    # offsets[head][level] = (dx, dy) in pixels of that level.
    offsets = [[[1.0, 0.5], [0.0, 0.0]], [[-0.5, 0.25], [0.0, 0.0]]]
    query = torch.zeros(1, 2, 4)
    ref = torch.tensor([[[0.5, 0.5], [0.3, 0.6]]])
    value = coordinate_value(SHAPES)
    # Level 0 only (level 1 logits -1e4).
    layer = make_hand_layer(cls, offsets, [[0.0, -1e4], [0.0, -1e4]])
    out = layer(query, value, ref, SHAPES)
    H, W = 4, 6
    expect = []
    for x0, y0 in ref[0].tolist():
        row = []
        for m in range(2):
            dx, dy = offsets[m][0]
            row += [x0 * W + dx - 0.5, y0 * H + dy - 0.5]
        expect.append(row)
    torch.testing.assert_close(out[0], torch.tensor(expect), atol=1e-5,
                               rtol=0)

    # Level 1 only, per-level reference points (B, Q, L, 2): only the
    # level-1 reference matters, offsets scale with level 1's (W, H) = (3, 2).
    offsets = [[[0.0, 0.0], [0.5, -0.25]], [[0.0, 0.0], [-0.75, 0.5]]]
    layer = make_hand_layer(cls, offsets, [[-1e4, 0.0], [-1e4, 0.0]])
    ref_l = torch.tensor([[[[0.1, 0.1], [0.5, 0.5]],
                           [[0.9, 0.9], [0.6, 0.4]]]])
    out = layer(query, value, ref_l, SHAPES)
    expect = []
    for q in range(2):
        x0, y0 = ref_l[0, q, 1].tolist()
        row = []
        for m in range(2):
            dx, dy = offsets[m][1]
            row += [x0 * 3 + dx - 0.5, y0 * 2 + dy - 0.5]
        expect.append(row)
    torch.testing.assert_close(out[0], torch.tensor(expect), atol=1e-5,
                               rtol=0)


def test_zeros_padding_and_level_weights():
    """Equal logits give each level weight 0.5; the constant channel shows
    zeros padding (it keeps only the in-bounds bilinear weight)."""
    layer = EMSDeformAttn(embed_dims=4, num_heads=1, num_levels=2,
                          num_points=1, dropout=0.0)
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
        # (dx, dy) = (-0.5, 0) px on level 0, (0, 0) on level 1.
        layer.sampling_offsets.bias.copy_(torch.tensor([-0.5, 0., 0., 0.]))
        layer.output_proj.weight.copy_(torch.eye(4))
        layer.value_proj_weight.copy_(torch.eye(4))
    ref = torch.tensor([[[0.25 / 6, 0.5]]])
    out = layer(torch.zeros(1, 1, 4), coordinate_value(SHAPES), ref,
                SHAPES)[0, 0]
    # Pixel coords are x * W - 0.5. Level 0 (W=6, H=4): px = 0.25 - 0.5 -
    # 0.5 = -0.75 -> weight 0.25 on column 0, 0.75 on the zero padding;
    # py = 1.5. Level 1 (W=3, H=2): px = 0.125 - 0.5 = -0.375 -> 0.625 on
    # column 0; py = 0.5.
    lvl0 = torch.tensor([0.25 * 0, 0.25 * 1.5, 0.25, 0.25 * 0])
    lvl1 = torch.tensor([0.625 * 0, 0.625 * 0.5, 0.625, 0.625 * 1])
    torch.testing.assert_close(out, 0.5 * lvl0 + 0.5 * lvl1, atol=1e-5,
                               rtol=0)


def copy_emsda_to_msda(ems, ms):
    """Same function as an MSDA: value_proj.weight[m*d:(m+1)*d] = W_m^T."""
    M, C, d = ems.num_heads, ems.embed_dims, ems.head_dims
    for name in ('sampling_offsets', 'attention_weights', 'output_proj'):
        getattr(ms, name).load_state_dict(getattr(ems, name).state_dict())
    with torch.no_grad():
        w = ems.value_proj_weight.view(M, C, d)
        ms.value_proj.weight.copy_(w.transpose(1, 2).reshape(C, C))
        ms.value_proj.bias.copy_(ems.value_proj_bias.reshape(C))


def random_inputs(B=2, Q=5, C=16, shapes=SHAPES, seed=0, ref_range=(0, 1)):
    g = torch.Generator().manual_seed(seed)
    n = int((shapes[:, 0] * shapes[:, 1]).sum())
    lo, hi = ref_range
    return (torch.randn(B, Q, C, generator=g), torch.randn(B, n, C,
                                                           generator=g),
            lo + (hi - lo) * torch.rand(B, Q, 2, generator=g),
            torch.randn(B, Q, C, generator=g))


def test_emsda_equals_msda_zero_bias():
    """Zero value-projection bias: the two forms agree for any samples
    (including out-of-bounds ones), because bilinear sampling and the
    per-head projection are both linear."""
    ems = randomise_(EMSDeformAttn(16, 4, 2, 3, dropout=0.0), seed=1).eval()
    with torch.no_grad():
        ems.value_proj_bias.zero_()
        ems.sampling_offsets.weight.mul_(3.0)  # many points fall outside
    ms = MSDeformAttn(16, 4, 2, 3, dropout=0.0).eval()
    copy_emsda_to_msda(ems, ms)
    q, v, ref, pos = random_inputs()
    a = ems(q, v, ref, SHAPES, query_pos=pos)
    b = ms(q, v, ref, SHAPES, query_pos=pos)
    assert (a - q).abs().mean() > 0.1  # the attention did something
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # Per-level reference points too.
    ref_l = torch.rand(2, 5, 2, 2)
    torch.testing.assert_close(
        ems(q, v, ref_l, SHAPES, query_pos=pos),
        ms(q, v, ref_l, SHAPES, query_pos=pos), atol=1e-5, rtol=1e-5)


def test_emsda_equals_msda_bias_in_bounds_only():
    """With a value bias the forms agree only while every sample is in
    bounds (there the bilinear weights sum to 1, so the map's bias comes
    through whole); zeros padding makes them differ outside."""
    ems = randomise_(EMSDeformAttn(16, 4, 2, 3, dropout=0.0), seed=2).eval()
    with torch.no_grad():
        ems.sampling_offsets.weight.zero_()
        ems.sampling_offsets.bias.uniform_(-0.2, 0.2)  # < 0.2 px
    ms = MSDeformAttn(16, 4, 2, 3, dropout=0.0).eval()
    copy_emsda_to_msda(ems, ms)
    # ref inside [0.4, 0.6] and offsets < 0.2 px: all samples between
    # pixel centres of every level (2x3 is the coarsest).
    q, v, ref, _ = random_inputs(ref_range=(0.4, 0.6))
    assert ems.value_proj_bias.abs().min() > 0
    torch.testing.assert_close(ems(q, v, ref, SHAPES), ms(q, v, ref, SHAPES),
                               atol=1e-5, rtol=1e-5)
    ref_out = ref.clone()
    ref_out[:, :, 0] = 0.02  # within half a pixel of the left border
    assert not torch.allclose(ems(q, v, ref_out, SHAPES),
                              ms(q, v, ref_out, SHAPES), atol=1e-3)


def test_init_weights_deformable_detr():
    layer = EMSDeformAttn(embed_dims=32, num_heads=8, num_levels=4,
                          num_points=4)
    bias = layer.sampling_offsets.bias.view(8, 4, 4, 2)
    # Head m points along 2*pi*m/8, larger component scaled to 1, times
    # p + 1; the same on every level.
    for m in range(8):
        theta = 2 * math.pi * m / 8
        c, s = math.cos(theta), math.sin(theta)
        unit = torch.tensor([c, s]) / max(abs(c), abs(s))
        for p in range(4):
            for lvl in range(4):
                torch.testing.assert_close(bias[m, lvl, p], unit * (p + 1))
    assert torch.all(layer.sampling_offsets.weight == 0)
    assert torch.all(layer.attention_weights.weight == 0)
    assert torch.all(layer.attention_weights.bias == 0)
    assert torch.all(layer.value_proj_bias == 0)
    assert layer.value_proj_weight.shape == (8 * 32, 4)
    assert layer.value_proj_weight.abs().max() <= math.sqrt(6 / (32 + 4))
    assert layer.value_proj_weight.std() > 0


def test_state_dict_names_and_shapes():
    ems = EMSDeformAttn()
    shapes = {k: tuple(v.shape) for k, v in ems.state_dict().items()}
    assert shapes == {
        'sampling_offsets.weight': (256, 256),
        'sampling_offsets.bias': (256, ),
        'attention_weights.weight': (128, 256),
        'attention_weights.bias': (128, ),
        'output_proj.weight': (256, 256),
        'output_proj.bias': (256, ),
        'value_proj_weight': (8 * 256, 32),  # official Embedding(8*256, 32)
        'value_proj_bias': (8, 32),  # official Embedding(8, 32)
    }
    ms_keys = set(MSDeformAttn().state_dict())
    assert ms_keys == (set(shapes) - {'value_proj_weight', 'value_proj_bias'}
                       ) | {'value_proj.weight', 'value_proj.bias'}


@pytest.mark.parametrize('cls', [EMSDeformAttn, MSDeformAttn])
def test_identity_dropout_and_bf16_autocast(cls):
    layer = randomise_(cls(16, 4, 2, 2, dropout=0.0), seed=3).eval()
    q, v, ref, pos = random_inputs()
    ident = torch.randn_like(q)
    out = layer(q, v, ref, SHAPES, query_pos=pos, identity=ident)
    no_res = layer(q, v, ref, SHAPES, query_pos=pos,
                   identity=torch.zeros_like(q))
    torch.testing.assert_close(out, no_res + ident)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        half = layer(q, v, ref, SHAPES, query_pos=pos)
    full = layer(q, v, ref, SHAPES, query_pos=pos)
    assert torch.isfinite(half).all()
    assert (half.float() - full).abs().max() < 0.1 * full.abs().max()
    # Training-mode dropout acts on the attention output only.
    drop = cls(16, 4, 2, 2, dropout=0.5).train()
    torch.manual_seed(0)
    assert not torch.allclose(drop(q, v, ref, SHAPES), drop(q, v, ref,
                                                            SHAPES))


@pytest.mark.parametrize('cls', [EMSDeformAttn, MSDeformAttn])
def test_shapes_as_python_ints(cls):
    """Level shapes as Python int pairs (what graph exporters need: no
    tensor read back with .tolist()) give the same result as the tensor."""
    torch.manual_seed(0)
    layer = cls(16, 4, 2, 2, dropout=0.0)
    with torch.no_grad():
        layer.sampling_offsets.weight.normal_(std=0.5)
    q, v, ref, pos = random_inputs()
    ints = [(4, 6), (2, 3)]
    torch.testing.assert_close(layer(q, v, ref, ints, query_pos=pos),
                               layer(q, v, ref, SHAPES, query_pos=pos),
                               atol=0, rtol=0)


def test_argument_errors():
    layer = EMSDeformAttn(16, 4, 2, 2)
    q, v, ref, pos = random_inputs()
    with pytest.raises(ValueError, match='query must have shape'):
        layer(q[0], v, ref, SHAPES)
    with pytest.raises(ValueError, match='query must have shape'):
        layer(q[..., :8], v, ref, SHAPES)
    with pytest.raises(ValueError, match='value has 29 positions'):
        layer(q, v[:, :-1], ref, SHAPES)
    with pytest.raises(ValueError, match='value must have shape'):
        layer(q, v[:1], ref, SHAPES)
    with pytest.raises(ValueError, match=r'spatial_shapes must be .*\(2, 2\)'):
        layer(q, v, ref, SHAPES[:1])
    with pytest.raises(ValueError, match='spatial_shapes must be an integer'):
        layer(q, v, ref, SHAPES.float())
    with pytest.raises(ValueError, match=r'2 \(H_l, W_l\) pairs of ints'):
        layer(q, v, ref, [(4, 6)])
    with pytest.raises(ValueError, match=r'pairs of ints'):
        layer(q, v, ref, [(4.0, 6), (2, 3)])
    with pytest.raises(ValueError, match='reference_points must have shape'):
        layer(q, v, ref[..., :1], SHAPES)
    with pytest.raises(ValueError, match='reference_points must have shape'):
        layer(q, v, torch.rand(2, 5, 3, 2), SHAPES)
    with pytest.raises(ValueError, match='query_pos must have the shape'):
        layer(q, v, ref, SHAPES, query_pos=pos[:, :2])
    with pytest.raises(ValueError, match='identity must have the shape'):
        layer(q, v, ref, SHAPES, identity=pos[:1])
    with pytest.raises(ValueError, match='divisible by num_heads'):
        MSDeformAttn(embed_dims=10, num_heads=4)
    with pytest.raises(ValueError, match='num_points must be a positive'):
        EMSDeformAttn(num_points=0)


def test_locations_keep_float32_under_autocast():
    """Under bf16 autocast the offsets come out of a bf16 Linear, but the
    reference points must not be rounded to bf16 (~0.1 px on a 64-px
    level): integer offsets (exact in bf16) give the fp32 locations."""
    layer = EMSDeformAttn(16, 4, 2, 2, dropout=0.0)
    with torch.no_grad():
        layer.sampling_offsets.weight.zero_()
        layer.sampling_offsets.bias.copy_(
            torch.randint(-3, 4, layer.sampling_offsets.bias.shape).float())
    q, _, ref, _ = random_inputs()
    hw = [tuple(s) for s in SHAPES.tolist()]
    grid32, _ = layer._locations(q, ref, hw)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        grid16, _ = layer._locations(q, ref, hw)
    assert grid16.dtype == torch.float32
    torch.testing.assert_close(grid16, grid32, atol=1e-6, rtol=0)

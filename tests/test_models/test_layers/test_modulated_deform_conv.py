"""DCNv2 (pure PyTorch) against a plain reference written from the DCNv2
kernel's definition: loops over samples, output positions and kernel
points, scalar bilinear interpolation with DCNv2's border rule. Values and
gradients (input, offsets, mask, weights, bias), offsets that leave the map,
stride / padding / dilation, groups and deformable groups."""
import math

import pytest
import torch
import torch.nn.functional as F

import mmkp_ext  # noqa: F401
from mmkp_ext.models.layers import (ModulatedDeformConv2dPure,
                                    modulated_deform_conv2d,
                                    modulated_deform_conv2d_pure)
from mmkp_ext.models.layers import modulated_deform_conv as mdc


def bilinear_dcnv2(img, y, x):
    """DCNv2's im2col bilinear read of ``img`` (C, H, W) at (y, x): zero when
    y <= -1, y >= H, x <= -1 or x >= W; corners outside count 0."""
    C, H, W = img.shape
    zero = img.new_zeros(C)
    if float(y) <= -1 or float(y) >= H or float(x) <= -1 or float(x) >= W:
        return zero
    y0, x0 = math.floor(float(y)), math.floor(float(x))
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx

    def at(yy, xx):
        return img[:, yy, xx] if 0 <= yy < H and 0 <= xx < W else zero

    return (hy * hx * at(y0, x0) + hy * lx * at(y0, x0 + 1) +
            ly * hx * at(y0 + 1, x0) + ly * lx * at(y0 + 1, x0 + 1))


def ref_dcn_loops(x, offset, mask, weight, bias, stride, padding, dilation,
                  groups, dg):
    B, C, H, W = x.shape
    O, Cg, kh, kw = weight.shape
    Ho, Wo = offset.shape[-2:]
    cpg = C // dg  # channels per deformable group
    out = []
    for b in range(B):
        cols = []  # per output position: (C, K) sampled values
        for ho in range(Ho):
            for wo in range(Wo):
                per_k = []
                for i in range(kh):
                    for j in range(kw):
                        k = i * kw + j
                        vals = []
                        for g in range(dg):
                            dy = offset[b, 2 * (g * kh * kw + k), ho, wo]
                            dx = offset[b, 2 * (g * kh * kw + k) + 1, ho, wo]
                            m = mask[b, g * kh * kw + k, ho, wo]
                            py = ho * stride - padding + i * dilation + dy
                            px = wo * stride - padding + j * dilation + dx
                            vals.append(m * bilinear_dcnv2(
                                x[b, g * cpg:(g + 1) * cpg], py, px))
                        per_k.append(torch.cat(vals))  # (C,)
                cols.append(torch.stack(per_k, dim=1))  # (C, K)
        cols = torch.stack(cols, dim=-1)  # (C, K, L)
        ys = []
        for gi in range(groups):
            w = weight[gi * (O // groups):(gi + 1) * (O // groups)]
            c = cols[gi * Cg:(gi + 1) * Cg]  # (Cg, K, L)
            ys.append(torch.einsum('ock,ckl->ol', w.reshape(-1, Cg, kh * kw),
                                   c))
        y = torch.cat(ys).reshape(O, Ho, Wo)
        out.append(y + bias.reshape(O, 1, 1) if bias is not None else y)
    return torch.stack(out)


CASES = [  # stride, padding, dilation, groups, deform_groups, (H, W)
    (1, 1, 1, 1, 1, (5, 6)),
    (2, 1, 1, 2, 2, (6, 5)),
    (1, 2, 2, 1, 2, (5, 5)),
    (2, 0, 1, 4, 1, (7, 6)),
    (1, 1, 1, 1, 4, (1, 4)),  # a one-row map
]


def _inputs(case, seed=0, far=False):
    s, p, d, groups, dg, (H, W) = case
    g = torch.Generator().manual_seed(seed)
    C, O, k = 4, 4, 3
    Ho = (H + 2 * p - d * (k - 1) - 1) // s + 1
    Wo = (W + 2 * p - d * (k - 1) - 1) // s + 1
    x = torch.randn(2, C, H, W, generator=g)
    w = torch.randn(O, C // groups, k, k, generator=g)
    b = torch.randn(O, generator=g)
    off = torch.randn(2, 2 * dg * 9, Ho, Wo, generator=g) * 2.5
    if far:  # a block of points far outside the map
        off[:, :6] += 40.0
        off[:, 6:12] -= 40.0
    m = torch.rand(2, dg * 9, Ho, Wo, generator=g)
    return [t.requires_grad_() for t in (x, off, m, w, b)], (s, p, d, groups,
                                                             dg)


@pytest.mark.parametrize('case', CASES)
@pytest.mark.parametrize('far', [False, True])
def test_values_and_gradients_match_plain_reference(case, far):
    (x, off, m, w, b), args = _inputs(case, far=far)
    got = modulated_deform_conv2d_pure(x, off, m, w, b, *args)
    want = ref_dcn_loops(x, off, m, w, b, *args)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    r = torch.randn_like(want)
    g1 = torch.autograd.grad((got * r).sum(), (x, off, m, w, b))
    g2 = torch.autograd.grad((want * r).sum(), (x, off, m, w, b))
    for name, a, c in zip(('input', 'offset', 'mask', 'weight', 'bias'), g1,
                          g2):
        torch.testing.assert_close(a, c, atol=1e-4, rtol=1e-4,
                                   msg=f'gradient of {name}')
    if far:  # points 40 px outside read zero: they carry no gradient
        assert off.grad is None
        assert torch.all(g1[1][:, :12] == 0)


def test_zero_offsets_unit_mask_is_a_convolution():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 9, 8, generator=g)
    w = torch.randn(4, 3, 3, 3, generator=g)
    b = torch.randn(4, generator=g)
    off = torch.zeros(2, 18, 5, 4)
    m = torch.ones(2, 9, 5, 4)
    got = modulated_deform_conv2d_pure(x, off, m, w, b, 2, 1, 1, 2, 1)
    torch.testing.assert_close(got, F.conv2d(x, w, b, 2, 1, 1, 2),
                               atol=1e-5, rtol=1e-5)


def test_layer_starts_as_half_masked_convolution_and_learns_offsets():
    layer = ModulatedDeformConv2dPure(4, 5, 3, padding=1, impl='pure')
    x = torch.randn(2, 4, 6, 7)
    want = F.conv2d(x, layer.weight * 0.5, layer.bias, padding=1)
    torch.testing.assert_close(layer(x), want, atol=1e-5, rtol=1e-5)
    layer(x).square().sum().backward()
    # zero-initialised offset conv still receives gradient
    assert layer.conv_offset_mask.weight.grad.abs().sum() > 0


def test_both_parameter_layouts_load():
    src = ModulatedDeformConv2dPure(4, 4, 3, padding=1, deform_groups=2)
    torch.nn.init.normal_(src.conv_offset_mask.weight, std=0.1)
    sd = src.state_dict()
    assert set(sd) == {'weight', 'bias', 'conv_offset_mask.weight',
                       'conv_offset_mask.bias'}  # CenterNet's DCN names
    mmcv_sd = {k.replace('conv_offset_mask', 'conv_offset'): v
               for k, v in sd.items()}  # ModulatedDeformConv2dPack names
    for state in (sd, mmcv_sd):
        dst = ModulatedDeformConv2dPure(4, 4, 3, padding=1, deform_groups=2)
        dst.load_state_dict(dict(state), strict=True)
        x = torch.randn(1, 4, 5, 5)
        torch.testing.assert_close(dst(x), src(x))


@pytest.mark.parametrize('backend', ['mmcv', 'torchvision'])
def test_pure_matches_compiled_backends_where_available(backend):
    if not mdc._backend_works(backend):
        try:
            if backend == 'mmcv':
                from mmcv.ops import modulated_deform_conv2d  # noqa: F401
            else:
                from torchvision.ops import deform_conv2d  # noqa: F401
        except Exception as err:
            pytest.skip(f'{backend} DCN op not usable here: {err}')
        raise AssertionError(f'{backend} imports but disagrees with the pure '
                             'DCNv2')
    (x, off, m, w, b), args = _inputs(CASES[1])
    s, p, d, groups, dg = args
    got = mdc._BACKENDS[backend](x, off, m, w, b, (s, s), (p, p), (d, d),
                                 groups, dg)
    want = modulated_deform_conv2d_pure(x, off, m, w, b, *args)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_dispatch():
    (x, off, m, w, b), args = _inputs(CASES[0])
    auto = modulated_deform_conv2d(x, off, m, w, b, *args, impl='auto')
    pure = modulated_deform_conv2d_pure(x, off, m, w, b, *args)
    torch.testing.assert_close(auto, pure, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match='impl must be one of'):
        modulated_deform_conv2d(x, off, m, w, b, *args, impl='cuda')
    for name in ('mmcv', 'torchvision'):
        if not mdc._backend_works(name):
            with pytest.raises(RuntimeError, match='not usable here'):
                modulated_deform_conv2d(x, off, m, w, b, *args, impl=name)


def test_bad_inputs_are_named():
    (x, off, m, w, b), args = _inputs(CASES[0])
    with pytest.raises(ValueError, match='offset must be'):
        modulated_deform_conv2d_pure(x, off[:, :-1], m, w, b, *args)
    with pytest.raises(ValueError, match='mask must be'):
        modulated_deform_conv2d_pure(x, off, m[..., :-1], w, b, *args)
    with pytest.raises(ValueError, match='groups'):
        modulated_deform_conv2d_pure(x, off, m, w, b, 1, 1, 1, 3, 1)
    with pytest.raises(ValueError, match='too small'):
        modulated_deform_conv2d_pure(x[..., :1, :1], off, m, w, b, 1, 0, 1)
    with pytest.raises(ValueError, match='divisible by deform_groups'):
        ModulatedDeformConv2dPure(6, 6, 3, deform_groups=4)
    with pytest.raises(TypeError, match='kernel_size'):
        ModulatedDeformConv2dPure(4, 4, (3, 3, 3))

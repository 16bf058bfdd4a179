"""Tests of the DLA-up / IDA-up neck ``DLAUpNeck``.

The aggregation is checked against a functional transcription of CenterNet's
``DLASeg`` neck (``pose_dla_dcn.py``: ``DLAUp.forward`` and
``IDAUp.forward`` mutating a list in place), with the deformable
convolutions replaced by plain 3x3 convolutions, reading the neck's weights
by name.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _helpers import randomise_

import mmkp_ext  # noqa: F401  (compat fixes + registration)
from mmkp_ext.models.backbones import DLANet
from mmkp_ext.models.necks import DLAUpNeck, bilinear_upsample_kernel
from mmpose.registry import MODELS

TINY = (4, 6, 8, 10, 12, 14)


def tiny_pyramid(batch=2, size=64, channels=TINY, seed=0):
    """Six maps of strides 1..32 as DLANet returns them."""
    g = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randn(batch, c, size // 2**i, size // 2**i, generator=g)
        for i, c in enumerate(channels))


# ---------------------------------------------------------------------------
# Functional reference (CenterNet's DLASeg neck, plain convolutions, eval).
# ---------------------------------------------------------------------------


def _conv_block(x, sd, p):
    """conv3x3 -> BN (eval) -> ReLU, CenterNet's DeformConv names."""
    x = F.conv2d(x, sd[f'{p}.conv.weight'], padding=1)
    x = F.batch_norm(x, sd[f'{p}.actf.0.running_mean'],
                     sd[f'{p}.actf.0.running_var'], sd[f'{p}.actf.0.weight'],
                     sd[f'{p}.actf.0.bias'], False, 0.0, 1e-5)
    return F.relu(x)


def _ida_up(sd, prefix, layers, startp, endp):
    """CenterNet IDAUp.forward: in place on ``layers``."""
    for i in range(startp + 1, endp):
        k = i - startp
        w = sd[f'{prefix}.up_{k}.weight']
        f = w.shape[-1] // 2  # kernel 2f, stride f, padding f // 2
        x = _conv_block(layers[i], sd, f'{prefix}.proj_{k}')
        x = F.conv_transpose2d(
            x, w, stride=f, padding=f // 2, groups=x.shape[1])
        layers[i] = _conv_block(x + layers[i - 1], sd, f'{prefix}.node_{k}')


def reference_neck(sd, feats, first_level=2, last_level=5):
    """CenterNet DLASeg: DLAUp over levels first_level.., then IDAUp over
    the DLA-up outputs of levels first_level..last_level-1."""
    layers = list(feats)
    n = len(layers)
    out = [layers[-1]]
    for i in range(n - first_level - 1):
        _ida_up(sd, f'dla_up.ida_{i}', layers, n - i - 2, n)
        out.insert(0, layers[-1])
    y = [out[i].clone() for i in range(last_level - first_level)]
    _ida_up(sd, 'ida_up', y, 0, len(y))
    return y[-1]


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_output_is_one_stride4_map():
    neck = DLAUpNeck(in_channels=TINY, out_channels=8)
    out = neck(tiny_pyramid(size=64))
    assert isinstance(out, tuple) and len(out) == 1
    assert out[0].shape == (2, 8, 16, 16)  # 64 / 4

    # Through the backbone: an image of 64x64 -> stride 4.
    backbone = DLANet(channels=TINY)
    out = neck(backbone(torch.rand(1, 3, 64, 96)))
    assert out[0].shape == (1, 8, 16, 24)


def test_matches_centernet_aggregation():
    neck = randomise_(DLAUpNeck(in_channels=TINY, out_channels=8)).eval()
    feats = tiny_pyramid(size=32, seed=1)
    with torch.no_grad():
        out = neck(feats)[0]
        ref = reference_neck(neck.state_dict(), feats)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_other_levels_and_channels():
    # ResNet-like pyramid (strides 4..32 only), output at the first map's
    # stride with channels differing from it (adds ida_up.proj_0).
    neck = DLAUpNeck(
        in_channels=(8, 16, 32, 64),
        first_level=0,
        last_level=3,
        out_channels=12)
    assert hasattr(neck.ida_up, 'proj_0')
    feats = [
        torch.randn(1, c, 32 // 2**i, 32 // 2**i)
        for i, c in enumerate((8, 16, 32, 64))
    ]
    assert neck(tuple(feats))[0].shape == (1, 12, 32, 32)

    neck = DLAUpNeck(
        in_channels=TINY, first_level=1, last_level=2, out_channels=6)
    assert not hasattr(neck.ida_up, 'proj_0')
    assert not hasattr(neck.ida_up, 'proj_1')
    assert neck(tiny_pyramid(size=64))[0].shape == (2, 6, 32, 32)


def test_full_size_parameter_count():
    """DLA-34 neck (levels 2..5: 64, 128, 256, 512; o = 64), counted from
    CenterNet's layer list: proj/node = 9*cin*cout + 2*cout (conv + BN),
    up = o * (2f)^2 (depth-wise)."""

    def cbr(cin, cout):
        return 9 * cin * cout + 2 * cout

    def up(o, f):
        return o * (2 * f)**2

    ida0 = cbr(512, 256) + up(256, 2) + cbr(256, 256)
    ida1 = 2 * (cbr(256, 128) + up(128, 2) + cbr(128, 128))
    ida2 = 3 * (cbr(128, 64) + up(64, 2) + cbr(64, 64))
    final = (
        cbr(128, 64) + up(64, 2) + cbr(64, 64) + cbr(256, 64) + up(64, 4) +
        cbr(64, 64))
    expected = ida0 + ida1 + ida2 + final
    assert expected == 3300608
    neck = DLAUpNeck()
    assert sum(p.numel() for p in neck.parameters()) == expected


def test_full_size_dla34_with_neck():
    backbone = DLANet(depth=34).eval()
    neck = DLAUpNeck().eval()
    with torch.no_grad():
        out = neck(backbone(torch.rand(1, 3, 128, 128)))
    assert out[0].shape == (1, 64, 32, 32)


def expected_kernel(k):
    """CenterNet's fill_up_weights, written out element by element."""
    f = math.ceil(k / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    w = torch.zeros(k, k)
    for i in range(k):
        for j in range(k):
            w[i, j] = (1 - abs(i / f - c)) * (1 - abs(j / f - c))
    return w


def test_bilinear_kernel_values():
    # k = 4: the 1-D profile is (1/4, 3/4, 3/4, 1/4).
    p = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(bilinear_upsample_kernel(4), p[:, None] * p)
    for k in (4, 8, 16):
        torch.testing.assert_close(
            bilinear_upsample_kernel(k), expected_kernel(k))


def test_deconvs_start_as_bilinear_upsampling():
    neck = DLAUpNeck(in_channels=TINY, out_channels=8)
    ups = {
        n: m
        for n, m in neck.named_modules() if isinstance(m, nn.ConvTranspose2d)
    }
    # 1 (ida_0) + 2 (ida_1) + 3 (ida_2) + 2 (ida_up)
    assert len(ups) == 8
    factors = set()
    for name, up in ups.items():
        f = up.stride[0]
        factors.add(f)
        assert up.groups == up.in_channels == up.out_channels
        assert up.kernel_size == (2 * f, 2 * f) and up.padding == (f // 2,
                                                                   f // 2)
        assert up.weight.requires_grad
        for ch in range(up.weight.shape[0]):
            torch.testing.assert_close(
                up.weight[ch, 0], expected_kernel(2 * f), msg=name)
        # Away from the border it IS bilinear interpolation.
        x = torch.randn(1, up.in_channels, 6, 5)
        with torch.no_grad():
            y = up(x)
        ref = F.interpolate(
            x, scale_factor=f, mode='bilinear', align_corners=False)
        assert y.shape == ref.shape
        torch.testing.assert_close(y[..., f:-f, f:-f], ref[..., f:-f, f:-f])
    assert factors == {2, 4}


def test_bilinear_mode_has_no_upsampling_parameters():
    neck = DLAUpNeck(in_channels=TINY, out_channels=8, upsample='bilinear')
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in neck.modules())
    assert neck(tiny_pyramid(size=64))[0].shape == (2, 8, 16, 16)


@pytest.mark.parametrize('upsample', ['deconv', 'bilinear'])
def test_gradients_reach_every_parameter(upsample):
    backbone = DLANet(channels=TINY)
    neck = DLAUpNeck(in_channels=TINY, out_channels=8, upsample=upsample)
    out = neck(backbone(torch.randn(2, 3, 32, 32)))[0]
    out.square().mean().backward()
    for module in (backbone, neck):
        for name, p in module.named_parameters():
            assert p.grad is not None, name
            assert p.grad.abs().sum() > 0, name


def test_build_from_config():
    neck = MODELS.build(
        dict(type='DLAUpNeck', in_channels=TINY, out_channels=8))
    assert isinstance(neck, DLAUpNeck)
    assert type(neck).__module__ == 'mmkp_ext.models.necks.dla_up_neck'
    default = DLAUpNeck()
    assert default.in_channels == (16, 32, 64, 128, 256, 512)
    assert (default.first_level, default.last_level,
            default.out_channels) == (2, 5, 64)


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(first_level=5, last_level=5), ValueError, 'first_level'),
    (dict(first_level=2, last_level=7), ValueError, 'last_level'),
    (dict(first_level=-1), ValueError, 'first_level'),
    (dict(first_level='2'), TypeError, 'first_level'),
    (dict(out_channels=0), ValueError, 'out_channels'),
    (dict(in_channels=()), TypeError, 'in_channels'),
    (dict(in_channels=(4, 6, 0, 10, 12, 14)), ValueError, r'in_channels\[2\]'),
    (dict(upsample='nearest'), ValueError, 'upsample'),
    (dict(norm_cfg='BN'), TypeError, 'norm_cfg'),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DLAUpNeck(**{'in_channels': TINY, **kwargs})


def test_bad_inputs():
    neck = DLAUpNeck(in_channels=TINY, out_channels=8)
    feats = tiny_pyramid(size=64)
    with pytest.raises(ValueError, match='got 4 feature maps, expected 6'):
        neck(feats[2:])
    with pytest.raises(TypeError, match='tuple'):
        neck(feats[0])
    wrong = list(feats)
    wrong[3] = torch.randn(2, 11, 8, 8)
    with pytest.raises(ValueError, match=r'map 3 has 11 channels.*= 10'):
        neck(tuple(wrong))
    wrong = list(feats)
    wrong[4] = torch.randn(2, 12, 5, 4)
    with pytest.raises(ValueError, match=r'map 4 is \(5, 4\), expected'):
        neck(tuple(wrong))
    # Levels below first_level are not used, so their size is free.
    ok = list(feats)
    ok[0] = torch.randn(2, 4, 3, 3)
    assert neck(tuple(ok))[0].shape == (2, 8, 16, 16)

"""Tests of ``SubPixelFusion`` (HRNet++'s sub-pixel-convolution head part).

The pixel-shuffle layout is checked against hand-written tensors; the fusion
against a recomputation from the documented recursion
``f_i = concat(x_i, up_i(f_{i+1}))``.
"""
import pytest
import torch

import mmkp_ext  # noqa: F401  (registration)
from mmkp_ext.models.necks.subpixel_fusion import (SubPixelFusion,
                                                   SubPixelUpsample)
from mmpose.registry import MODELS

CHANNELS = (8, 16, 32, 64)


def _inputs(batch=2, size=(16, 24), channels=CHANNELS, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = size
    return [
        torch.randn(batch, c, h // 2**i, w // 2**i, generator=g)
        for i, c in enumerate(channels)
    ]


def test_shapes_default_and_custom_channels():
    neck = MODELS.build(dict(type='SubPixelFusion', in_channels=CHANNELS))
    neck.eval()
    (out, ) = neck(_inputs())
    assert neck.out_channels == 16  # x_0 (8) + its upsampled partner (8)
    assert out.shape == (2, 16, 16, 24)

    neck = SubPixelFusion(CHANNELS, upsample_channels=(4, 6, 10))
    # f3 = 64 -> 10 up; f2 = 32 + 10 = 42 -> 6 up; f1 = 16 + 6 = 22 -> 4 up;
    # f0 = 8 + 4 = 12. Sub-pixel convs produce u * r^2 channels.
    assert neck.upsamples[2].conv.weight.shape == (10 * 4, 64, 3, 3)
    assert neck.upsamples[1].conv.weight.shape == (6 * 4, 42, 3, 3)
    assert neck.upsamples[0].conv.weight.shape == (4 * 4, 22, 3, 3)
    assert neck.out_channels == 12
    neck.eval()
    assert neck(_inputs(batch=1))[0].shape == (1, 12, 16, 24)


def test_fusion_follows_the_recursion_and_uses_every_branch():
    neck = SubPixelFusion(CHANNELS, upsample_channels=(4, 6, 10))
    neck.eval()
    xs = [x.requires_grad_() for x in _inputs()]
    (out, ) = neck(xs)
    ups = neck.upsamples
    with torch.no_grad():
        f2 = torch.cat([xs[2], ups[2](xs[3])], 1)
        f1 = torch.cat([xs[1], ups[1](f2)], 1)
        f0 = torch.cat([xs[0], ups[0](f1)], 1)
    assert torch.equal(out.detach(), f0)
    assert torch.equal(out[:, :8].detach(), xs[0].detach())  # x_0 first
    out.square().sum().backward()
    for x in xs:
        assert x.grad.abs().sum() > 0


def test_pixel_shuffle_layout_on_a_hand_made_tensor():
    neck = SubPixelFusion((2, 4))
    # in[0, k, 0, w] = 10 * k + w: 8 channels = 2 output channels x 2 x 2.
    x = (10 * torch.arange(8.).reshape(1, 8, 1, 1) +
         torch.arange(2.).reshape(1, 1, 1, 2))
    expected = torch.tensor([[[[0., 10., 1., 11.], [20., 30., 21., 31.]],
                              [[40., 50., 41., 51.], [60., 70., 61., 71.]]]])
    # out[c, 2h + i, 2w + j] = in[4c + 2i + j, h, w]
    assert torch.equal(neck.upsamples[0].shuffle(x), expected)


def test_subpixel_upsample_block_places_conv_channels_as_documented():
    up = SubPixelUpsample(1, 1, scale=2, kernel_size=3, norm_cfg=None,
                          act_cfg=None)
    with torch.no_grad():
        up.conv.weight.zero_()
        up.conv.bias.zero_()
        # conv channel k = (k + 1) * x  (centre tap only)
        up.conv.weight[:, 0, 1, 1] = torch.tensor([1., 2., 3., 4.])
        x = torch.tensor([[[[1., 2., 3.], [4., 5., 6.]]]])
        out = up(x)
    # Every input pixel becomes the 2x2 cell [[1, 2], [3, 4]] * x[h, w].
    expected = torch.kron(x[0, 0], torch.tensor([[1., 2.], [3., 4.]]))
    assert out.shape == (1, 1, 4, 6)
    assert torch.equal(out[0, 0], expected)


def test_heads_on_top():
    neck = SubPixelFusion(CHANNELS)
    head = MODELS.build(
        dict(type='HeatmapHead', in_channels=neck.out_channels,
             out_channels=17, deconv_out_channels=None))
    sa_head = MODELS.build(
        dict(type='SoftArgmaxHead', in_channels=neck.out_channels,
             num_joints=17))
    feats = neck(_inputs())
    assert head(feats).shape == (2, 17, 16, 24)
    assert sa_head(feats).shape == (2, 17, 2)


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=(8, )), 'at least 2'),
    (dict(in_channels=(8, 0)), 'in_channels entries'),
    (dict(in_channels=CHANNELS, upsample_channels=(4, 4)), '3 entries'),
    (dict(in_channels=CHANNELS, kernel_size=2), 'odd'),
    (dict(in_channels=CHANNELS, scale=1), 'scale must be >= 2'),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SubPixelFusion(**kwargs)


def test_bad_inputs():
    neck = SubPixelFusion(CHANNELS)
    xs = _inputs()
    with pytest.raises(ValueError, match='multiscale_output=True'):
        neck(xs[:1])
    with pytest.raises(ValueError, match=r'input 2 must be \(B, 32, H, W\)'):
        neck(xs[:2] + [xs[2][:, :30]] + xs[3:])
    with pytest.raises(ValueError, match='exactly 2x smaller'):
        neck(xs[:3] + [xs[3][..., :1]])

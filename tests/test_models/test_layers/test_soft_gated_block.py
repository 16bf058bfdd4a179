"""SoftGatedBlock: the residual branch, each gate mode's formula on
hand-made tensors, the projection, the channel split and bad inputs."""
import pytest
import torch
import torch.nn.functional as F
from _helpers import randomise_

from mmkp_ext.models.layers import GATE_MODES, SoftGatedBlock
from mmkp_ext.models.layers.soft_gated_block import split_channels


def _eval_block(cin, cout, gate, seed=0):
    block = randomise_(SoftGatedBlock(cin, cout, gate=gate), seed=seed)
    return block.eval()


def _branch_by_hand(block, x):
    """F(x) written out from the block's tensors: three BN-ReLU-Conv3x3 in a
    chain, outputs concatenated."""
    outs, y = [], x
    for norm, conv in zip(block.norms, block.convs):
        y = (y - norm.running_mean[None, :, None, None]) / torch.sqrt(
            norm.running_var[None, :, None, None] + norm.eps)
        y = y * norm.weight[None, :, None, None] + \
            norm.bias[None, :, None, None]
        y = F.conv2d(torch.relu(y), conv.weight, padding=1)
        outs.append(y)
    return torch.cat(outs, 1)


@pytest.mark.parametrize('channels,expected', [(144, (72, 36, 36)),
                                               (256, (128, 64, 64)),
                                               (30, (15, 7, 8)),
                                               (4, (2, 1, 1))])
def test_channel_split_sums_to_c(channels, expected):
    assert split_channels(channels) == expected
    block = SoftGatedBlock(7, channels)
    assert [c.out_channels for c in block.convs] == list(expected)
    assert [c.in_channels for c in block.convs] == [7, *expected[:2]]
    assert all(c.kernel_size == (3, 3) and c.bias is None
               for c in block.convs)
    out = block(torch.randn(1, 7, 5, 4))
    assert out.shape == (1, channels, 5, 4)


def test_branch_is_the_hierarchical_concatenation():
    block = _eval_block(6, 12, 'none')
    x = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        assert torch.allclose(block(x), _branch_by_hand(block, x), atol=1e-5)


def test_per_channel_gate_scales_each_channel_independently():
    block = _eval_block(4, 4, 'channel')
    assert block.alpha.shape == (1, 4, 1, 1)
    alpha = torch.tensor([0.0, 0.5, -2.0, 3.0])
    x = torch.arange(2 * 4 * 3 * 3, dtype=torch.float32).reshape(2, 4, 3, 3)
    x = x / 10 - 3
    with torch.no_grad():
        block.alpha.copy_(alpha.view(1, 4, 1, 1))
        out = block(x)
        fx = block.branch(x)
        for c in range(4):  # channel by channel, one scalar each
            assert torch.allclose(out[:, c], alpha[c] * x[:, c] + fx[:, c],
                                  atol=1e-5)
        # Changing one channel's alpha changes only that channel.
        block.alpha[0, 2] = 7.0
        out2 = block(x)
    changed = (out2 - out).abs().amax(dim=(0, 2, 3))
    assert changed[2] > 0 and torch.all(changed[[0, 1, 3]] == 0)
    assert torch.allclose(out2[:, 2] - out[:, 2], 9.0 * x[:, 2], atol=1e-5)


def test_alpha_zero_leaves_branch_and_identity_equals_alpha_one():
    x = torch.randn(2, 8, 4, 6)
    gated = _eval_block(8, 8, 'channel', seed=1)
    ident = SoftGatedBlock(8, 8, gate='identity').eval()
    # Same convolutions and norms; identity mode has no gate parameter.
    missing = ident.load_state_dict(gated.state_dict(), strict=False)
    assert missing.unexpected_keys == ['alpha'] and ident.alpha is None
    with torch.no_grad():
        gated.alpha.zero_()
        assert torch.allclose(gated(x), gated.branch(x), atol=1e-6)
        gated.alpha.fill_(1.0)
        assert torch.allclose(ident(x), gated(x), atol=1e-6)
        assert torch.allclose(ident(x), x + _branch_by_hand(ident, x),
                              atol=1e-5)


def test_scalar_gate_and_no_skip():
    x = torch.randn(1, 5, 4, 4)
    scalar = _eval_block(5, 5, 'scalar', seed=2)
    assert scalar.alpha.shape == (1, 1, 1, 1)
    with torch.no_grad():
        scalar.alpha.fill_(-0.75)
        assert torch.allclose(scalar(x), -0.75 * x + scalar.branch(x),
                              atol=1e-5)
    none = _eval_block(5, 5, 'none', seed=2)
    assert none.alpha is None and none.proj is None
    assert not any('alpha' in k for k in none.state_dict())
    with torch.no_grad():
        assert torch.allclose(none(x), _branch_by_hand(none, x), atol=1e-5)


def test_projection_when_channels_change():
    block = _eval_block(6, 10, 'channel', seed=3)
    assert block.proj.weight.shape == (10, 6, 1, 1)
    assert block.proj.bias is None
    x = torch.randn(2, 6, 3, 5)
    with torch.no_grad():
        expected = block.alpha * F.conv2d(x, block.proj.weight) + \
            _branch_by_hand(block, x)
        assert torch.allclose(block(x), expected, atol=1e-5)
    # Same width: no projection.
    assert SoftGatedBlock(6, 6).proj is None
    assert SoftGatedBlock(6, 10, gate='none').proj is None


@pytest.mark.parametrize('init', [0.0, 1.0, 0.3])
def test_gate_init_and_gradient(init):
    block = SoftGatedBlock(4, 4, gate='channel', gate_init=init)
    assert torch.all(block.alpha == init)
    block(torch.randn(2, 4, 3, 3)).sum().backward()
    assert block.alpha.grad is not None and block.alpha.grad.abs().sum() > 0


def test_bad_arguments_fail_clearly():
    with pytest.raises(ValueError, match='gate mode'):
        SoftGatedBlock(4, 4, gate='learned')
    with pytest.raises(ValueError, match='out_channels >= 4'):
        SoftGatedBlock(4, 3)
    with pytest.raises(ValueError, match=r'expects input \(B, 4, H, W\)'):
        SoftGatedBlock(4, 8)(torch.randn(1, 5, 3, 3))
    assert set(GATE_MODES) == {'channel', 'scalar', 'identity', 'none'}

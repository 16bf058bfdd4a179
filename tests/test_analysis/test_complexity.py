"""Tests of the FLOP/parameter counter: grid_sample counted per output
element by mode on a hand-built module, EMSDA/MSDA counted completely
(hand formula of every matmul and sample), a toy config through the
library and the CLI."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _helpers import REPO_ROOT, load_tool
from mmkp_ext.analysis import (complexity_from_config, config_input_size,
                               count_complexity)
from mmkp_ext.models.layers import EMSDeformAttn, MSDeformAttn

TOY_CFG = osp.join(REPO_ROOT, 'configs', 'soft_argmax', 'toy_persons',
                   'td-sa_res18-s8_1xb16-4e_toy-persons-64x48.py')


class ConvSample(nn.Module):
    """conv 3->4 (3x3, pad 1) on 8x6, grid_sample at 5x7 points, linear
    4->2 on the 35 sampled vectors."""

    def __init__(self, mode):
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x, grid):
        y = F.grid_sample(self.conv(x), grid, mode=self.mode,
                          padding_mode='zeros', align_corners=False)
        return self.fc(y.flatten(2).transpose(1, 2))


@pytest.mark.parametrize('mode,per_output', [('bilinear', 4), ('nearest', 0),
                                             ('bicubic', 16)])
def test_grid_sample_hand_count(mode, per_output):
    x = torch.randn(2, 3, 8, 6)
    grid = torch.rand(2, 5, 7, 2) * 2 - 1
    res = count_complexity(ConvSample(mode).eval(), (x, grid))
    conv = 2 * 4 * 8 * 6 * 3 * 3 * 3  # out elements x (C_in k k)
    sample = per_output * 2 * 4 * 5 * 7  # B x C x H_out x W_out
    fc = 2 * 35 * 4 * 2
    assert res.flops == conv + sample + fc
    assert res.flops_by_operator['conv'] == conv
    assert res.flops_by_operator.get('grid_sampler', 0) == sample
    assert res.flops_by_module == {'conv': conv, 'fc': fc}
    assert res.params == 4 * 3 * 9 + 4 + 4 * 2 + 2


SHAPES = torch.tensor([[64, 48], [32, 24], [16, 12], [8, 6]])


@pytest.mark.parametrize('cls', [EMSDeformAttn, MSDeformAttn])
def test_deformable_attention_hand_count(cls):
    """Every multiply-add of one attention layer at Poseur's sizes: 17
    queries, C=256, 8 heads, 4 levels (256x192 at strides 4..32), 4
    points."""
    B, Q, C, M, L, P = 2, 17, 256, 8, 4, 4
    d = C // M
    N = int((SHAPES[:, 0] * SHAPES[:, 1]).sum())
    inputs = (torch.randn(B, Q, C), torch.randn(B, N, C),
              torch.rand(B, Q, 2), SHAPES)
    res = count_complexity(cls().eval(), inputs)
    common = B * Q * C * (M * L * P * 2) + B * Q * C * (M * L * P) + \
        B * Q * C * C  # offsets, weights, output projection
    if cls is EMSDeformAttn:
        # every head samples all C channels; weighted sum; per-head proj.
        sample = 4 * B * C * Q * M * L * P
        rest = B * Q * M * C * L * P + B * M * Q * C * d
    else:
        # value projection of all N positions; each head its d channels.
        sample = 4 * B * M * d * Q * L * P
        rest = B * N * C * C + B * M * Q * d * L * P
    assert res.flops_by_operator['grid_sampler'] == sample
    assert res.flops == common + sample + rest
    assert 'aten::softmax' in res.uncounted_ops
    assert res.params == sum(p.numel() for p in cls().parameters())


def test_toy_config_library_and_cli(capsys):
    res = complexity_from_config(TOY_CFG)
    assert res.input_shape == (1, 3, 64, 48)  # codec input_size (48, 64)
    from mmkp_ext.analysis import build_model_from_config
    model, cfg = build_model_from_config(TOY_CFG)
    assert config_input_size(cfg) == (64, 48)
    assert res.params == sum(p.numel() for p in model.parameters())
    # No grid_sample in this model: the same count as mmengine's own
    # analyzer on the estimator's tensor forward.
    from mmengine.analysis import FlopAnalyzer
    model.forward = model._forward
    stock = FlopAnalyzer(model, (torch.randn(1, 3, 64, 48), ))
    stock.unsupported_ops_warnings(False)
    assert res.flops == stock.total() > 0
    assert set(res.flops_by_module) >= {'backbone', 'head'}
    assert sum(res.flops_by_module.values()) == res.flops

    cli = load_tool('analysis_tools/get_complexity.py')
    cli.main([TOY_CFG, '--input-shape', '128', '96'])
    out = capsys.readouterr().out
    assert 'Input shape: (1, 3, 128, 96)' in out
    assert f'Params: {res.params / 1e6:.3f} M ({res.params})' in out
    gflops = float(out.split('GFLOPs: ')[1].split()[0])
    assert 3.5 * res.flops / 1e9 < gflops < 4.5 * res.flops / 1e9
    assert 'Not counted' in out


def test_input_shape_errors(tmp_path):
    with pytest.raises(ValueError, match=r'input_shape must be \(H, W\)'):
        complexity_from_config(TOY_CFG, input_shape=(64, ))
    with pytest.raises(FileNotFoundError, match='config file not found'):
        complexity_from_config(str(tmp_path / 'missing.py'))
    from mmengine.config import Config
    with pytest.raises(ValueError, match='declares no input_size'):
        config_input_size(Config(dict(model=dict(type='X'))))


class SelfAttention(nn.Module):

    def __init__(self, batch_first):
        super().__init__()
        self.batch_first = batch_first
        self.attn = nn.MultiheadAttention(32, 4, batch_first=batch_first)

    def forward(self, x):
        if not self.batch_first:
            x = x.transpose(0, 1)
        return self.attn(x, x, x, need_weights=False)[0]


@pytest.mark.parametrize('batch_first', [True, False])
@pytest.mark.parametrize('grad', [True, False])
def test_multihead_attention_counted(batch_first, grad):
    """nn.MultiheadAttention (SDPA path with autograd, fused native op
    without): projections 4 B L E^2 plus attention 2 B L^2 E either way."""
    B, L, E = 2, 7, 32
    x = torch.randn(B, L, E)
    with torch.set_grad_enabled(grad):
        res = count_complexity(SelfAttention(batch_first).eval(), (x, ))
    assert res.flops == 4 * B * L * E * E + 2 * B * L * L * E


def test_poseur_toy_config_counts_deformable_sampling():
    """The toy Poseur config through the library: every cross-attention's
    grid_sample is counted (inference: K queries, one group), and switching
    to MSDA moves exactly the value projections into the count."""
    cfg_path = osp.join(REPO_ROOT, 'configs', 'poseur', 'toy_persons',
                        'poseur_res18-tiny_1xb16-40e_toy-persons-128x96.py')
    from mmkp_ext.analysis import build_model_from_config
    model, _ = build_model_from_config(cfg_path)
    layers = [m for m in model.modules() if isinstance(m, EMSDeformAttn)]
    assert layers
    K = model.head.num_joints
    ems = complexity_from_config(cfg_path)
    assert ems.input_shape == (1, 3, 128, 96)
    expect = sum(4 * a.embed_dims * K * a.num_heads * a.num_levels *
                 a.num_points for a in layers)
    assert ems.flops_by_operator['grid_sampler'] == expect
    ms = complexity_from_config(
        cfg_path, cfg_options={'model.head.cross_attention': 'MSDA'})
    a = layers[0]
    n_value = sum((128 // s) * (96 // s) for s in (4, 8, 16, 32))
    assert ms.flops_by_operator['grid_sampler'] == expect // a.num_heads
    # Per layer, MSDA - EMSDA: + value projection of every position,
    # - EMSDA's per-head projection of the K*M mixed vectors, - the extra
    # (M-1)/M of EMSDA's samples (4 each) and weighted-sum MACs (1 each).
    C, M, d = a.embed_dims, a.num_heads, a.head_dims
    samples_e = C * K * M * a.num_levels * a.num_points
    per_layer = (n_value * C * C - K * M * C * d -
                 (4 + 1) * (samples_e - samples_e // M))
    assert ms.flops - ems.flops == len(layers) * per_layer

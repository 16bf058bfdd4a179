"""Tests of the HRNet++ backbone ``HRNetPlus``.

mmpose's own ``HRNet`` is the reference: with every switch off the two must
be the same network, and each switch may only add/replace what the report
describes. Expected module names are written out here from HRNet's layout,
not taken from ``HRNetPlus``'s code.
"""
import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope

from _helpers import randomise_

import mmkp_ext  # noqa: F401  (compat fixes + registration)
from mmkp_ext.models.backbones.hrnet_plus import (AvgPoolConv2d, HRNetPlus,
                                                  load_hrnet_stage1)
from mmpose.models.backbones import HRNet
from mmpose.models.backbones.resnet import BasicBlock, Bottleneck
from mmpose.registry import MODELS

# Tiny HRNet: stage 2 has one module, stages 3 and 4 two each.
EXTRA = dict(
    stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK',
                num_blocks=(1, ), num_channels=(8, )),
    stage2=dict(num_modules=1, num_branches=2, block='BASIC',
                num_blocks=(1, 1), num_channels=(8, 16)),
    stage3=dict(num_modules=2, num_branches=3, block='BASIC',
                num_blocks=(1, 1, 1), num_channels=(8, 16, 32)),
    stage4=dict(num_modules=2, num_branches=4, block='BASIC',
                num_blocks=(1, 1, 1, 1), num_channels=(8, 16, 32, 64),
                multiscale_output=True))
X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _extra(multiscale=True):
    extra = copy.deepcopy(EXTRA)
    extra['stage4']['multiscale_output'] = multiscale
    return extra


def _eval(model):
    model.eval()  # mmpose's HRNet.train() returns None: no chaining
    return model


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _ref(seed=0, multiscale=True):
    return _eval(randomise_(HRNet(_extra(multiscale)), seed))


# ---------------------------------------------------------------------------
# All switches off == mmpose's HRNet
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('multiscale', [True, False])
def test_all_off_is_mmpose_hrnet(multiscale):
    ref = _ref(multiscale=multiscale)
    plus = _eval(
        MODELS.build(dict(type='HRNetPlus', extra=_extra(multiscale))))
    assert _shapes(plus) == _shapes(ref)
    plus.load_state_dict(ref.state_dict(), strict=True)
    with torch.no_grad():
        out, expected = plus(X), ref(X)
    assert len(out) == len(expected) == (4 if multiscale else 1)
    for a, b in zip(out, expected):
        assert torch.equal(a, b)


# ---------------------------------------------------------------------------
# SE residual units
# ---------------------------------------------------------------------------
def _residual_units(model):
    return {
        n: m
        for n, m in model.named_modules()
        if isinstance(m, (BasicBlock, Bottleneck))
    }


def test_se_adds_one_se_layer_per_residual_unit_and_nothing_else():
    ref = _ref()
    plus = _eval(HRNetPlus(_extra(), se_ratio=8))
    units = _residual_units(ref)
    assert set(_residual_units(plus)) == set(units)
    assert len(units) == 1 + 2 + 2 * 3 + 2 * 4  # stage 1 + branch blocks
    # r = 8: C -> C // 8 -> C, 1x1 convs with bias.
    extra_keys = {}
    for name, unit in units.items():
        c = unit.out_channels
        for conv, shape in (('conv1', (c // 8, c, 1, 1)),
                            ('conv2', (c, c // 8, 1, 1))):
            extra_keys[f'{name}.se_layer.{conv}.conv.weight'] = shape
            extra_keys[f'{name}.se_layer.{conv}.conv.bias'] = shape[:1]
    assert _shapes(plus) == {**_shapes(ref), **extra_keys}

    # With every gate forced to exactly 1 the network is HRNet again.
    missing, unexpected = plus.load_state_dict(ref.state_dict(), strict=False)
    assert set(missing) == set(extra_keys) and not unexpected
    with torch.no_grad():
        for unit in _residual_units(plus).values():
            unit.se_layer.conv2.conv.weight.zero_()
            unit.se_layer.conv2.conv.bias.fill_(100.0)  # sigmoid -> 1.0
        for a, b in zip(plus(X), ref(X)):
            assert torch.equal(a, b)


@pytest.mark.parametrize('unit_name', ['layer1.0', 'stage3.1.branches.2.0'])
def test_se_gates_residual_branch_before_addition(unit_name):
    plus = _eval(randomise_(HRNetPlus(_extra(), se_ratio=8), seed=1))
    unit = plus.get_submodule(unit_name)
    gates = []
    unit.se_layer.conv2.register_forward_hook(
        lambda m, i, o: gates.append(o))
    x = torch.rand(2, unit.in_channels, 8, 8) - 0.3
    sd = {k: v for k, v in unit.state_dict().items()}

    def bn(t, name):
        return F.batch_norm(t, sd[f'{name}.running_mean'],
                            sd[f'{name}.running_var'], sd[f'{name}.weight'],
                            sd[f'{name}.bias'], False, 0.0, 1e-5)

    # Independent computation from the weights, written out.
    if isinstance(unit, Bottleneck):
        r = F.relu(bn(F.conv2d(x, sd['conv1.weight']), 'bn1'))
        r = F.relu(bn(F.conv2d(r, sd['conv2.weight'], padding=1), 'bn2'))
        r = bn(F.conv2d(r, sd['conv3.weight']), 'bn3')
    else:
        r = F.relu(bn(F.conv2d(x, sd['conv1.weight'], padding=1), 'bn1'))
        r = bn(F.conv2d(r, sd['conv2.weight'], padding=1), 'bn2')
    s = r.mean(dim=(2, 3), keepdim=True)
    s = F.relu(
        F.conv2d(s, sd['se_layer.conv1.conv.weight'],
                 sd['se_layer.conv1.conv.bias']))
    gate = torch.sigmoid(
        F.conv2d(s, sd['se_layer.conv2.conv.weight'],
                 sd['se_layer.conv2.conv.bias']))
    if unit.downsample is not None:
        identity = bn(F.conv2d(x, sd['downsample.0.weight']), 'downsample.1')
    else:
        identity = x
    expected = F.relu(r * gate + identity)

    with torch.no_grad():
        out = unit(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    (g, ) = gates
    assert g.shape == (2, unit.out_channels, 1, 1)  # one gate per channel
    assert (g >= 0).all() and (g <= 1).all()
    torch.testing.assert_close(g, gate, rtol=1e-5, atol=1e-6)
    assert g.std() > 0  # random weights: gates are not all equal


# ---------------------------------------------------------------------------
# Average-pool downsampling
# ---------------------------------------------------------------------------
def _strided_conv_names(extra):
    """HRNet's stride-2 3x3 convs outside the stem, from its layout: the
    conv opening each new branch in the transitions, and in every exchange
    block output i the i - j downsampling steps from a higher-resolution
    branch j."""
    names = []
    branches = [1] + [extra[f'stage{s}']['num_branches'] for s in (2, 3, 4)]
    for t in (1, 2, 3):
        for new in range(branches[t - 1], branches[t]):
            names += [
                f'transition{t}.{new}.{k}.0'
                for k in range(new + 1 - branches[t - 1])
            ]
    for s in (2, 3, 4):
        cfg = extra[f'stage{s}']
        for m in range(cfg['num_modules']):
            last = m == cfg['num_modules'] - 1
            n_out = (1 if last and s == 4
                     and not cfg.get('multiscale_output', False) else
                     cfg['num_branches'])
            for i in range(n_out):
                for j in range(i):
                    names += [
                        f'stage{s}.{m}.fuse_layers.{i}.{j}.{k}.0'
                        for k in range(i - j)
                    ]
    return names


def test_avg_pool_downsample_replaces_exactly_the_strided_convs():
    ref = _ref()
    plus = _eval(HRNetPlus(_extra(), avg_pool_downsample=True))
    names = _strided_conv_names(_extra())
    # 3 transitions + stage 2: 1 + stage 3: 2 x (1 + 2 + 1) + stage 4:
    # 2 x (1 + (2 + 1) + (3 + 2 + 1)).
    assert len(names) == 32
    for n in names:
        conv = ref.get_submodule(n)
        assert conv.stride == (2, 2) and conv.kernel_size == (3, 3)
        assert isinstance(plus.get_submodule(n), AvgPoolConv2d)
    assert sorted(n for n, m in plus.named_modules()
                  if isinstance(m, AvgPoolConv2d)) == sorted(names)
    # The stem keeps its strided 3x3 convs.
    assert plus.conv1.stride == plus.conv2.stride == (2, 2)
    assert plus.conv1.kernel_size == plus.conv2.kernel_size == (3, 3)

    # Same names; only the replaced kernels shrink to 1x1.
    expected = _shapes(ref)
    for n in names:
        o, i = expected[f'{n}.weight'][:2]
        expected[f'{n}.weight'] = (o, i, 1, 1)
    assert _shapes(plus) == expected

    # Output shapes unchanged (all four branches).
    with torch.no_grad():
        for x in (X, X[:, :, :, :32], torch.randn(1, 3, 128, 96)):
            assert [o.shape for o in plus(x)] == [o.shape for o in ref(x)]

    # Everything upstream of the first replacement is untouched: stem and
    # stage 1 give HRNet's values with HRNet's weights.
    keep = {k: v for k, v in ref.state_dict().items() if expected[k] ==
            tuple(v.shape)}
    plus.load_state_dict(keep, strict=False)
    feats = {}
    for model in (ref, plus):
        model.layer1.register_forward_hook(
            lambda m, i, o, key=id(model): feats.__setitem__(key, o))
        with torch.no_grad():
            model(X)
    assert torch.equal(feats[id(ref)], feats[id(plus)])


def test_avg_pool_conv_is_pool_then_1x1():
    conv = AvgPoolConv2d(2, 3)
    x = torch.arange(2 * 5 * 4, dtype=torch.float32).reshape(1, 2, 5, 4)
    # Hand-made 2x2 means; odd height: the last row averages 1x2 pixels.
    pooled = torch.empty(1, 2, 3, 2)
    for c in range(2):
        for h in range(3):
            for w in range(2):
                win = x[0, c, 2 * h:2 * h + 2, 2 * w:2 * w + 2]
                pooled[0, c, h, w] = win.mean()
    expected = torch.einsum('oi,bihw->bohw', conv.weight[:, :, 0, 0],
                            pooled)
    with torch.no_grad():
        torch.testing.assert_close(conv(x), expected)
    assert conv(x).shape == F.conv2d(x, torch.zeros(3, 2, 3, 3), stride=2,
                                     padding=1).shape


# ---------------------------------------------------------------------------
# Cross-module skips
# ---------------------------------------------------------------------------
# Exchange blocks of the tiny net, in order, with the branches they output.
EXCHANGES = [('stage2.0', 2), ('stage3.0', 3), ('stage3.1', 3),
             ('stage4.0', 4), ('stage4.1', 4)]
# receiving exchange block -> per branch, the earlier exchange outputs it
# gets (hand-written: every earlier exchange at the same branch).
SKIPS = {
    'stage2.0': [[], []],
    'stage3.0': [['stage2.0'], ['stage2.0'], []],
    'stage3.1': [['stage2.0', 'stage3.0'], ['stage2.0', 'stage3.0'],
                 ['stage3.0']],
    'stage4.0': [['stage2.0', 'stage3.0', 'stage3.1']] * 2 +
    [['stage3.0', 'stage3.1'], []],
    'stage4.1': [['stage2.0', 'stage3.0', 'stage3.1', 'stage4.0']] * 2 +
    [['stage3.0', 'stage3.1', 'stage4.0'], ['stage4.0']],
}
CHANNELS = (8, 16, 32, 64)


def test_cross_module_skips_layout_and_inputs():
    ref = _ref()
    plus = _eval(randomise_(HRNetPlus(_extra(), cross_module_skips=True), 2))
    expected = _shapes(ref)
    for recv, per_branch in SKIPS.items():
        for b, sources in enumerate(per_branch):
            c = CHANNELS[b]
            for k in range(len(sources)):
                p = f'{recv}.cross_skips.{b}.{k}'
                expected[f'{p}.0.weight'] = (c, c, 1, 1)
                for t in ('weight', 'bias', 'running_mean', 'running_var'):
                    expected[f'{p}.1.{t}'] = (c, )
                expected[f'{p}.1.num_batches_tracked'] = ()
    assert _shapes(plus) == expected

    outputs, received = {}, {}
    for name, _ in EXCHANGES:
        plus.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: outputs.__setitem__(name, o))
    for recv, per_branch in SKIPS.items():
        for b, sources in enumerate(per_branch):
            for k in range(len(sources)):
                conv = plus.get_submodule(f'{recv}.cross_skips.{b}.{k}.0')
                conv.register_forward_hook(
                    lambda m, i, o, key=(recv, b, k): received.__setitem__(
                        key, i[0]))
    with torch.no_grad():
        plus(X)
    n_skips = sum(len(s) for p in SKIPS.values() for s in p)
    assert len(received) == n_skips == 2 + 5 + 8 + 12
    for (recv, b, k), tensor in received.items():
        # The skip's 1x1 conv sees exactly the earlier exchange's output.
        assert tensor is outputs[SKIPS[recv][b][k]][b]


def test_cross_module_skips_change_only_the_exchange_inputs():
    ref = _ref()
    plus = _eval(randomise_(HRNetPlus(_extra(), cross_module_skips=True), 3))
    plus.load_state_dict(ref.state_dict(), strict=False)
    with torch.no_grad():
        skipped = plus(X)
        # Skips that output exactly zero: HRNet's outputs, bit for bit.
        for name, m in plus.named_modules():
            if name.endswith('cross_skips'):
                for convs in m:
                    for seq in convs:
                        seq[1].weight.zero_()
                        seq[1].bias.zero_()
        for a, b in zip(plus(X), ref(X)):
            assert torch.equal(a, b)
        # ... and non-zero skips do change the features.
        assert not torch.allclose(skipped[0], ref(X)[0])


def test_skip_count_mismatch_is_a_clear_error():
    plus = HRNetPlus(_extra(), cross_module_skips=True)
    module = plus.stage3[1]
    x = [torch.zeros(1, c, 8 // 2**b, 8 // 2**b)
         for b, c in enumerate(CHANNELS[:3])]
    with pytest.raises(ValueError, match='earlier exchange outputs'):
        module(x, [[x[0]], [x[1]], []])


# ---------------------------------------------------------------------------
# Everything on; partial loading
# ---------------------------------------------------------------------------
def test_all_switches_on_keeps_output_shapes():
    ref = _ref()
    plus = _eval(
        HRNetPlus(_extra(), se_ratio=8, avg_pool_downsample=True,
                  cross_module_skips=True))
    with torch.no_grad():
        assert [o.shape for o in plus(X)] == [o.shape for o in ref(X)]
    assert set(_shapes(ref)) <= set(_shapes(plus))


def _stage1_keys(model):
    return sorted(
        k for k in model.state_dict()
        if k.split('.')[0] in ('conv1', 'bn1', 'conv2', 'bn2', 'layer1')
        and '.se_layer.' not in k)


def test_stage1_partial_load_from_checkpoint(tmp_path):
    ref = _ref(seed=4)
    ckpt = tmp_path / 'hrnet.pth'
    torch.save(
        dict(state_dict={f'backbone.{k}': v
                         for k, v in ref.state_dict().items()}), ckpt)
    init_default_scope('mmpose')
    plus = HRNetPlus(
        _extra(), se_ratio=8, avg_pool_downsample=True,
        cross_module_skips=True,
        init_cfg=[
            dict(type='Normal', std=0.001, layer=['Conv2d']),
            dict(type='Constant', val=1, layer=['_BatchNorm']),
            dict(type='HRNetStage1Pretrained', checkpoint=str(ckpt),
                 prefix='backbone.'),
        ])
    plus.init_weights()
    own, src = plus.state_dict(), ref.state_dict()
    keys = _stage1_keys(ref)
    # conv + 5 BN tensors: 2 in the stem, 3 in layer1.0, 1 in its downsample.
    assert len(keys) == (2 + 3 + 1) * (1 + 5)
    for k in keys:
        assert torch.equal(own[k], src[k]), k
    # Stage 1's SE layers and everything after stage 1 are not loaded.
    assert torch.equal(own['layer1.0.se_layer.conv2.conv.bias'],
                       torch.zeros(32))
    k = 'stage2.0.branches.0.0.conv1.weight'
    assert own[k].abs().max() < 0.01 and not torch.equal(own[k], src[k])

    # The function form returns what it loaded; plain HRNet works too.
    plain = HRNet(_extra())
    assert load_hrnet_stage1(plain, ref.state_dict()) == keys


def test_stage1_partial_load_rejects_mismatched_checkpoints():
    plus = HRNetPlus(_extra(), se_ratio=8)
    wider = copy.deepcopy(EXTRA)
    wider['stage1']['num_channels'] = (16, )
    with pytest.raises(ValueError, match='shape mismatches.*layer1'):
        load_hrnet_stage1(plus, HRNet(wider).state_dict())
    deeper = copy.deepcopy(EXTRA)
    deeper['stage1']['num_blocks'] = (2, )
    with pytest.raises(ValueError, match='model lacks.*layer1.1'):
        load_hrnet_stage1(plus, HRNet(deeper).state_dict())
    with pytest.raises(ValueError, match='missing stem/stage-1'):
        load_hrnet_stage1(plus, HRNet(_extra()).state_dict(),
                          prefix='backbone.')


# ---------------------------------------------------------------------------
# Config errors
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('kwargs, match', [
    (dict(se_ratio=0), 'se_ratio must be None'),
    (dict(se_ratio=True), 'se_ratio must be None'),
    (dict(se_ratio='8'), 'se_ratio must be None'),
    (dict(se_ratio=16), 'channels // se_ratio'),
    (dict(avg_pool_downsample='yes'), 'avg_pool_downsample must be'),
    (dict(cross_module_skips=1), 'cross_module_skips must be'),
    (dict(avg_pool_downsample=True, conv_cfg=dict(type='Conv2d')),
     'needs conv_cfg=None'),
])
def test_bad_switch_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HRNetPlus(_extra(), **kwargs)


def test_bad_extra():
    extra = _extra()
    extra['stage3']['block'] = 'BASICX'
    with pytest.raises(ValueError, match=r"extra\['stage3'\]\[\"block\"\]"):
        HRNetPlus(extra)
    extra = _extra()
    del extra['stage4']
    with pytest.raises(ValueError, match="lacks 'stage4'"):
        HRNetPlus(extra)


def test_frozen_stages_freeze_the_replacement_convs():
    plus = HRNetPlus(_extra(), avg_pool_downsample=True, frozen_stages=2)
    assert not plus.transition1[1][0][0].weight.requires_grad
    assert not plus.stage2[0].fuse_layers[1][0][0][0].weight.requires_grad
    assert plus.transition3[3][0][0].weight.requires_grad


def test_training_gradients_reach_every_new_parameter_and_with_cp_agrees():
    kwargs = dict(se_ratio=8, avg_pool_downsample=True,
                  cross_module_skips=True)
    plain = randomise_(HRNetPlus(_extra(), **kwargs), seed=5)
    ckpt = HRNetPlus(_extra(), with_cp=True, **kwargs)
    ckpt.load_state_dict(plain.state_dict())
    grads = []
    for model in (plain, ckpt):
        model.train()
        sum(o.square().mean() for o in model(X[:, :, :32, :32])).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    pooled = {f'{n}.weight' for n, m in plain.named_modules()
              if isinstance(m, AvgPoolConv2d)}
    for name, g in grads[0].items():
        assert g is not None and torch.isfinite(g).all(), name
        # Every SE gate, skip and pooled conv takes part (the SE hidden
        # ReLU units may be dead for random weights, so only the gate bias
        # and the skips' norm bias are asserted there).
        if (name.endswith('se_layer.conv2.conv.bias') or name in pooled
                or 'cross_skips' in name and name.endswith('.1.bias')):
            assert g.abs().sum() > 0, name
        # Activation checkpointing recomputes the same function.
        torch.testing.assert_close(grads[1][name], g, rtol=1e-4, atol=1e-6)

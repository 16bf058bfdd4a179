"""Tests of the DLA-34 backbone ``DLANet`` and its ImageNet key map.

The public checkpoint layout is written out here independently of DLANet's
code (from timm's ``timm/models/dla.py`` and ucbdrive/dla's ``dla.py``), and
the forward pass is checked against a functional re-implementation of the
ucbdrive network that reads weights by their public names.
"""
import math
import time

import pytest
import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from _helpers import randomise_

import mmkp_ext  # noqa: F401  (compat fixes + registration)
from mmkp_ext.models.backbones import DLANet, dla34_imagenet_to_dlanet
from mmpose.registry import MODELS

TINY = (4, 6, 8, 10, 12, 14)

# ---------------------------------------------------------------------------
# The public ImageNet DLA-34 layout, written out by hand.
# ---------------------------------------------------------------------------


def _conv_bn(prefix, conv, bn, out, cin, k):
    """conv weight (out, cin, k, k) + batch norm of ``out`` channels."""
    keys = [(f'{prefix}.{conv}.weight', (out, cin, k, k))]
    keys += [(f'{prefix}.{bn}.{n}', (out, ))
             for n in ('weight', 'bias', 'running_mean', 'running_var')]
    return keys


def _block(prefix, cin, cout):
    return (_conv_bn(prefix, 'conv1', 'bn1', cout, cin, 3) +
            _conv_bn(prefix, 'conv2', 'bn2', cout, cout, 3))


def _leaf(prefix, cin, cout, root_in, project):
    keys = _block(f'{prefix}.tree1', cin, cout)
    keys += _block(f'{prefix}.tree2', cout, cout)
    keys += _conv_bn(f'{prefix}.root', 'conv', 'bn', cout, root_in, 1)
    if project:
        keys += _conv_bn(f'{prefix}.project', '0', '1', cout, cin, 1)
    return keys


def public_dla34_layout(ucbdrive=False):
    """(name, shape) of every tensor of the ImageNet DLA-34 state dict
    without ``fc`` and ``num_batches_tracked``.

    Root input widths: 2*out (+ in with level_root); the second sub-tree of
    a depth-2 tree also gets the tree's input and its first sub-tree's
    output: 2*128 + 64 + 128 = 448 and 2*256 + 128 + 256 = 896; level5:
    2*512 + 256 = 1280. ``ucbdrive=True`` adds the projections of the
    depth-2 trees level3/level4 that only the original file stores.
    """
    keys = _conv_bn('base_layer', '0', '1', 16, 3, 7)
    keys += _conv_bn('level0', '0', '1', 16, 16, 3)
    keys += _conv_bn('level1', '0', '1', 32, 16, 3)
    keys += _leaf('level2', 32, 64, 128, project=True)
    keys += _leaf('level3.tree1', 64, 128, 256, project=True)
    keys += _leaf('level3.tree2', 128, 128, 448, project=False)
    keys += _leaf('level4.tree1', 128, 256, 512, project=True)
    keys += _leaf('level4.tree2', 256, 256, 896, project=False)
    keys += _leaf('level5', 256, 512, 1280, project=True)
    if ucbdrive:
        keys += _conv_bn('level3.project', '0', '1', 128, 64, 1)
        keys += _conv_bn('level4.project', '0', '1', 256, 128, 1)
    return keys


def random_state_dict(layout, seed=0):
    """Random tensors of the given (name, shape) layout; positive running
    variances so a network using them stays finite."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape in layout:
        if name.endswith('running_var'):
            sd[name] = torch.rand(shape, generator=g) + 0.5
        elif name.endswith('.weight') and len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            sd[name] = torch.randn(
                shape, generator=g) * math.sqrt(2.0 / fan_in)
        else:
            sd[name] = torch.randn(
                shape, generator=g) * 0.1 + (1.0 if name.endswith('.weight')
                                             else 0.0)
    return sd


# ---------------------------------------------------------------------------
# Functional reference of the ucbdrive DLA forward pass (eval mode).
# ---------------------------------------------------------------------------


def _bn(x, sd, p):
    return F.batch_norm(x, sd[f'{p}.running_mean'], sd[f'{p}.running_var'],
                        sd[f'{p}.weight'], sd[f'{p}.bias'], False, 0.0, 1e-5)


def _ref_block(x, sd, p, stride, shortcut):
    out = F.relu(
        _bn(
            F.conv2d(x, sd[f'{p}.conv1.weight'], stride=stride, padding=1), sd,
            f'{p}.bn1'))
    out = _bn(
        F.conv2d(out, sd[f'{p}.conv2.weight'], padding=1), sd, f'{p}.bn2')
    return F.relu(out + shortcut)


def _ref_leaf(x, sd, p, stride, children):
    bottom = F.max_pool2d(x, 2) if stride == 2 else x
    if f'{p}.project.0.weight' in sd:
        shortcut = _bn(
            F.conv2d(bottom, sd[f'{p}.project.0.weight']), sd,
            f'{p}.project.1')
    else:
        shortcut = bottom
    x1 = _ref_block(x, sd, f'{p}.tree1', stride, shortcut)
    x2 = _ref_block(x1, sd, f'{p}.tree2', 1, x1)
    # Root input order of ucbdrive's Tree: x2, x1, then the children.
    cat = torch.cat([x2, x1, *children], dim=1)
    return F.relu(
        _bn(F.conv2d(cat, sd[f'{p}.root.conv.weight']), sd, f'{p}.root.bn'))


def reference_dla34(x, sd):
    """The six level outputs of DLA-34 (levels 1,1,1,2,2,1) in eval mode."""
    outs = []
    x = F.relu(
        _bn(
            F.conv2d(x, sd['base_layer.0.weight'], padding=3), sd,
            'base_layer.1'))
    x = F.relu(
        _bn(F.conv2d(x, sd['level0.0.weight'], padding=1), sd, 'level0.1'))
    outs.append(x)
    x = F.relu(
        _bn(
            F.conv2d(x, sd['level1.0.weight'], stride=2, padding=1), sd,
            'level1.1'))
    outs.append(x)
    x = _ref_leaf(x, sd, 'level2', 2, [])  # no level_root
    outs.append(x)
    for p in ('level3', 'level4'):  # depth 2, level_root
        bottom = F.max_pool2d(x, 2)
        x1 = _ref_leaf(x, sd, f'{p}.tree1', 2, [])
        x = _ref_leaf(x1, sd, f'{p}.tree2', 1, [bottom, x1])
        outs.append(x)
    x = _ref_leaf(x, sd, 'level5', 2, [F.max_pool2d(x, 2)])  # level_root
    outs.append(x)
    return outs


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------


def test_output_shapes_and_strides():
    model = DLANet(channels=TINY)
    outs = model(torch.rand(2, 3, 64, 64))
    assert isinstance(outs, tuple) and len(outs) == 6
    for i, out in enumerate(outs):
        assert out.shape == (2, TINY[i], 64 // 2**i, 64 // 2**i)

    sub = DLANet(channels=TINY, out_indices=(2, 4))
    outs = sub(torch.rand(1, 3, 32, 48))
    assert [o.shape for o in outs] == [(1, 8, 8, 12), (1, 12, 2, 3)]


def test_forward_matches_reference_implementation():
    """Eval-mode outputs equal a functional ucbdrive DLA-34 using the same
    tensors by their public names (checks wiring: shortcuts, root input
    order, level_root children, projections)."""
    model = randomise_(DLANet(channels=TINY)).eval()
    sd = model.state_dict()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        outs = model(x)
        ref = reference_dla34(x, sd)
    for i, (a, b) in enumerate(zip(outs, ref)):
        torch.testing.assert_close(
            a, b, rtol=1e-4, atol=1e-5, msg=f'level {i}')


def test_levels_above_max_out_index_not_computed(monkeypatch):
    model = DLANet(channels=TINY, out_indices=(0, 2))

    def boom(*args, **kwargs):
        raise AssertionError('level3 must not run')

    monkeypatch.setattr(model.level3, 'forward', boom)
    # 12 is divisible by 4 (level 2) but not by 8: accepted.
    outs = model(torch.rand(1, 3, 12, 12))
    assert [o.shape for o in outs] == [(1, 4, 12, 12), (1, 8, 3, 3)]


def test_public_layout_counts():
    """The hand-written layout has timm dla34's 185 tensors (without fc and
    num_batches_tracked) and 15,229,104 parameters, i.e. 15,742,104 with
    the 1000-class fc (timm lists dla34 at 15.74 M parameters)."""
    layout = public_dla34_layout()
    assert len(layout) == 185
    params = [
        s for n, s in layout if not n.endswith(('running_mean', 'running_var'))
    ]
    assert sum(math.prod(s) for s in params) == 15229104
    assert 15229104 + 512 * 1000 + 1000 == 15742104
    assert len(public_dla34_layout(ucbdrive=True)) == 195


def test_full_dla34_counts_and_shapes_match_public_layout():
    model = DLANet(depth=34)
    shapes = {
        k: tuple(v.shape)
        for k, v in model.state_dict().items()
        if not k.endswith('num_batches_tracked')
    }
    assert shapes == dict(public_dla34_layout())
    assert sum(p.numel() for p in model.parameters()) == 15229104


@pytest.mark.parametrize('ucbdrive', [False, True])
def test_imagenet_state_dict_loads_strictly(ucbdrive):
    """A state dict with the public names and shapes (plus fc, and for the
    ucbdrive file the unused projections, a 'module.' prefix and no
    num_batches_tracked) converts and loads with strict=True, and the
    loaded tensors land where their names say: the network then computes
    exactly the functional reference on the public dict."""
    public = random_state_dict(public_dla34_layout(ucbdrive), seed=1)
    public['fc.weight'] = torch.randn(1000, 512, 1, 1)
    public['fc.bias'] = torch.randn(1000)
    if ucbdrive:
        ckpt = {f'module.{k}': v for k, v in public.items()}
    else:
        ckpt = dict(public)
        for name, _ in public_dla34_layout():
            if name.endswith('running_var'):
                ckpt[name[:-len('running_var')] +
                     'num_batches_tracked'] = torch.tensor(7)

    converted = dla34_imagenet_to_dlanet(ckpt)
    assert not any(k.startswith('fc.') for k in converted)
    model = DLANet(depth=34)
    model.init_weights()
    model.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
    model.load_state_dict(converted, strict=True)
    with torch.no_grad():
        after = model(x)
        ref = reference_dla34(x, public)
    for a, b, r in zip(before, after, ref):
        assert not torch.allclose(a, b)
        torch.testing.assert_close(b, r, rtol=1e-4, atol=1e-4)
    # Spot checks by name.
    torch.testing.assert_close(model.level4.tree2.root.conv.weight,
                               public['level4.tree2.root.conv.weight'])
    torch.testing.assert_close(model.base_layer[1].running_var,
                               public['base_layer.1.running_var'])
    expected_nbt = 0 if ucbdrive else 7
    assert int(model.level5.root.bn.num_batches_tracked) == expected_nbt


def test_pretrained_init_cfg_loads_public_file(tmp_path):
    """init_cfg=Pretrained (mmengine, non-strict) on a file in the ucbdrive
    layout fills every DLANet tensor; fc and the unused projections are
    merely reported as unexpected."""
    public = random_state_dict(public_dla34_layout(ucbdrive=True), seed=2)
    public['fc.weight'] = torch.randn(1000, 512, 1, 1)
    public['fc.bias'] = torch.randn(1000)
    path = tmp_path / 'dla34-public.pth'
    torch.save(public, path)
    model = MODELS.build(
        dict(
            type='DLANet',
            init_cfg=dict(type='Pretrained', checkpoint=str(path))))
    model.init_weights()
    for name, tensor in model.state_dict().items():
        if name.endswith('num_batches_tracked'):
            continue
        torch.testing.assert_close(tensor, public[name], msg=name)


def test_converter_prefixes_and_errors():
    public = random_state_dict(public_dla34_layout(), seed=3)
    # 'backbone.' prefix (an mmpose model): other modules' keys are ignored.
    full = {f'backbone.{k}': v for k, v in public.items()}
    full['neck.dla_up.ida_0.proj_1.conv.weight'] = torch.zeros(1)
    full['head.hm.weight'] = torch.zeros(1)
    out = dla34_imagenet_to_dlanet({'state_dict': full})
    assert out['level2.root.conv.weight'] is public['level2.root.conv.weight']

    bad = dict(public)
    bad['level6.root.conv.weight'] = torch.zeros(1)
    with pytest.raises(ValueError, match=r'unexpected.*level6\.root'):
        dla34_imagenet_to_dlanet(bad)
    bad = dict(public)
    del bad['level3.tree2.root.conv.weight']
    with pytest.raises(ValueError, match=r'missing.*level3\.tree2\.root'):
        dla34_imagenet_to_dlanet(bad)
    bad = dict(public)
    bad['level1.0.weight'] = torch.zeros(32, 16, 5, 5)
    with pytest.raises(ValueError, match=r'level1\.0\.weight: \(32, 16, 5'):
        dla34_imagenet_to_dlanet(bad)
    with pytest.raises(TypeError, match='mapping'):
        dla34_imagenet_to_dlanet([('a', torch.zeros(1))])
    with pytest.raises(TypeError, match='tensors'):
        dla34_imagenet_to_dlanet({'level0.0.weight': [1.0]})


def test_gradients_reach_every_parameter():
    model = DLANet(channels=TINY)
    outs = model(torch.randn(2, 3, 32, 32))
    sum(o.square().mean() for o in outs).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


def test_default_init_is_dla_scheme():
    """Conv weights ~ N(0, 2 / (k*k*out_channels)), norm weight 1, bias 0."""
    torch.manual_seed(0)
    model = DLANet(depth=34)
    model.init_weights()
    w = model.level5.tree2.conv2.weight  # 512 x 512 x 3 x 3
    expected_std = math.sqrt(2.0 / (3 * 3 * 512))
    assert abs(w.std().item() / expected_std - 1) < 0.02
    assert abs(w.mean().item()) < 0.05 * expected_std
    w = model.level3.tree2.root.conv.weight  # 128 x 448 x 1 x 1
    assert abs(w.std().item() / math.sqrt(2.0 / 128) - 1) < 0.05
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def _bn_stats(module):
    return [
        m.running_mean.clone() for m in module.modules()
        if isinstance(m, _BatchNorm)
    ]


def test_frozen_stages():
    model = DLANet(channels=TINY, frozen_stages=2)
    model.train()
    frozen = [model.base_layer, model.level0, model.level1, model.level2]
    for m in frozen:
        assert not m.training
        assert all(not p.requires_grad for p in m.parameters())
    for m in (model.level3, model.level4, model.level5):
        assert m.training
        assert all(p.requires_grad for p in m.parameters())

    before = [_bn_stats(m) for m in (model.level2, model.level3)]
    outs = model(torch.randn(2, 3, 32, 32))
    sum(o.mean() for o in outs).backward()
    after = [_bn_stats(m) for m in (model.level2, model.level3)]
    assert all(torch.equal(a, b) for a, b in zip(before[0], after[0]))
    assert not all(torch.equal(a, b) for a, b in zip(before[1], after[1]))
    assert all(p.grad is None for m in frozen for p in m.parameters())
    assert all(p.grad is not None for p in model.level3.parameters())

    model = DLANet(channels=TINY, frozen_stages=-1)
    model.train()
    assert all(p.requires_grad for p in model.parameters())


def test_norm_eval():
    model = DLANet(channels=TINY, norm_eval=True)
    model.train()
    assert model.training
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and all(not m.training for m in bns)
    # Convolutions stay trainable, only the statistics are frozen.
    assert all(p.requires_grad for p in model.parameters())
    before = _bn_stats(model)
    model(torch.randn(2, 3, 32, 32))
    assert all(torch.equal(a, b) for a, b in zip(before, _bn_stats(model)))

    model = DLANet(channels=TINY, norm_eval=False)
    model.train()
    before = _bn_stats(model)
    model(torch.randn(2, 3, 32, 32))
    assert not any(torch.equal(a, b) for a, b in zip(before, _bn_stats(model)))


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(depth=50), ValueError, 'depth'),
    (dict(levels=(1, 1, 1, 2, 2)), ValueError, 'levels must have 6'),
    (dict(levels=(1, 0, 1, 2, 2, 1)), ValueError, 'levels entries'),
    (dict(channels=(4, 6, 8, 10, 12, 0)), ValueError, 'channels'),
    (dict(channels='abcdef'), TypeError, 'channels'),
    (dict(out_indices=(3, 1)), ValueError, 'increasing'),
    (dict(out_indices=(0, 6)), ValueError, 'out_indices'),
    (dict(out_indices=()), TypeError, 'out_indices'),
    (dict(frozen_stages=6), ValueError, 'frozen_stages'),
    (dict(frozen_stages=-2), ValueError, 'frozen_stages'),
    (dict(in_channels=0), ValueError, 'in_channels'),
    (dict(norm_cfg=None), TypeError, 'norm_cfg'),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DLANet(**{'channels': TINY, **kwargs})


def test_bad_inputs():
    model = DLANet(channels=TINY)
    with pytest.raises(ValueError, match='divisible by 32'):
        model(torch.rand(1, 3, 48, 64))
    with pytest.raises(ValueError, match=r'\(B, C, H, W\)'):
        model(torch.rand(3, 64, 64))


def test_build_from_config_and_small_levels():
    model = MODELS.build(
        dict(
            type='DLANet',
            depth=34,
            levels=(1, 2, 1, 3, 1, 1),
            channels=TINY,
            out_indices=(1, 3, 5)))
    assert isinstance(model, DLANet)
    assert type(model).__module__ == 'mmkp_ext.models.backbones.dla'
    assert len(model.level1) == 6  # two (conv, norm, relu) triples
    # A depth-3 tree nests two depth-2 trees of two leaves each.
    assert hasattr(model.level3.tree2.tree1, 'root')
    outs = model(torch.rand(1, 3, 64, 64))
    assert [o.shape for o in outs] == [(1, 6, 32, 32), (1, 10, 8, 8),
                                       (1, 14, 2, 2)]


def test_full_size_forward_is_fast():
    model = DLANet(depth=34).eval()
    start = time.perf_counter()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 128, 128))
    assert time.perf_counter() - start < 5.0
    assert [o.shape[1] for o in outs] == [16, 32, 64, 128, 256, 512]
    assert outs[-1].shape[-2:] == (4, 4)

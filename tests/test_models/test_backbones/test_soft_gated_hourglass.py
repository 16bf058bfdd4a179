"""SoftGatedHourglass: the hybrid's fusion rules (concat feeds both maps to
one conv; sum is mmpose's hourglass rule), the stacked outputs CPMHead
consumes, gate extraction, the paper-size settings and the full-size
configs."""
import os.path as osp

import pytest
import torch
from _helpers import REPO_ROOT, randomise_
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import nn

import mmkp_ext  # noqa: F401
from mmkp_ext.models.backbones import SoftGatedHourglass, soft_gate_values
from mmkp_ext.models.backbones.soft_gated_hourglass import (
    HybridFusion, SoftGatedHourglassModule)
from mmpose.models.backbones.hourglass import HourglassModule
from mmpose.registry import MODELS

CFG = osp.join(REPO_ROOT, 'configs', 'soft_gated')


def _module(fusion, channels=8, depth=2, seed=0):
    m = SoftGatedHourglassModule(channels, depth, fusion, 1,
                                 dict(gate='channel', gate_init=0.0))
    return randomise_(m, seed=seed).eval()


def test_concat_fusion_feeds_both_sources_to_one_conv():
    fuse = randomise_(HybridFusion(6, 'concat')).eval()
    assert isinstance(fuse.conv, nn.Conv2d)
    assert fuse.conv.in_channels == 12 and fuse.conv.out_channels == 6
    assert fuse.conv.groups == 1
    g = torch.Generator().manual_seed(0)
    s, u = (torch.randn(2, 6, 4, 4, generator=g) for _ in range(2))
    with torch.no_grad():
        out = fuse(s, u)
        # Every output channel depends on both sources.
        ds = (fuse(s + 1, u) - out).abs().amax(dim=(0, 2, 3))
        du = (fuse(s, u + 1) - out).abs().amax(dim=(0, 2, 3))
        # And it is that conv applied to the concatenation.
        by_hand = fuse.conv(torch.relu(fuse.norm(torch.cat([s, u], 1))))
    assert torch.all(ds > 1e-4) and torch.all(du > 1e-4)
    assert torch.allclose(out, by_hand)


def test_grouped_fusion_keeps_the_sources_apart():
    fuse = randomise_(HybridFusion(6, 'concat_grouped')).eval()
    assert fuse.conv.groups == 2 and fuse.conv.in_channels == 12
    s, u = torch.randn(1, 6, 3, 3), torch.randn(1, 6, 3, 3)
    with torch.no_grad():
        out = fuse(s, u)
        ds = (fuse(s + 1, u) - out).abs().amax(dim=(0, 2, 3))
        du = (fuse(s, u + 1) - out).abs().amax(dim=(0, 2, 3))
    # First half of the outputs sees s only, second half u only.
    assert torch.all(ds[:3] > 1e-4) and torch.all(ds[3:] == 0)
    assert torch.all(du[3:] > 1e-4) and torch.all(du[:3] == 0)


def test_concat_hourglass_output_depends_on_encoder_and_decoder():
    """In the full module, the finest fusion conv takes 2C channels, and
    perturbing its encoder input (the skip block) or its decoder input (the
    up block) changes the output."""
    m = _module('concat')
    x = torch.randn(1, 8, 8, 8)
    level = m.levels[0]
    assert level.fuse.conv.in_channels == 16
    with torch.no_grad():
        ref = m(x)
        for block in (level.skip, level.up):
            # restore by copy: adding and subtracting 0.5 is not exact in
            # float32 (the output then differed by ~1e-6 on some runs)
            saved = block.convs[0].weight.clone()
            block.convs[0].weight.add_(0.5)
            assert (m(x) - ref).abs().max() > 1e-3
            block.convs[0].weight.copy_(saved)
        assert torch.equal(m(x), ref)


def test_sum_mode_equals_mmpose_hourglass_fusion():
    """mmpose's HourglassModule computes ``up1(x) + Upsample(2)(low3(low2(
    low1(x))))`` recursively. Giving it our blocks (low1 = max-pool + our
    down block, since ours pools instead of striding) must give exactly our
    sum-mode output, at two levels of recursion."""
    ours = _module('sum', channels=8, depth=2, seed=1)
    ref = HourglassModule(2, [8, 8, 8], [1, 1, 1])
    inner = ref.low2
    for mm, level in ((ref, ours.levels[0]), (inner, ours.levels[1])):
        mm.up1 = level.skip
        mm.low1 = nn.Sequential(nn.MaxPool2d(2), level.down)
        mm.low3 = level.up
    inner.low2 = ours.bottom
    ref.eval()
    x = torch.randn(2, 8, 16, 12)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-6)
        # A concat model with the same blocks differs.
        cat = _module('concat', channels=8, depth=2, seed=1)
        assert not torch.allclose(cat(x), ref(x), atol=1e-3)


@pytest.mark.parametrize('num_keypoints', [5, None])
def test_stacked_outputs_for_cpm_head(num_keypoints):
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(
            dict(type='SoftGatedHourglass', num_stacks=3, channels=16,
                 depth=2, num_keypoints=num_keypoints, stem_channels=(8, 8)))
    model.init_weights()
    x = torch.randn(2, 3, 64, 48)
    outs = model(x)
    c = num_keypoints or 16
    assert isinstance(outs, tuple) and len(outs) == 3
    assert all(o.shape == (2, c, 16, 12) for o in outs)
    # Every stack's output is supervised: each one gets gradients from its
    # own loss, and later stacks depend on earlier ones.
    outs[0].sum().backward()
    assert model.hourglasses[0].bottom.convs[0].weight.grad is not None
    assert model.hourglasses[1].bottom.convs[0].weight.grad is None
    if num_keypoints:
        # Heatmap convs start tiny (as mmpose's heads), merge convs exist.
        assert model.heatmap_convs[0].weight.abs().max() < 0.01
        assert len(model.merge_preds) == 2


def test_stacks_feed_back_features_and_heatmaps():
    """Newell et al.'s intermediate supervision: the next stack's input is
    ``x + merge_feats(feat) + merge_preds(heatmaps)`` (the previous stack's
    input, its features and its predicted heatmaps, each remapped by a 1x1
    conv), recomputed here from the sub-modules; the last stack's heatmaps
    depend on the first stack's heatmap conv only through ``merge_preds``."""
    model = SoftGatedHourglass(num_stacks=3, channels=8, depth=2,
                               num_keypoints=4, stem_channels=(8, 8))
    randomise_(model, seed=3).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        outs = model(x)
        h = model.stem(x)
        expected = []
        for i in range(3):
            feat = model.out_blocks[i](model.hourglasses[i](h))
            pred = model.heatmap_convs[i](feat)
            expected.append(pred)
            if i < 2:
                h = h + model.merge_feats[i](feat) + model.merge_preds[i](pred)
    for got, want in zip(outs, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # Without the heatmap feedback the later stacks would differ.
    with torch.no_grad():
        for conv in model.merge_preds:
            conv.weight.zero_()
            conv.bias.zero_()
        cut = model(x)
    torch.testing.assert_close(cut[0], outs[0])
    assert (cut[2] - outs[2]).abs().max() > 1e-3
    # Gradient path: last stack's output -> merge_preds -> first heatmaps.
    model = SoftGatedHourglass(num_stacks=2, channels=8, depth=2,
                               num_keypoints=4, stem_channels=(8, 8))
    randomise_(model, seed=4)
    model(x)[1].sum().backward()
    assert model.heatmap_convs[0].weight.grad is not None
    assert model.heatmap_convs[0].weight.grad.abs().max() > 0


def test_odd_sizes_come_back_to_their_own_size():
    model = SoftGatedHourglass(num_stacks=1, channels=8, depth=2,
                               num_keypoints=3, stem_channels=(8, 8))
    assert model(torch.randn(1, 3, 72, 40))[0].shape == (1, 3, 18, 10)
    deep = SoftGatedHourglass(num_stacks=1, channels=8, depth=4,
                              stem_channels=(8, 8))
    deep.eval()  # (in training mode BatchNorm refuses 1x1 maps first)
    with pytest.raises(ValueError, match='smaller depth'):
        deep(torch.randn(1, 3, 32, 32))


def test_gate_values_per_stack_and_level():
    model = SoftGatedHourglass(num_stacks=2, channels=8, depth=2,
                               num_keypoints=3, stem_channels=(8, 8))
    with torch.no_grad():
        for s, hg in enumerate(model.hourglasses):
            for lv, level in enumerate(hg.levels):
                for b in (level.skip, level.down, level.up):
                    b.alpha.fill_(10 * s + lv)
            hg.bottom.alpha.fill_(-1.0 - s)
    wrapped = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    wrapped['head.something.alpha'] = torch.ones(3)
    gates = soft_gate_values(wrapped, prefix='backbone.')
    assert list(gates) == [
        'stack0/level0', 'stack0/level1', 'stack0/bottom', 'stack1/level0',
        'stack1/level1', 'stack1/bottom', 'other'
    ]
    for s in range(2):
        for lv in range(2):
            v = gates[f'stack{s}/level{lv}']
            assert v.shape == (3 * 8, ) and (v == 10 * s + lv).all()
        assert (gates[f'stack{s}/bottom'] == -1.0 - s).all()
    # stem (3 blocks) and one block per stack output, at 8 channels each
    assert gates['other'].shape == (5 * 8, )
    assert list(model.gate_values())[:2] == ['stack0/level0', 'stack0/level1']
    ident = SoftGatedHourglass(num_stacks=1, channels=8, depth=1,
                               gate='identity', stem_channels=(8, 8))
    with pytest.raises(ValueError, match='no soft gates'):
        soft_gate_values(ident)


def test_bad_config_values_fail_clearly():
    with pytest.raises(ValueError, match='unknown fusion'):
        SoftGatedHourglass(fusion='add')
    with pytest.raises(ValueError, match='unknown gate'):
        SoftGatedHourglass(gate='learned')
    with pytest.raises(ValueError, match='num_stacks'):
        SoftGatedHourglass(num_stacks=0)
    with pytest.raises(ValueError, match='num_keypoints'):
        SoftGatedHourglass(num_keypoints=0)


def _n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize('kwargs,paper_params', [
    (dict(channels=144), 8.5e6),
    (dict(channels=92, stem_channels=(64, 64)), 3.4e6),
])
def test_paper_size_settings_within_ten_percent(kwargs, paper_params):
    """The settings docs/benchmarks.md names for the paper's 8.5M and 3.4M
    models (4 stacks, 16 MPII heatmaps); the GFLOPs are in the docs."""
    model = SoftGatedHourglass(num_stacks=4, num_keypoints=16, **kwargs)
    assert abs(_n_params(model) / paper_params - 1) < 0.1


@pytest.mark.parametrize('name,num_kpts,size', [
    ('mpii/td-hm_softgated-hg4-c144_1xb24-200e_mpii-256x256.py', 16,
     (256, 256)),
    ('mpii/td-hm_softgated-hg4-c256_1xb24-200e_mpii-256x256.py', 16,
     (256, 256)),
    ('coco/td-hm_softgated-hg4-c144_8xb32-210e_coco-256x192.py', 17,
     (256, 192)),
    ('lsp/td-hm_softgated-hg4-c144_1xb24-100e_lsp-256x256.py', 14,
     (256, 256)),
])
def test_full_size_configs_build_and_run(name, num_kpts, size):
    cfg = Config.fromfile(osp.join(CFG, name))
    assert cfg.model.backbone.type == 'SoftGatedHourglass'
    h, w = size
    assert tuple(cfg.codec.input_size) == (w, h)
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(cfg.model)
    model.eval()
    # A forward at half the side (cheaper; the bottom maps are 2x2 / 2x1).
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, h // 2, w // 2))
        heatmaps = model.head.forward(feats)
    assert len(heatmaps) == cfg.model.head.num_stages == 4
    assert heatmaps[-1].shape == (1, num_kpts, h // 8, w // 8)

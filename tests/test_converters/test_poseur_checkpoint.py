"""The official-Poseur-checkpoint converter.

The official state dict is written out here from the key list of the
authors' model (``Poseur_noise_sample`` + ``PoseurTransformer`` of
aim-uofa/Poseur, mmcv 1.x transformer layers), with the official shapes of
the ResNet-50 model with 3 decoder layers (width 256, 8 heads, 4 levels, 4
points, 17 keypoints, FFN 1024, RealNVP flows of 6 couplings). The backbone
and neck keys are those of mmpose's ResNet-50 and ChannelMapper, unchanged
between mmpose 0.x and 1.x.
"""
import os.path as osp

import pytest
import torch
from _helpers import REPO_ROOT, run_python

import mmkp_ext  # noqa: F401
from mmkp_ext.converters.poseur_checkpoint import (PoseurCheckpointError,
                                                   check_state_dict,
                                                   convert_poseur_checkpoint,
                                                   convert_poseur_state_dict)

CONFIG = osp.join(REPO_ROOT, 'configs/poseur/coco/'
                  'poseur_res50-dec3_8xb32-325e_coco-256x192.py')
TINY_CONFIG = osp.join(REPO_ROOT, 'configs/poseur/coco/'
                       'poseur_res18-tiny_1xb12-400e_coco-fixture-128x96.py')
#: The official ResNet-50 model with 3 decoder layers.
OFFICIAL_DIMS = dict(num_layers=3, C=256, M=8, L=4, P=4, K=17, FFN=1024)
#: The same layout at the widths of the tiny fixture config.
TINY_DIMS = dict(num_layers=2, C=64, M=4, L=4, P=4, K=17, FFN=256)


def official_head_shapes(num_layers, C, M, L, P, K, FFN):
    """key (without ``keypoint_head.``) -> shape, from the official code:
    width C, M heads, L levels, P points, K keypoints, FFN hidden width."""
    s = {
        'transformer.level_embeds': (L, C),
        'transformer.fc_coord.linear.weight': (2 * K, C),
        'transformer.fc_coord.linear.bias': (2 * K, ),
        'transformer.fc_sigma.linear.weight': (2 * K, C),
        'transformer.fc_sigma.linear.bias': (2 * K, ),
        'transformer.pos_trans.weight': (C, 2 * C),
        'transformer.pos_trans.bias': (C, ),
        'transformer.pos_trans_norm.weight': (C, ),
        'transformer.pos_trans_norm.bias': (C, ),
        'transformer.pos_embed.weight': (K, C),
    }
    for i in range(num_layers):
        p = f'transformer.decoder.layers.{i}.'
        s.update({
            p + 'attentions.0.attn.in_proj_weight': (3 * C, C),
            p + 'attentions.0.attn.in_proj_bias': (3 * C, ),
            p + 'attentions.0.attn.out_proj.weight': (C, C),
            p + 'attentions.0.attn.out_proj.bias': (C, ),
            p + 'attentions.1.sampling_offsets.weight': (M * L * P * 2, C),
            p + 'attentions.1.sampling_offsets.bias': (M * L * P * 2, ),
            p + 'attentions.1.attention_weights.weight': (M * L * P, C),
            p + 'attentions.1.attention_weights.bias': (M * L * P, ),
            p + 'attentions.1.output_proj.weight': (C, C),
            p + 'attentions.1.output_proj.bias': (C, ),
            p + 'attentions.1.value_proj_weight.weight': (M * C, C // M),
            p + 'attentions.1.value_proj_bias.weight': (M, C // M),
            p + 'ffns.0.layers.0.0.weight': (FFN, C),
            p + 'ffns.0.layers.0.0.bias': (FFN, ),
            p + 'ffns.0.layers.1.weight': (C, FFN),
            p + 'ffns.0.layers.1.bias': (C, ),
        })
        for n in range(3):
            s[p + f'norms.{n}.weight'] = (C, )
            s[p + f'norms.{n}.bias'] = (C, )
        for branch in ('fc_coord_branches', 'fc_coord_output_branches'):
            for j, shape in ((0, (C, C)), (2, (C, C)), (4, (2, C))):
                s[f'{branch}.{i}.{j}.weight'] = shape
                s[f'{branch}.{i}.{j}.bias'] = shape[:1]
        for j in (0, 1):
            s[f'fc_sigma_branches.{i}.{j}.weight'] = (C, C)
            s[f'fc_sigma_branches.{i}.{j}.bias'] = (C, )
        s[f'fc_sigma_branches.{i}.2.linear.weight'] = (2, C)
        s[f'fc_sigma_branches.{i}.2.linear.bias'] = (2, )
    for flow in ('enc_flow', 'dec_flow'):
        s[f'{flow}.mask'] = (6, 2)
        for net in ('s', 't'):
            for i in range(6):
                for j, shape in ((0, (64, 2)), (2, (64, 64)), (4, (2, 64))):
                    s[f'{flow}.{net}.{i}.{j}.weight'] = shape
                    s[f'{flow}.{net}.{i}.{j}.bias'] = shape[:1]
    return s


def build_model(config):
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmpose.registry import MODELS
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmpose'):
        return MODELS.build(cfg.model)


def official_state_dict(model, dims, seed=0):
    """An official-layout state dict with random values: the backbone and
    neck keys of ``model`` (same in mmpose 0.x), the head written out from
    :func:`official_head_shapes`."""
    g = torch.Generator().manual_seed(seed)
    state = {
        k: torch.randn(v.shape, generator=g) if v.is_floating_point() else
        v.clone()
        for k, v in model.state_dict().items()
        if k.startswith(('backbone.', 'neck.'))
    }
    for k, shape in official_head_shapes(**dims).items():
        state['keypoint_head.' + k] = torch.randn(shape, generator=g)
    # The flows' coupling masks are data, not weights.
    for flow in ('enc_flow', 'dec_flow'):
        state[f'keypoint_head.{flow}.mask'] = torch.tensor(
            [[0., 1.], [1., 0.]] * 3)
    return state


@pytest.fixture(scope='module')
def model():
    return build_model(CONFIG)


@pytest.fixture(scope='module')
def official(model):
    return official_state_dict(model, OFFICIAL_DIMS)


def test_official_layout_maps_exactly_and_loads_strictly(model, official):
    converted = convert_poseur_state_dict(official)
    assert len(converted) == len(official)  # nothing dropped or merged
    check_state_dict(converted, model.state_dict())
    model.load_state_dict(converted, strict=True)
    sd = model.state_dict()
    o = 'keypoint_head.'
    # Spot checks of the non-obvious renames, values bit-identical.
    pairs = {
        'transformer.fc_sigma.linear.weight': 'coarse_sigma.weight',
        'transformer.pos_embed.weight': 'class_embed.weight',
        'transformer.pos_trans_norm.bias': 'query_norm.bias',
        'transformer.decoder.layers.2.norms.1.weight': 'layers.2.norm2.weight',
        'transformer.decoder.layers.1.ffns.0.layers.1.bias':
        'layers.1.ffn_out.bias',
        'transformer.decoder.layers.0.attentions.0.attn.in_proj_weight':
        'layers.0.self_attn.in_proj_weight',
        'transformer.decoder.layers.0.attentions.1.value_proj_weight.weight':
        'layers.0.cross_attn.value_proj_weight',
        'transformer.decoder.layers.2.attentions.1.value_proj_bias.weight':
        'layers.2.cross_attn.value_proj_bias',
        'fc_sigma_branches.1.2.linear.weight': 'sigma_branches.1.2.weight',
        'fc_coord_output_branches.2.4.bias': 'coord_output_branches.2.4.bias',
        'enc_flow.s.3.2.weight': 'loss_coarse.flow.s.3.2.weight',
        'dec_flow.t.5.4.bias': 'loss_decoder.flow.t.5.4.bias',
        'dec_flow.mask': 'loss_decoder.flow.mask',
    }
    for theirs, ours in pairs.items():
        assert torch.equal(sd['head.' + ours], official[o + theirs]), ours
    assert torch.equal(sd['neck.convs.3.gn.weight'],
                       official['neck.convs.3.gn.weight'])
    # A distributed-training prefix is accepted.
    wrapped = {'module.' + k: v for k, v in official.items()}
    assert list(convert_poseur_state_dict(wrapped)) == list(converted)


def test_extra_key_refused_with_its_name(official):
    bad = dict(official)
    bad['keypoint_head.deconv_layer.0.weight'] = torch.zeros(1)
    bad['keypoint_head.transformer.reference_points.weight'] = torch.zeros(1)
    with pytest.raises(PoseurCheckpointError,
                       match=r'2 key\(s\).*deconv_layer\.0\.weight.*'
                       r'reference_points\.weight'):
        convert_poseur_state_dict(bad)


def test_missing_key_and_wrong_shape_refused_with_names(model, official):
    bad = dict(official)
    del bad['keypoint_head.transformer.decoder.layers.1.norms.2.bias']
    with pytest.raises(PoseurCheckpointError,
                       match=r'missing in the checkpoint: '
                       r'head\.layers\.1\.norm3\.bias'):
        check_state_dict(convert_poseur_state_dict(bad), model.state_dict())
    bad = dict(official)
    key = 'keypoint_head.transformer.decoder.layers.0.attentions.1.' \
        'value_proj_bias.weight'
    bad[key] = torch.zeros(8, 16)
    with pytest.raises(PoseurCheckpointError,
                       match=r'head\.layers\.0\.cross_attn\.value_proj_bias: '
                       r'checkpoint \(8, 16\) vs model \(8, 32\)'):
        check_state_dict(convert_poseur_state_dict(bad), model.state_dict())
    # A model with more decoder layers than the checkpoint: named missing.
    more = dict(convert_poseur_state_dict(official))
    del more['head.layers.2.ffn_in.weight']
    with pytest.raises(PoseurCheckpointError, match='ffn_in.weight'):
        check_state_dict(more, model.state_dict())


def test_cli_converts_and_checks(tmp_path):
    tiny = build_model(TINY_CONFIG)
    src = tmp_path / 'official.pth'
    torch.save(dict(state_dict=official_state_dict(tiny, TINY_DIMS),
                    meta=dict(epoch=325)), src)
    dst = tmp_path / 'ours.pth'
    proc = run_python(['tools/model_converters/convert_poseur_checkpoint.py',
                       str(src), str(dst), '--config', TINY_CONFIG],
                      check=False)
    assert proc.returncode == 0, proc.stdout[-3000:]
    # What load_from / test.py do, but strict.
    from mmengine.runner.checkpoint import load_checkpoint
    load_checkpoint(tiny, str(dst), map_location='cpu', strict=True)
    # The wrong config is refused with the key and shapes named, and
    # nothing is written.
    with pytest.raises(PoseurCheckpointError,
                       match=r'head\.level_embeds: checkpoint \(4, 64\) vs '
                       r'model \(4, 256\)'):
        convert_poseur_checkpoint(str(src), str(tmp_path / 'x.pth'), CONFIG)
    assert not (tmp_path / 'x.pth').exists()

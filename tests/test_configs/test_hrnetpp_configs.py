"""The HRNet++ COCO / AI Challenger configs: they parse, their models build,
and they carry the report's recipe.

Every config is parsed; the ablation and AI-Challenger-initialised configs
are compared field by field with the config they derive from, and one
config per distinct network is built on the ``meta`` device (shapes only,
no memory, no weight download: ``init_weights`` is never called) and run
forward there at its full input size, which checks every shape from the
input to the head (the numerics are covered by the backbone and neck
tests). The ensemble/TTA configs (``*ensemble*``) are tested with the
ensemble estimator.
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from _helpers import REPO_ROOT

import mmkp_ext  # noqa: F401  (registration)
from mmpose.registry import MODELS

CFG_DIR = osp.join(REPO_ROOT, 'configs', 'hrnetpp')
CONFIGS = sorted(
    p for p in glob.glob(osp.join(CFG_DIR, 'coco', '*.py')) +
    glob.glob(osp.join(CFG_DIR, 'aic', '*.py')) if 'ensemble' not in p)
NAMES = [osp.basename(p) for p in CONFIGS]


def _cfg(name):
    sub = 'aic' if name.endswith('_aic-384x288.py') else 'coco'
    return Config.fromfile(osp.join(CFG_DIR, sub, name))


def _meta_model(cfg):
    init_default_scope('mmpose')
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    model.eval()
    return model


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_the_expected_configs_exist():
    assert set(NAMES) >= {
        'td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py',
        'td-sa_hrnetpp-w48_8xb32-20e_coco-384x288.py',
        'td-hm_hrnetpp-w32_8xb64-150e_coco-256x192.py',
        'td-sa_hrnetpp-w32_8xb64-20e_coco-256x192.py',
        'td-hm_hrnetpp-w32_all-off-8xb64-150e_coco-256x192.py',
        'td-hm_hrnetpp-w32_se-only-8xb64-150e_coco-256x192.py',
        'td-hm_hrnetpp-w32_avgpool-only-8xb64-150e_coco-256x192.py',
        'td-hm_hrnetpp-w32_xskip-only-8xb64-150e_coco-256x192.py',
        'td-hm_hrnetpp-w32_subpixel-only-8xb64-150e_coco-256x192.py',
        'td-hm_hrnetpp-w48_8xb32-150e_aic-384x288.py',
        'td-hm_hrnetpp-w48_aic-pre-8xb32-150e_coco-384x288.py',
    }


@pytest.mark.parametrize('name', NAMES)
def test_config_parses(name):
    cfg = _cfg(name)
    assert cfg.custom_imports['imports'] == ['mmkp_ext']
    assert cfg.model.backbone.type == 'HRNetPlus'
    # The dataset pipelines encode with the head's codec.
    train_codec = cfg.train_dataloader.dataset.pipeline[-2]['encoder']
    assert train_codec == cfg.model.head.decoder


@pytest.mark.parametrize('name', [
    'td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py',
    'td-sa_hrnetpp-w48_8xb32-20e_coco-384x288.py',
    'td-hm_hrnetpp-w32_subpixel-only-8xb64-150e_coco-256x192.py',
])
def test_config_builds_and_runs_at_its_input_size(name):
    cfg = _cfg(name)
    model = _meta_model(cfg)
    codec = cfg.model.head.decoder
    w, h = codec['input_size']
    with torch.no_grad():
        out = model(torch.empty(1, 3, h, w, device='meta'), None,
                    mode='tensor')
    if cfg.model.head.type == 'SoftArgmaxHead':
        assert out.shape == (1, cfg.model.head.num_joints, 2)
    else:
        hw, hh = codec['heatmap_size']
        assert out.shape == (1, 17, hh, hw)


@pytest.mark.parametrize('name, width', [
    ('td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py', 48),
    ('td-hm_hrnetpp-w32_8xb64-150e_coco-256x192.py', 32),
])
def test_heatmap_recipe(name, width):
    cfg = _cfg(name)
    bb = cfg.model.backbone
    assert (bb.se_ratio, bb.avg_pool_downsample, bb.cross_module_skips) == (
        8, True, True)
    assert bb.extra.stage4.num_channels == (width, 2 * width, 4 * width,
                                            8 * width)
    assert bb.extra.stage4.multiscale_output is True
    assert cfg.model.neck.type == 'SubPixelFusion'
    assert cfg.model.head.in_channels == 2 * width
    # Report: Adam 1e-3, cosine to 5e-5, 150 epochs; only stage 1 from
    # ImageNet.
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr) == ('Adam', 1e-3)
    assert cfg.train_cfg.max_epochs == 150
    cos = cfg.param_scheduler[-1]
    assert (cos.type, cos.T_max, cos.eta_min, cos.end) == (
        'CosineAnnealingLR', 150, 5e-5, 150)
    assert bb.init_cfg[-1]['type'] == 'HRNetStage1Pretrained'
    assert f'hrnet_w{width}' in bb.init_cfg[-1]['checkpoint']


@pytest.mark.parametrize('hm, sa', [
    ('td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py',
     'td-sa_hrnetpp-w48_8xb32-20e_coco-384x288.py'),
    ('td-hm_hrnetpp-w32_8xb64-150e_coco-256x192.py',
     'td-sa_hrnetpp-w32_8xb64-20e_coco-256x192.py'),
])
def test_softargmax_finetune_recipe_and_checkpoint_compatibility(hm, sa):
    cfg_hm, cfg_sa = _cfg(hm), _cfg(sa)
    opt = cfg_sa.optim_wrapper.optimizer
    assert (opt.type, opt.lr) == ('Adam', 2e-5)
    assert cfg_sa.train_cfg.max_epochs == 20
    (cos, ) = cfg_sa.param_scheduler
    assert (cos.type, cos.T_max, cos.eta_min) == ('CosineAnnealingLR', 20,
                                                  2e-7)
    assert cfg_sa.model.head.alpha == 60.0
    assert cfg_sa.model.head.loss.type == 'L1Loss'
    assert osp.basename(osp.dirname(cfg_sa.load_from)) == hm[:-3]
    # Same network up to the head, whose layers share names and shapes: the
    # heatmap model's checkpoint fills the regression model exactly.
    d_hm, d_sa = cfg_hm.to_dict()['model'], cfg_sa.to_dict()['model']
    d_sa['backbone']['init_cfg'] = d_hm['backbone']['init_cfg']
    assert {k: v for k, v in d_sa.items() if k not in ('head', 'test_cfg')
            } == {k: v for k, v in d_hm.items()
                  if k not in ('head', 'test_cfg')}
    init_default_scope('mmpose')
    heads = [MODELS.build(c.model.head) for c in (cfg_hm, cfg_sa)]
    assert _shapes(heads[0]) == _shapes(heads[1])


def test_ablations_differ_from_the_baseline_by_one_change():
    base = _cfg('td-hm_hrnetpp-w32_all-off-8xb64-150e_coco-256x192.py')
    bb = base.model.backbone
    assert (bb.se_ratio, bb.avg_pool_downsample, bb.cross_module_skips,
            base.model.neck) == (None, False, False, None)
    assert base.model.head.in_channels == 32
    changes = {
        'se-only': dict(se_ratio=8),
        'avgpool-only': dict(avg_pool_downsample=True),
        'xskip-only': dict(cross_module_skips=True),
    }
    for tag, change in changes.items():
        cfg = _cfg(f'td-hm_hrnetpp-w32_{tag}-8xb64-150e_coco-256x192.py')
        expected = base.to_dict()
        expected['model']['backbone'].update(change)
        assert cfg.to_dict() == expected, tag
    cfg = _cfg('td-hm_hrnetpp-w32_subpixel-only-8xb64-150e_coco-256x192.py')
    expected = base.to_dict()
    expected['model']['backbone']['extra']['stage4']['multiscale_output'] = \
        True
    expected['model']['neck'] = dict(
        type='SubPixelFusion', in_channels=(32, 64, 128, 256))
    expected['model']['head']['in_channels'] = 64
    assert cfg.to_dict() == expected


def test_aic_pretraining_and_coco_initialisation_from_it():
    aic = _cfg('td-hm_hrnetpp-w48_8xb32-150e_aic-384x288.py')
    assert aic.train_dataloader.dataset.type == 'CheckedAicDataset'
    assert aic.val_dataloader.dataset.bbox_file is None  # GT boxes
    assert aic.val_evaluator.use_area is False
    # The COCO HRNet++-W48 model with a 14-keypoint head (so it is built
    # and run by the COCO config's test).
    plain = _cfg('td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py').to_dict()
    plain['model']['head']['out_channels'] = 14
    assert aic.to_dict()['model'] == plain['model']
    coco = _cfg('td-hm_hrnetpp-w48_aic-pre-8xb32-150e_coco-384x288.py')
    assert coco.model.backbone.init_cfg == dict(
        type='Pretrained', checkpoint=coco.aic_checkpoint,
        prefix='backbone.')
    assert coco.model.neck.init_cfg['prefix'] == 'neck.'
    assert 'td-hm_hrnetpp-w48_8xb32-150e_aic-384x288' in coco.aic_checkpoint
    # Backbone and neck of the two models are the same network; the rest
    # of this COCO config is the plain HRNet++-W48 one.
    plain = _cfg('td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py').to_dict()
    d_aic, d_coco = aic.to_dict(), coco.to_dict()
    for part in ('backbone', 'neck'):
        d_aic['model'][part].pop('init_cfg', None)
        d_coco['model'][part].pop('init_cfg')
        assert d_coco['model'][part] == d_aic['model'][part]
        plain['model'][part].pop('init_cfg', None)
    d_coco.pop('aic_checkpoint')
    assert d_coco == plain

"""Every grouped-CenterNet config builds (without downloading weights), its
head and its training codec agree on the layout and grouping, and the
output channel count is the spec's C + 2 + 2 + 2 G_r + G_h + 2."""
import glob
import os.path as osp
import warnings

import pytest
import torch
from _helpers import REPO_ROOT
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmkp_ext  # noqa: F401
from mmpose.registry import KEYPOINT_CODECS, MODELS

CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs/centernet_grouping/*/*.py')))


def _no_pretrained(cfg):
    for part in ('backbone', 'neck', 'head'):
        if part in cfg.model and 'init_cfg' in cfg.model[part]:
            cfg.model[part].init_cfg = None


def test_configs_found():
    names = [osp.basename(c) for c in CONFIGS]
    assert any('coco' in n for n in names)
    assert any('deepfashion2' in n for n in names)
    assert any('toy-fashion' in n for n in names)
    assert any('hrnet' in n for n in names)


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_and_agrees(path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # grouping files are repo-relative
    cfg = Config.fromfile(path)
    assert cfg.custom_imports == dict(imports=['mmkp_ext'],
                                      allow_failed_imports=False)
    _no_pretrained(cfg)
    with DefaultScope.overwrite_default_scope('mmpose'), \
            warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = MODELS.build(cfg.model)
        gen = [t for t in cfg.train_dataloader.dataset.pipeline
               if t['type'] == 'GenerateTarget']
        assert len(gen) == 1
        codec = KEYPOINT_CODECS.build(gen[0]['encoder'])
    head = model.head
    assert type(head).__name__ == 'CenterNetPoseHead'
    assert list(codec.reg_group) == list(head.reg_group)
    assert list(codec.hm_group) == list(head.hm_group)
    assert codec.category_ranges == head.category_ranges
    g_r, g_h = max(head.reg_group) + 1, max(head.hm_group) + 1
    c = len(head.category_ranges)
    assert head.num_output_channels == c + 2 + 2 + 2 * g_r + g_h + 2
    # The neck's map has the head's channels at stride 4.
    size = 64
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.zeros(1, 3, size, size))
        out = head.forward(feats)
    assert out['keypoint_reg'].shape == (1, 2 * g_r, size // 4, size // 4)
    assert out['keypoint_heatmap'].shape[1] == g_h
    w, h = codec.input_size
    assert codec.heatmap_size == (w // 4, h // 4)


def test_grouping_override_keys(monkeypatch):
    """The --cfg-options keys the base configs document for changing the
    grouping reach the head, the decoder and the training encoder, while
    the top-level `grouping_file` alone reaches none of them."""
    monkeypatch.chdir(REPO_ROOT)
    base = osp.join(REPO_ROOT, 'configs/centernet_grouping/toy_fashion/'
                    'cn-pose_dla34-tiny_1xb16-80e_toy-fashion-128x128.py')
    grouping = ('configs/centernet_grouping/groupings/'
                'toy-fashion_index-in-category-14.json')

    def places(cfg):
        gen = cfg.train_dataloader.dataset.pipeline[4]
        assert gen['type'] == 'GenerateTarget'
        return (cfg.model.head.get('grouping_file'),
                cfg.model.head.decoder.get('grouping_file'),
                gen['encoder'].get('grouping_file'))

    cfg = Config.fromfile(base)
    cfg.merge_from_dict({'grouping_file': grouping})
    assert places(cfg) == (None, None, None)

    cfg = Config.fromfile(base)
    cfg.merge_from_dict({
        'model.head.grouping_file': grouping,
        'model.head.decoder.grouping_file': grouping,
        'train_dataloader.dataset.pipeline.4.encoder.grouping_file':
        grouping,
    })
    assert places(cfg) == (grouping, grouping, grouping)
    # The result is the variant config that ships this grouping.
    variant = Config.fromfile(base.replace('cn-pose_', 'cn-pose-g14_'))
    for key in ('model', 'train_dataloader'):
        got, want = cfg[key].to_dict(), variant[key].to_dict()
        if key == 'model':
            for d in (got['head']['decoder'], want['head']['decoder']):
                d.pop('rescore_sigma')  # tuned per model
        else:
            for d in (got, want):
                d['dataset']['pipeline'][4]['encoder'].pop('rescore_sigma')
        for d in (got, want):
            for obj in ([d['head']['decoder']] if key == 'model' else
                        [d['dataset']['pipeline'][4]['encoder']]):
                obj.pop('allow_inconsistent', None)
        assert got == want, key

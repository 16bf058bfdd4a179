"""Every config under configs/ parses, its model builds (on the meta
device: no memory, no weights, no download), and every registered type it
names (dataset, transforms, codecs, evaluator, hooks, schedulers,
optimiser, model wrapper) resolves in mmpose's registries. The shared
pieces under configs/_base_/ parse on their own, and the dataset bases do
not shadow mmpose's metainfo files."""
import glob
import os
import os.path as osp
import warnings

import pytest
import torch
from _helpers import REPO_ROOT
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmkp_ext  # noqa: F401
from mmpose.registry import (DATASETS, HOOKS, KEYPOINT_CODECS, METRICS,
                             MODEL_WRAPPERS, MODELS, OPTIM_WRAPPERS,
                             OPTIMIZERS, PARAM_SCHEDULERS, TRANSFORMS)

CONFIG_DIR = osp.join(REPO_ROOT, 'configs')
ALL = sorted(glob.glob(osp.join(CONFIG_DIR, '**', '*.py'), recursive=True))
BASES = [p for p in ALL if f'{os.sep}_base_{os.sep}' in p]
METHOD_CONFIGS = [p for p in ALL if p not in BASES]


def _rel(path):
    return osp.relpath(path, CONFIG_DIR)


def _types(node, key='type'):
    """Every value of ``key`` in a nested dict / list config node."""
    if isinstance(node, dict):
        if isinstance(node.get(key), str):
            yield node[key]
        for v in node.values():
            yield from _types(v, key)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _types(v, key)


def _dataset_cfgs(dataset):
    """The dataset config and, for ConcatDataset, its members."""
    yield dataset
    for member in dataset.get('datasets', []):
        yield from _dataset_cfgs(member)


def _resolve(registry, name, what, path):
    assert registry.get(name) is not None, (
        f'{_rel(path)}: {what} type {name!r} is not registered in '
        f'{registry.name!r} (scope mmpose)')


def test_configs_found():
    # Every method directory contributes configs; the bases exist.
    methods = {_rel(p).split(os.sep)[0] for p in METHOD_CONFIGS}
    assert methods == {'centernet_grouping', 'hrnetpp', 'poseur',
                       'soft_argmax', 'soft_gated', 'swahr'}
    assert len(METHOD_CONFIGS) >= 60
    names = {_rel(p) for p in BASES}
    assert {'_base_/default_runtime.py', '_base_/cpu_runtime.py',
            '_base_/datasets/toy_persons_topdown.py',
            '_base_/datasets/coco_bottomup.py'} <= names


@pytest.mark.parametrize('path', BASES, ids=_rel)
def test_base_parses(path):
    cfg = Config.fromfile(path)
    assert len(cfg.keys()) > 0


def test_dataset_bases_do_not_shadow_mmpose_metainfo():
    # mmpose looks up metainfo=dict(from_file='configs/_base_/datasets/X.py')
    # relative to the working directory first: a base of ours with one of
    # those names would replace mmpose's keypoint metainfo.
    import mmpose
    mim = osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs', '_base_',
                   'datasets')
    theirs = {osp.basename(p) for p in glob.glob(osp.join(mim, '*.py'))}
    assert 'coco.py' in theirs
    ours = {osp.basename(p) for p in
            glob.glob(osp.join(CONFIG_DIR, '_base_', 'datasets', '*.py'))}
    assert ours and not (ours & theirs), sorted(ours & theirs)


@pytest.mark.parametrize('path', METHOD_CONFIGS, ids=_rel)
def test_config_parses_and_builds(path, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # grouping / member paths are repo-relative
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmpose'
    assert cfg.custom_imports == dict(imports=['mmkp_ext'],
                                      allow_failed_imports=False)
    with DefaultScope.overwrite_default_scope('mmpose'):
        # Data: dataset, transform and codec types resolve.
        for split in ('train', 'val', 'test'):
            loader = cfg.get(f'{split}_dataloader')
            assert loader is not None, f'{_rel(path)}: no {split}_dataloader'
            for ds in _dataset_cfgs(loader.dataset):
                _resolve(DATASETS, ds.type, 'dataset', path)
                if ds.type == 'ConcatDataset':
                    continue
                assert ds.get('pipeline'), f'{_rel(path)}: empty pipeline'
                for t in ds.pipeline:
                    _resolve(TRANSFORMS, t.type, 'transform', path)
                    if 'encoder' in t:
                        _resolve(KEYPOINT_CODECS, t.encoder.type, 'codec',
                                 path)
        for split in ('val', 'test'):
            for name in _types(cfg.get(f'{split}_evaluator')):
                _resolve(METRICS, name, 'metric', path)
        # Runtime: hooks, schedulers, optimiser, wrapper.
        for hook in cfg.default_hooks.values():
            _resolve(HOOKS, hook.type, 'hook', path)
        for hook in cfg.get('custom_hooks', []):
            _resolve(HOOKS, hook.type, 'hook', path)
        for sched in cfg.get('param_scheduler', []) or []:
            _resolve(PARAM_SCHEDULERS, sched.type, 'scheduler', path)
        optim = cfg.optim_wrapper
        _resolve(OPTIM_WRAPPERS, optim.get('type', 'OptimWrapper'),
                 'optimiser wrapper', path)
        _resolve(OPTIMIZERS, optim.optimizer.type, 'optimiser', path)
        if cfg.get('model_wrapper_cfg'):
            _resolve(MODEL_WRAPPERS, cfg.model_wrapper_cfg.type,
                     'model wrapper', path)
        # Model: builds on the meta device (no weights are loaded: build
        # does not call init_weights).
        with warnings.catch_warnings(), torch.device('meta'):
            warnings.simplefilter('ignore')
            model = MODELS.build(cfg.model)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params > 0
    assert all(p.device.type == 'meta' for p in model.parameters())


def test_model_index_lists_every_config_once():
    """model-index.yml imports one metafile per method directory; together
    they list every method config exactly once, under its own file name,
    and name only configs that exist."""
    import yaml
    with open(osp.join(REPO_ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    listed = []
    for meta in index['Import']:
        with open(osp.join(REPO_ROOT, meta)) as f:
            models = yaml.safe_load(f)['Models']
        for m in models:
            assert osp.isfile(osp.join(REPO_ROOT, m['Config'])), m['Config']
            assert m['Name'] == osp.splitext(osp.basename(m['Config']))[0]
            assert osp.dirname(m['Config']).startswith(osp.dirname(meta))
            for result in m.get('Results', []):
                assert result['Metrics'], m['Name']
            listed.append(osp.normpath(osp.join(REPO_ROOT, m['Config'])))
    assert sorted(listed) == sorted(METHOD_CONFIGS)

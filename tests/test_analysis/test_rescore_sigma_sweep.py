"""Tests of the rescore_sigma sweep (``mmkp_ext.evaluation.
rescore_sigma_sweep`` and ``tools/analysis_tools/sweep_rescore_sigma.py``).

The toy fashion config's model (random init) runs on a generated toy
dataset of 6 val images. A random model scores AP 0 everywhere, which
would make "the sweep's metrics equal the normal predict path's" hold
trivially; so most tests give the head an oracle: its real forward runs
(and is counted), then its outputs are replaced by ideal outputs built
from the image's GT with the codec (``targets_to_outputs``), perturbed
(coarse-regression noise, ghost keypoint peaks) so that the decoding
settings give different, non-zero APs. The reference is an independent
run of the normal path: ``model.test_step`` with ``model.test_cfg`` set to
the setting, then the same metric.
"""
import copy
import json
import math
import os.path as osp

import numpy as np
import pytest
import torch
from _helpers import REPO_ROOT, load_tool, run_python
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.runner.checkpoint import save_checkpoint, weights_to_cpu

import mmkp_ext  # noqa: F401
from mmkp_ext.datasets import make_toy_dataset
from mmkp_ext.analysis import (best_rescore_setting, format_sweep_table,
                                 sweep_rescore_sigma, sweep_settings)
from mmkp_ext.analysis.rescore_sigma_sweep import build_sweep_inputs
from mmpose.registry import METRICS, MODELS

CONFIG = osp.join(
    REPO_ROOT, 'configs/centernet_grouping/toy_fashion/'
    'cn-pose_dla34-tiny_1xb16-80e_toy-fashion-128x128.py')
SIGMAS = (1.0, 4.0)
BATCH = 4
NUM_VAL = 6


def _logit(p):
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p)).astype(np.float32)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_fashion')
    summary = make_toy_dataset('fashion',
                               str(root),
                               num_images=8,
                               seed=1,
                               val_fraction=0.75)
    assert summary['num_val_images'] == NUM_VAL
    return str(root) + '/'


def _config(data_root):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({
        'val_dataloader.dataset.data_root':
        data_root,
        'val_dataloader.num_workers':
        0,
        'val_dataloader.persistent_workers':
        False,
        'val_dataloader.batch_size':
        BATCH,
        'val_evaluator.ann_file':
        data_root + 'annotations/val.json',
    })
    return cfg


@pytest.fixture(scope='module')
def cfg(data_root):
    return _config(data_root)


@pytest.fixture(scope='module')
def dataloader(cfg):
    init_default_scope('mmpose')
    return Runner.build_dataloader(copy.deepcopy(cfg.val_dataloader))


class Oracle:
    """Installs the oracle on a model and counts forward passes."""

    def __init__(self, model):
        self.model = model
        self.codec = model.head.decoder
        self.calls = dict(backbone=0, head=0)
        self.samples = None
        model.backbone.register_forward_hook(self._count_backbone)
        model.data_preprocessor.register_forward_hook(self._stash)
        real_forward = model.head.forward

        def forward(feats):
            self.calls['head'] += 1
            real = real_forward(feats)
            fake = self.batch_outputs(self.samples)
            for key, value in real.items():
                assert fake[key].shape == value.shape, key
            return fake

        model.head.forward = forward

    def _count_backbone(self, module, args, output):
        self.calls['backbone'] += 1

    def _stash(self, module, args, output):
        self.samples = output['data_samples']

    def reset(self):
        self.calls.update(backbone=0, head=0)

    def image_outputs(self, meta):
        """Perturbed ideal outputs of one image from its raw annotations
        (image pixels -> model input pixels, as BottomupResize maps)."""
        anns = meta['raw_ann_info']
        anns = anns if isinstance(anns, list) else [anns]
        size = np.asarray(meta['input_size'], np.float64)
        center = np.asarray(meta['input_center'], np.float64)
        scale = np.asarray(meta['input_scale'], np.float64)

        def to_input(xy):
            return (xy - center + scale / 2) * size / scale

        kpts = np.array([a['keypoints'] for a in anns],
                        np.float64).reshape(len(anns), -1, 3)
        boxes = np.array([a['bbox'] for a in anns], np.float64)
        boxes[:, 2:] += boxes[:, :2]
        enc = self.codec.encode(
            to_input(kpts[..., :2]), kpts[..., 2],
            to_input(boxes.reshape(-1, 2, 2)).reshape(-1, 4),
            np.array([a['category_id'] for a in anns]))
        out = self.codec.targets_to_outputs(enc)
        rng = np.random.default_rng(int(meta['img_id']))
        # coarse points off by ~2 output px; a ghost of every keypoint peak
        # 3 px away at 0.7 of its height: sigma and mode matter
        out['keypoint_reg'] = out['keypoint_reg'] + rng.normal(
            0, 2.0, out['keypoint_reg'].shape).astype(np.float32)
        prob = _sigmoid(out['keypoint_heatmap'].astype(np.float64))
        ghost = 0.7 * np.roll(prob, (2, -3), axis=(1, 2))
        out['keypoint_heatmap'] = _logit(np.maximum(prob, ghost))
        return out

    def batch_outputs(self, samples):
        per_image = [self.image_outputs(s.metainfo) for s in samples]
        return {
            k: torch.as_tensor(np.stack([o[k] for o in per_image]))
            for k in per_image[0]
        }


@pytest.fixture(scope='module')
def oracle(cfg):
    init_default_scope('mmpose')
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.eval()
    return Oracle(model)


def reference_metrics(model, dataloader, evaluator_cfg, setting):
    """The normal test path with ``setting`` in ``model.test_cfg``."""
    saved = model.test_cfg
    model.test_cfg = dict(saved, decode_mode=setting['decode_mode'])
    if setting['rescore_sigma'] is not None:
        model.test_cfg['rescore_sigma'] = setting['rescore_sigma']
    try:
        evaluator = Evaluator([METRICS.build(copy.deepcopy(evaluator_cfg))])
        evaluator.dataset_meta = dataloader.dataset.metainfo
        with torch.no_grad():
            for data in dataloader:
                evaluator.process(model.test_step(data), data)
        return evaluator.evaluate(len(dataloader.dataset))
    finally:
        model.test_cfg = saved


def _check_against_reference(results, model, dataloader, evaluator_cfg):
    assert [r['name'] for r in results] == ['sigma=1', 'sigma=4', 'nearest']
    for r in results:
        ref = reference_metrics(model, dataloader, evaluator_cfg, r)
        assert list(r['metrics']) == list(ref)
        assert r['metrics'] == pytest.approx(ref, abs=1e-12), r['name']
    aps = [r['metrics']['toy_fashion/AP'] for r in results]
    # the comparison is not vacuous: real scores that the settings change
    assert max(aps) > 0.2
    assert len(set(aps)) >= 2, aps


@pytest.mark.parametrize('flip_test', [False, True])
def test_one_forward_per_batch_and_metrics_equal_predict_path(
        oracle, dataloader, cfg, flip_test):
    model = oracle.model
    saved = model.test_cfg
    model.test_cfg = dict(saved, flip_test=flip_test)
    try:
        oracle.reset()
        results = sweep_rescore_sigma(model, dataloader, cfg.val_evaluator,
                                      SIGMAS)
        # 6 images in batches of 4: two batches; a flip test sees the
        # mirrored batch too
        passes = 2 * (2 if flip_test else 1)
        assert oracle.calls == dict(backbone=passes, head=passes)
        assert all(r['num_images'] == NUM_VAL for r in results)
        assert [r['rescore_sigma'] for r in results] == [1.0, 4.0, None]
        assert [r['decode_mode']
                for r in results] == ['rescore', 'rescore', 'nearest']
        _check_against_reference(results, model, dataloader, cfg.val_evaluator)
    finally:
        model.test_cfg = saved
    assert not model.training


def test_subset_equals_a_run_on_those_images_only(oracle, cfg, data_root,
                                                  tmp_path, dataloader):
    model = oracle.model
    oracle.reset()
    results = sweep_rescore_sigma(model,
                                  dataloader,
                                  cfg.val_evaluator,
                                  SIGMAS,
                                  subset=3)
    assert oracle.calls == dict(backbone=1, head=1)  # one batch
    assert all(r['num_images'] == 3 for r in results)

    # reference: a dataset of the first 3 images and a GT file written here
    # with only those images
    sub_cfg = copy.deepcopy(cfg.val_dataloader)
    sub_cfg.dataset.indices = 3
    sub_loader = Runner.build_dataloader(sub_cfg)
    ids = {sub_loader.dataset.get_data_info(i)['img_id'] for i in range(3)}
    with open(data_root + 'annotations/val.json') as f:
        coco = json.load(f)
    coco['images'] = [im for im in coco['images'] if im['id'] in ids]
    coco['annotations'] = [
        a for a in coco['annotations'] if a['image_id'] in ids
    ]
    ann = tmp_path / 'val3.json'
    ann.write_text(json.dumps(coco))
    evaluator_cfg = dict(cfg.val_evaluator, ann_file=str(ann))
    for r in results:
        ref = reference_metrics(model, sub_loader, evaluator_cfg, r)
        assert r['metrics'] == pytest.approx(ref, abs=1e-12), r['name']
    full = sweep_rescore_sigma(model,
                               dataloader,
                               cfg.val_evaluator,
                               SIGMAS[:1],
                               include_nearest=False)
    # a subset larger than the set is the whole set
    assert sweep_rescore_sigma(model,
                               dataloader,
                               cfg.val_evaluator,
                               SIGMAS[:1],
                               include_nearest=False,
                               subset=100)[0]['metrics'] == full[0]['metrics']


def test_settings_table_and_best():
    assert sweep_settings([2, 0.5], include_nearest=False) == [
        dict(name='sigma=2', decode_mode='rescore', rescore_sigma=2.0),
        dict(name='sigma=0.5', decode_mode='rescore', rescore_sigma=0.5),
    ]
    results = [
        dict(name='sigma=1',
             decode_mode='rescore',
             rescore_sigma=1.0,
             metrics={
                 'p/AP': 0.5,
                 'p/AP .5': 0.9,
                 'p/AP .75': 0.4,
                 'p/AR': 0.6,
                 'p/AP_skirt': 0.25
             }),
        dict(name='sigma=2',
             decode_mode='rescore',
             rescore_sigma=2.0,
             metrics={
                 'p/AP': 0.7,
                 'p/AP .5': 0.95,
                 'p/AP .75': 0.5,
                 'p/AR': 0.75,
                 'p/AP_skirt': 0.5,
                 'p/AP_top': 1.0
             }),
        dict(name='sigma=3',
             decode_mode='rescore',
             rescore_sigma=3.0,
             metrics={
                 'p/AP': math.nan,
                 'p/AP .5': 0.0,
                 'p/AP .75': 0.0,
                 'p/AR': 0.0
             }),
        dict(name='nearest',
             decode_mode='nearest',
             rescore_sigma=None,
             metrics={
                 'p/AP': 0.9,
                 'p/AP .5': 1.0,
                 'p/AP .75': 0.8,
                 'p/AR': 0.9
             }),
    ]
    # nearest is better but is not a sigma; NaN ranks last
    assert best_rescore_setting(results)['name'] == 'sigma=2'
    assert best_rescore_setting(results, 'AP .75')['name'] == 'sigma=2'
    assert format_sweep_table(results).splitlines() == [
        '| setting | AP | AP50 | AP75 | AR | AP skirt | AP top |',
        '|---|---:|---:|---:|---:|---:|---:|',
        '| sigma=1 | 0.5000 | 0.9000 | 0.4000 | 0.6000 | 0.2500 | - |',
        '| sigma=2 | 0.7000 | 0.9500 | 0.5000 | 0.7500 | 0.5000 | 1.0000 |',
        '| sigma=3 | nan | 0.0000 | 0.0000 | 0.0000 | - | - |',
        '| nearest | 0.9000 | 1.0000 | 0.8000 | 0.9000 | - | - |',
    ]
    with pytest.raises(ValueError, match='no rescore setting'):
        best_rescore_setting(results[3:])
    with pytest.raises(ValueError, match="metric 'AP_top' missing"):
        best_rescore_setting(results, 'AP_top')


@pytest.mark.parametrize('sigmas, error, match', [
    ([], ValueError, 'sigmas is empty'),
    ([1.0, 0.0], ValueError, r'finite and > 0.*got 0\.0'),
    ([-2], ValueError, r'finite and > 0.*got -2\.0'),
    ([math.nan], ValueError, 'finite and > 0'),
    ([math.inf], ValueError, 'finite and > 0'),
    ([2, 2.0], ValueError, 'rescore_sigma 2 is listed twice'),
    ([True], TypeError, 'must be a number'),
    (['2'], TypeError, 'must be a number'),
    ('12', TypeError, 'sequence of numbers'),
    (3.0, TypeError, 'sequence of numbers'),
])
def test_bad_sigmas(oracle, dataloader, cfg, sigmas, error, match):
    oracle.reset()
    with pytest.raises(error, match=match):
        sweep_rescore_sigma(oracle.model, dataloader, cfg.val_evaluator,
                            sigmas)
    assert oracle.calls['backbone'] == 0  # refused before any work


def test_bad_model_and_subset(oracle, dataloader, cfg):
    for subset in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match='subset must be an int >= 1'):
            sweep_rescore_sigma(oracle.model,
                                dataloader,
                                cfg.val_evaluator,
                                SIGMAS,
                                subset=subset)
    other = copy.deepcopy(cfg)
    other.model.head = dict(type='HeatmapHead',
                            in_channels=32,
                            out_channels=32,
                            deconv_out_channels=None)
    init_default_scope('mmpose')
    model = MODELS.build(other.model)
    with pytest.raises(TypeError,
                       match='CenterNetPoseHead, got '
                       'CenterNetPoseEstimator with head HeatmapHead'):
        sweep_rescore_sigma(model, dataloader, cfg.val_evaluator, SIGMAS)
    # the config path refuses it before reading a checkpoint
    with pytest.raises(TypeError, match='head HeatmapHead'):
        build_sweep_inputs(other, '/nonexistent.pth')
    with pytest.raises(TypeError, match='evaluator_cfg must be'):
        sweep_rescore_sigma(oracle.model, dataloader, 'coco', SIGMAS)


def test_cli_end_to_end(cfg, data_root, tmp_path):
    """The tool on a checkpoint saved from the random model equals the
    library on the same checkpoint; a checkpoint that does not fit the
    config is refused."""
    init_default_scope('mmpose')
    torch.manual_seed(1)
    model = MODELS.build(copy.deepcopy(cfg.model))
    ckpt = str(tmp_path / 'random.pth')
    save_checkpoint(
        dict(state_dict=weights_to_cpu(model.state_dict()), meta=dict()), ckpt)
    out = tmp_path / 'sweep' / 'table.json'
    opts = [
        f'val_dataloader.dataset.data_root={data_root}',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        f'val_dataloader.batch_size={BATCH}',
        f'val_evaluator.ann_file={data_root}annotations/val.json'
    ]
    proc = run_python([
        'tools/analysis_tools/sweep_rescore_sigma.py', CONFIG, ckpt, '--sigmas', '1', '4',
        '--subset', '5', '--device', 'cpu', '--out',
        str(out), '--cfg-options', *opts
    ],
                      env=dict(OMP_NUM_THREADS='1'))
    table = [ln for ln in proc.stdout.splitlines() if ln.startswith('|')]
    assert table[0].startswith('| setting | AP | AP50 | AP75 | AR | AP ')
    assert [ln.split(' | ')[0]
            for ln in table[2:]] == ['| sigma=1', '| sigma=4', '| nearest']
    saved = json.loads(out.read_text())
    assert saved['checkpoint'] == ckpt
    assert saved['best_rescore_sigma'] in (1.0, 4.0)
    assert f'best rescore_sigma: {saved["best_rescore_sigma"]:g}' \
        in proc.stdout

    loaded, loader, evaluator_cfg = build_sweep_inputs(cfg, ckpt)
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    expected = sweep_rescore_sigma(loaded,
                                   loader,
                                   evaluator_cfg,
                                   SIGMAS,
                                   subset=5)
    assert [r['name']
            for r in saved['results']] == [r['name'] for r in expected]
    for got, want in zip(saved['results'], expected):
        assert got['num_images'] == 5
        assert got['metrics'] == pytest.approx(dict(want['metrics']))
    assert table[2:] == format_sweep_table(expected).splitlines()[2:]

    # strict loading: a checkpoint missing a head weight is refused (the
    # tool's main in this process: a second interpreter costs ~10 s)
    tool = _load_tool()
    state = weights_to_cpu(model.state_dict())
    state.pop('head.keypoint_reg.2.weight')
    bad = str(tmp_path / 'bad.pth')
    save_checkpoint(dict(state_dict=state, meta=dict()), bad)
    with pytest.raises(SystemExit,
                       match='(?s)error: .*missing keys.*'
                       r'head\.keypoint_reg\.2\.weight'):
        tool.main([CONFIG, bad, '--cfg-options', *opts])
    with pytest.raises(SystemExit,
                       match='error: rescore_sigma must be finite and > 0'):
        tool.main([CONFIG, ckpt, '--sigmas', '1', '0'])
    with pytest.raises(SystemExit, match='error: --subset must be >= 1'):
        tool.main([CONFIG, ckpt, '--subset', '0'])
    with pytest.raises(SystemExit, match='error: checkpoint .* does not'):
        tool.main([CONFIG, str(tmp_path / 'none.pth')])


def _load_tool():
    return load_tool('analysis_tools/sweep_rescore_sigma.py')

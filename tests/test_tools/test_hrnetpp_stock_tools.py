"""The HRNet++ toy configs under mmpose's stock train.py / test.py.

Three subprocess runs on a tiny generated persons dataset, in the order of
the report's recipe: train the HRNet++ heatmap model (a few iterations,
validated), fine-tune it with the soft-argmax head from that checkpoint
(validated), merge both checkpoints and run the stock test.py on the
ensemble + TTA config. The remaining toy configs (plain-HRNet baseline,
ensemble without TTA, soft-argmax + TTA) differ from those only in the
backbone or test_cfg; they are checked in-process: one training step of the
baseline on a real batch of the config's pipeline, and predictions of the
other two from the merged / fine-tuned checkpoints on the val batch.
Each training run is one epoch (3 iterations) with one validation:
finite losses at every iteration and CocoMetric's names are read from
mmengine's scalars.json, and the ensemble's dumped predictions must lie in
image pixels. Whether HRNet++ learns is tests/test_learning/'s concern.
"""
import os.path as osp

import numpy as np
import torch
from _helpers import (REPO_ROOT, check_dumped_predictions, check_metric_names,
                      check_training_scalars, load_json, read_scalars,
                      run_python, toy_run_options)
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint

import mmkp_ext  # noqa: F401
from mmkp_ext.converters.ensemble_checkpoint import merge_ensemble_checkpoints
from mmkp_ext.datasets import make_toy_dataset
from mmkp_ext.utils import mmpose_tool_path, parse_metric
from mmpose.registry import DATASETS, MODELS

CFG_DIR = osp.join(REPO_ROOT, 'configs/hrnetpp/toy_persons/')
HRNET = CFG_DIR + 'td-hm_hrnet-w16-tiny_1xb16-20e_toy-persons-128x96.py'
HEATMAP = CFG_DIR + 'td-hm_hrnetpp-w16-tiny_1xb16-20e_toy-persons-128x96.py'
SOFTARGMAX = CFG_DIR + 'td-sa_hrnetpp-w16-tiny_1xb16-6e_toy-persons-128x96.py'
SA_TTA = CFG_DIR + 'td-sa-tta_hrnetpp-w16-tiny_1xb16-6e_toy-persons-128x96.py'
ENSEMBLE = CFG_DIR + \
    'td-ensemble-hm-sa_hrnetpp-w16-tiny_toy-persons-128x96.py'
ENSEMBLE_TTA = CFG_DIR + \
    'td-ensemble-hm-sa-tta_hrnetpp-w16-tiny_toy-persons-128x96.py'


def _data_options(root):
    return toy_run_options(root, batch_size=4)


def _train_options(root):
    return _data_options(root) + [
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.save_best=None',
        'default_hooks.logger.interval=1'
    ]


def _batch(cfg_path, root, split):
    """One collated batch of ``split`` through the config's pipeline."""
    cfg = Config.fromfile(cfg_path)
    ds_cfg = cfg[f'{split}_dataloader'].dataset
    ds_cfg.data_root = str(root) + '/'
    dataset = DATASETS.build(ds_cfg)
    return pseudo_collate([dataset[i] for i in range(min(4, len(dataset)))])


def test_toy_configs_train_and_test_with_stock_tools(tmp_path):
    root = tmp_path / 'toy'
    make_toy_dataset('persons', str(root), num_images=8, seed=3,
                     val_fraction=0.25)

    # Stage 1: HRNet++ heatmap model.
    hm_dir = tmp_path / 'hm'
    out = run_python(['tools/train.py', HEATMAP, '--work-dir', str(hm_dir),
                      '--cfg-options', *_train_options(root)]).stdout
    assert 'Epoch(train)' in out and 0.0 <= parse_metric(out) <= 1.0
    # one iteration per 4 training people (top-down samples are people)
    iters = -(-len(load_json(osp.join(root, 'annotations',
                                      'train.json'))['annotations']) // 4)
    check_training_scalars(hm_dir, iters, ('loss_kpt', ))
    check_metric_names(read_scalars(hm_dir)[1][0], 'coco')
    hm_ckpt = hm_dir / 'epoch_1.pth'
    keys = _load_checkpoint(str(hm_ckpt))['state_dict']
    assert any(k.startswith('neck.') for k in keys)  # SubPixelFusion
    assert any(k.startswith('backbone.') for k in keys)
    assert 'head.final_layer.weight' in keys

    # Stage 2: soft-argmax fine-tune from the stage-1 checkpoint.
    sa_dir = tmp_path / 'sa'
    out = run_python(['tools/train.py', SOFTARGMAX, '--work-dir',
                      str(sa_dir), '--cfg-options', *_train_options(root),
                      f'load_from={hm_ckpt}']).stdout
    assert f'Load checkpoint from {hm_ckpt}' in out
    assert 0.0 <= parse_metric(out) <= 1.0
    check_training_scalars(sa_dir, iters, ('loss_kpt', ))
    check_metric_names(read_scalars(sa_dir)[1][0], 'coco')
    sa_ckpt = sa_dir / 'epoch_1.pth'

    # Ensemble + TTA: one merged checkpoint, the stock test.py.
    merged = tmp_path / 'ens.pth'
    merge_ensemble_checkpoints(ENSEMBLE_TTA, str(merged),
                               [str(hm_ckpt), str(sa_ckpt)])
    # (--dump makes test_evaluator a list before --cfg-options apply)
    dump = tmp_path / 'ens_preds.pkl'
    out = run_python([
        mmpose_tool_path('test.py'), ENSEMBLE_TTA,
        str(merged), '--work-dir', str(tmp_path / 'test'), '--dump',
        str(dump), '--cfg-options', *[
            o.replace('test_evaluator.', 'test_evaluator.0.', 1)
            for o in _data_options(root)
        ]
    ]).stdout
    assert 0.0 <= parse_metric(out) <= 1.0
    # TTA crops reach 1.2x scale rotated by 10 degrees: within 1.4x the
    # plain crop (1.2 (cos 10 + sin 10) = 1.39)
    check_dumped_predictions(dump, osp.join(root, 'annotations', 'val.json'),
                             17, topdown_input_size=(96, 128),
                             topdown_padding=1.25 * 1.4)

    with DefaultScope.overwrite_default_scope('mmpose'):
        # The plain-HRNet baseline: one optimiser step on a real batch.
        cfg = Config.fromfile(HRNET)
        model = MODELS.build(cfg.model)
        model.init_weights()
        optim = build_optim_wrapper(model, cfg.optim_wrapper)
        before = model.head.final_layer.weight.detach().clone()
        losses = model.train_step(_batch(HRNET, root, 'train'), optim)
        assert torch.isfinite(losses['loss_kpt'])
        assert not torch.equal(before, model.head.final_layer.weight)

        # Ensemble without TTA (merged checkpoint) and soft-argmax + TTA
        # (fine-tuned checkpoint) predict on the val batch.
        val = _batch(ENSEMBLE, root, 'val')
        for cfg_path, ckpt in ((ENSEMBLE, merged), (SA_TTA, sa_ckpt)):
            model = MODELS.build(Config.fromfile(cfg_path).model).eval()
            model.load_state_dict(
                _load_checkpoint(str(ckpt))['state_dict'], strict=True)
            with torch.no_grad():
                preds = model.test_step(val)
            kpts = np.stack([p.pred_instances.keypoints for p in preds])
            assert kpts.shape == (len(preds), 1, 17, 2)
            assert np.isfinite(kpts).all()

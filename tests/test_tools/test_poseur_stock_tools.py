"""mmpose's stock train.py / test.py (through our thin tools/ wrappers) on
the Poseur configs, each run a few iterations on CPU:

* the toy persons config on a generated 8-image set: train (one epoch,
  validation, checkpoint), then test.py on that checkpoint must print the
  validation's metric again;
* the real COCO fixture (``../shared/data/coco``, ground-truth boxes; skipped
  when absent) with the tiny fixture config: train one iteration with
  validation on the 12 people, then test.py on a checkpoint converted from
  the official Poseur layout (written out by the converter's test) must load
  without any key mismatch and evaluate.

Whether Poseur learns is tests/test_learning/'s concern.
"""
import importlib.util
import math
import os.path as osp
import re

import pytest
import torch
from _helpers import (REPO_ROOT, check_dumped_predictions, check_metric_names,
                      read_scalars, run_python, shared_data_dir,
                      toy_run_options)
from mmengine.runner.checkpoint import _load_checkpoint

import mmkp_ext  # noqa: F401
from mmkp_ext.converters.poseur_checkpoint import convert_poseur_checkpoint
from mmkp_ext.datasets import make_toy_dataset
from mmkp_ext.utils import parse_metric_values

TOY_CONFIG = osp.join(REPO_ROOT, 'configs/poseur/toy_persons/'
                      'poseur_res18-tiny_1xb16-40e_toy-persons-128x96.py')
COCO_CONFIG = osp.join(REPO_ROOT, 'configs/poseur/coco/'
                       'poseur_res18-tiny_1xb12-400e_coco-fixture-128x96.py')
COCO_DIR = osp.join(shared_data_dir(), 'coco')
LOSSES = ('loss_coarse', 'loss_dec0', 'loss_dec1')
ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def _loader_options(splits, batch_size):
    opts = []
    for split in splits:
        opts += [f'{split}_dataloader.num_workers=0',
                 f'{split}_dataloader.persistent_workers=False',
                 f'{split}_dataloader.batch_size={batch_size}']
    return opts


def _check_losses(log, iterations):
    lines = [line for line in log.splitlines() if 'Epoch(train)' in line]
    assert len(lines) == iterations, log[-3000:]
    for line in lines:
        for name in LOSSES + ('acc_pose', ):
            found = re.search(rf'\b{name}: (\S+)', line)
            assert found, (name, line)
            assert math.isfinite(float(found.group(1))), line


def test_toy_persons_train_then_test(tmp_path):
    root = tmp_path / 'toy'
    make_toy_dataset('persons', str(root), num_images=8, seed=3,
                     val_fraction=0.25)
    r = str(root) + '/'
    opts = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1',
            'default_hooks.logger.interval=1',
            ] + toy_run_options(r, batch_size=8)
    work = tmp_path / 'work'
    train = run_python(['tools/train.py', TOY_CONFIG, '--work-dir',
                        str(work), '--cfg-options', *opts], env=ENV).stdout
    n_iter = len([ln for ln in train.splitlines() if 'Epoch(train)' in ln])
    assert n_iter >= 1
    _check_losses(train, n_iter)
    ckpt = work / 'epoch_1.pth'
    state = _load_checkpoint(str(ckpt))['state_dict']
    # The head and both flows are saved; the flows' priors are constants.
    assert 'head.layers.1.cross_attn.value_proj_weight' in state
    assert 'head.loss_coarse.flow.s.0.0.weight' in state
    assert 'head.loss_decoder.flow.mask' in state
    assert not any('prior' in k for k in state)
    # --dump makes test_evaluator a list before --cfg-options apply
    test_opts = [o.replace('test_evaluator.', 'test_evaluator.0.', 1)
                 for o in opts]
    test = run_python(['tools/test.py', TOY_CONFIG, str(ckpt), '--work-dir',
                       str(work / 'test'), '--dump', str(work / 'preds.pkl'),
                       '--cfg-options', *test_opts], env=ENV).stdout
    _, results = read_scalars(work)
    assert len(results) == 1
    check_metric_names(results[0], 'coco')
    val_ap = parse_metric_values(train, 'coco/AP')
    test_ap = parse_metric_values(test, 'coco/AP')
    assert len(val_ap) == 1 and len(test_ap) == 1
    assert 0.0 <= test_ap[0] <= 1.0
    assert test_ap[0] == val_ap[0]
    # one finite prediction per person; a regression head after one
    # iteration may point outside its crop, so no bounds here (the mapping
    # to image pixels is checked on heatmap / soft-argmax models)
    check_dumped_predictions(work / 'preds.pkl', f'{r}annotations/val.json',
                             17, topdown_input_size=(96, 128), bounded=False)


def _official_state_dict_builder():
    """``build_model`` / ``official_state_dict`` / ``TINY_DIMS`` of the
    converter's test (the official key list written out there)."""
    path = osp.join(REPO_ROOT, 'tests/test_converters/'
                    'test_poseur_checkpoint.py')
    spec = importlib.util.spec_from_file_location('_poseur_official', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(
    not osp.isfile(osp.join(COCO_DIR, 'test_coco.json')),
    reason=f'real COCO fixtures not found at {COCO_DIR}')
def test_real_coco_fixture_train_and_converted_checkpoint_test(tmp_path):
    r = COCO_DIR + '/'
    opts = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1',
            'default_hooks.logger.interval=1',
            f'val_evaluator.ann_file={r}test_coco.json',
            f'test_evaluator.ann_file={r}test_coco.json']
    opts += [f'{s}_dataloader.dataset.data_root={r}'
             for s in ('train', 'val', 'test')]
    work = tmp_path / 'work'
    train = run_python(['tools/train.py', COCO_CONFIG, '--work-dir',
                        str(work), '--cfg-options', *opts], env=ENV).stdout
    _check_losses(train, 1)  # 12 people = one batch
    ap = parse_metric_values(train, 'coco/AP')
    assert len(ap) == 1 and 0.0 <= ap[0] <= 1.0
    assert (work / 'epoch_1.pth').is_file()

    # An official-layout checkpoint of the same model, converted, through
    # the stock test.py: loads with no key mismatch and evaluates.
    mod = _official_state_dict_builder()
    official = mod.official_state_dict(
        mod.build_model(COCO_CONFIG), mod.TINY_DIMS, seed=1)
    src, dst = tmp_path / 'official.pth', tmp_path / 'converted.pth'
    torch.save(dict(state_dict=official), src)
    convert_poseur_checkpoint(str(src), str(dst), COCO_CONFIG)
    test = run_python(['tools/test.py', COCO_CONFIG, str(dst), '--work-dir',
                       str(tmp_path / 'test'), '--cfg-options', *opts],
                      env=ENV).stdout
    assert 'do not match exactly' not in test
    assert 'missing keys' not in test and 'unexpected key' not in test
    test_ap = parse_metric_values(test, 'coco/AP')
    assert len(test_ap) == 1 and 0.0 <= test_ap[0] <= 1.0

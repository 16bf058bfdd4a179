"""The soft-gated hourglass through mmpose's stock train.py / test.py:

* toy persons (generated here): a few training iterations of the toy
  config, then test.py on the checkpoint (CocoMetric); the checkpoint's
  learned gates are then plotted with tools/analysis_tools/plot_soft_gates.py;
* the 5 real MPII images of the shared fixtures: training with a final
  validation by mmpose's MpiiPCKAccuracy (PCKh) on the same images.

MPII's PCKh needs the head boxes of the official ``mpii_gt_val.mat``, which
the fixture does not carry: the test writes one whose head-box diagonal is
the upper-neck -> head-top distance / 0.6 (mmpose multiplies the diagonal by
0.6), i.e. the head size is that distance.
"""
import os.path as osp
import runpy

import numpy as np
import pytest
from _helpers import (REPO_ROOT, check_dumped_predictions, check_metric_names,
                      check_training_scalars, load_json, read_scalars,
                      run_python, shared_data_dir, toy_run_options)
from mmengine.runner.checkpoint import _load_checkpoint

import mmkp_ext  # noqa: F401
from mmkp_ext.datasets import make_toy_dataset
from mmkp_ext.utils import mmpose_tool_path, parse_metric

TOY_CONFIG = osp.join(REPO_ROOT, 'configs/soft_gated/toy_persons/'
                      'td-hm_softgated-hg2-c64_1xb16-10e_toy-persons-64x48.py')
MPII_CONFIG = osp.join(REPO_ROOT, 'configs/soft_gated/mpii/'
                       'td-hm_softgated-hg2-c32_1xb8-2e_mpii-64x64.py')
MPII_DIR = osp.join(shared_data_dir(), 'mpii')
MPII_ANN = osp.join(MPII_DIR, 'test_mpii.json')


def _loader_opts(root_opts):
    opts = list(root_opts)
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.num_workers=0',
                 f'{split}_dataloader.persistent_workers=False']
    return opts


def test_toy_persons_train_test_and_gate_plot(tmp_path):
    root = tmp_path / 'toy'
    make_toy_dataset('persons', str(root), num_images=10, seed=1,
                     val_fraction=0.3)
    r = str(root) + '/'
    opts = toy_run_options(r) + _loader_opts([
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1',
        'train_dataloader.batch_size=4', 'default_hooks.logger.interval=1',
        # a smaller model: the test checks the plumbing, not accuracy
        'model.backbone.channels=16', 'model.backbone.stem_channels=[8,16]'])
    work = tmp_path / 'work'
    # fresh=True: a new interpreter, not a fork of the warm tool server,
    # so mmpose's own train.py finds mmkp_ext only through the config's
    # custom_imports, as a user's run would
    train = run_python([mmpose_tool_path('train.py'), TOY_CONFIG,
                        '--work-dir', str(work), '--cfg-options', *opts],
                       fresh=True)
    # CPMHead logs one summed loss over the 2 stacks; one iteration per 4
    # training people (top-down samples are people), then one validation.
    assert 'loss_kpt' in train.stdout and 'Epoch(val)' in train.stdout
    people = len(load_json(f'{r}annotations/train.json')['annotations'])
    check_training_scalars(work, -(-people // 4), ('loss_kpt', 'acc_pose'))
    check_metric_names(read_scalars(work)[1][0], 'coco')
    ckpt = work / 'epoch_1.pth'
    dump = tmp_path / 'preds.pkl'
    test = run_python([mmpose_tool_path('test.py'), TOY_CONFIG, str(ckpt),
                       '--work-dir', str(tmp_path / 'test'), '--dump',
                       str(dump), '--cfg-options', *[
                           o.replace('test_evaluator.', 'test_evaluator.0.',
                                     1) for o in opts]])
    ap = parse_metric(test.stdout)
    assert 0.0 <= ap <= 1.0
    assert ap == parse_metric(train.stdout)  # same weights, same metric
    check_dumped_predictions(dump, f'{r}annotations/val.json', 17,
                             topdown_input_size=(48, 64))

    state = _load_checkpoint(str(ckpt))['state_dict']
    alphas = [k for k in state if k.endswith('.alpha')]
    # 2 stacks x (2 levels x 3 blocks + bottom) + stem 3 + 2 stack outputs
    assert len(alphas) == 2 * 7 + 3 + 2
    # Training moved the gates away from their initial 0.
    assert any(state[k].abs().max() > 0 for k in alphas)

    png = tmp_path / 'gates.png'
    plot = runpy.run_path(
        osp.join(REPO_ROOT, 'tools/analysis_tools/plot_soft_gates.py'))
    gates = plot['main']([str(ckpt), '--out', str(png)])
    assert png.stat().st_size > 1000
    assert gates['stack1/level0'].shape == (3 * 16, )
    np.testing.assert_array_equal(
        gates['stack0/bottom'],
        state['backbone.hourglasses.0.bottom.alpha'].numpy().ravel())


@pytest.mark.skipif(not osp.isfile(MPII_ANN),
                    reason=f'real MPII fixtures not found at {MPII_DIR} (set '
                    'MMKP_SHARED_DATA to the shared data folder)')
def test_real_mpii_train_with_pckh_validation(tmp_path):
    from scipy.io import savemat
    anns = load_json(MPII_ANN)
    joints = np.array([a['joints'] for a in anns], dtype=np.float64)
    # MPII joints 8 = upper neck, 9 = head top.
    dist = np.linalg.norm(joints[:, 9] - joints[:, 8], axis=1)
    side = dist / 0.6 / np.sqrt(2)  # square box whose diagonal is dist/0.6
    x0, y0 = joints[:, 9, 0], joints[:, 9, 1]
    boxes = np.stack([np.stack([x0, y0], 1),
                      np.stack([x0 + side, y0 + side], 1)], 1)  # (N, 2, 2)
    headbox = tmp_path / 'mpii_gt_val.mat'
    savemat(headbox, {'headboxes_src': boxes.transpose(1, 2, 0)})

    root = MPII_DIR + '/'
    opts = _loader_opts([
        f'{s}_dataloader.dataset.{k}'
        for s in ('train', 'val', 'test')
        for k in (f'data_root={root}', 'ann_file=test_mpii.json',
                  'data_prefix.img=')
    ] + [f'{s}_dataloader.dataset.headbox_file={headbox}'
         for s in ('val', 'test')])
    work = tmp_path / 'work'
    # One stock train.py run of one iteration whose validation is the test
    # pass (test.py itself is exercised on toy persons above; a second MPII
    # subprocess would double this test's time).
    train = run_python([mmpose_tool_path('train.py'), MPII_CONFIG,
                        '--work-dir', str(work), '--cfg-options', *opts,
                        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                        'default_hooks.checkpoint.interval=1',
                        'default_hooks.logger.interval=1'])
    check_training_scalars(work, 1, ('loss_kpt', ))
    assert 'Epoch(train) [1]' in train.stdout
    assert 'Evaluating MpiiPCKAccuracy (normalized by ``"head_size"``)' \
        in train.stdout
    # mmpose 1.x logs PCKh@0.5 as "PCK" (and "Head PCK", ..., "PCK@0.1").
    pckh = parse_metric(train.stdout, 'PCK')
    assert 0.0 <= pckh <= 100.0
    assert parse_metric(train.stdout, 'PCK@0.1') <= pckh
    assert (work / 'epoch_1.pth').is_file()

"""Training survives a kill: real subprocesses of the stock ``tools/train.py``
on the cheapest toy config, killed with SIGKILL, then ``--resume``.

The config is ``td-hm_res18-s8_1xb16-10e_toy-persons-64x48.py`` (its own
``randomness.seed=0``, RandomFlip augmentation) on 16 generated training
images (37 persons, 5 iterations of 8 per epoch) for 3 epochs, validating
after every epoch, one checkpoint kept (``max_keep_ckpts=1``, as in the
config) and a best checkpoint. The hooks are given on the command line:
``default_hooks.checkpoint.type=AtomicCheckpointHook`` and an
``RNGStateHook``; test-only hooks (``mmkp_ckpt_test_hooks.py`` beside this
file) kill the process and record every iteration's losses and every
validation's metrics plus a checksum of all predicted keypoints.

With mmengine's stock ``CheckpointHook`` and no ``RNGStateHook`` (set
``CHECKPOINT_HOOK = 'CheckpointHook'`` and ``RNG_HOOK = False`` below),
``test_kill_while_saving_keeps_the_previous_checkpoint`` and
``test_empty_last_checkpoint_falls_back`` fail (FileNotFoundError on
resume) and ``test_kill_mid_epoch_resume_repeats_the_uninterrupted_run``
fails on the first loss after the resume point.
"""
import json
import os
import os.path as osp
import shutil

import pytest
import torch
from _helpers import REPO_ROOT, run_python

from mmkp_ext.datasets import make_toy_dataset
from mmkp_ext.engine.hooks import checkpoint_looks_complete
from mmkp_ext.safe_load import load_checkpoint_dict

CONFIG = osp.join(REPO_ROOT, 'configs/soft_argmax/toy_persons/'
                  'td-hm_res18-s8_1xb16-10e_toy-persons-64x48.py')
HERE = osp.dirname(osp.abspath(__file__))
CHECKPOINT_HOOK = 'AtomicCheckpointHook'
RNG_HOOK = True
MAX_EPOCHS = 3
ITERS_PER_EPOCH = 5  # 37 persons, batch size 8
TOTAL_ITERS = MAX_EPOCHS * ITERS_PER_EPOCH


def _options(root):
    root = str(root).rstrip('/') + '/'
    opts = [
        f'train_cfg.max_epochs={MAX_EPOCHS}', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1',
        f'default_hooks.checkpoint.type={CHECKPOINT_HOOK}',
        'default_hooks.checkpoint.max_keep_ckpts=1',
        'default_hooks.checkpoint.save_best=coco/AP',
        'default_hooks.checkpoint.rule=greater',
        'default_hooks.record.type=mmkp_ckpt_test_hooks.RecordHook',
        'train_dataloader.batch_size=8',
        f'val_evaluator.ann_file={root}annotations/val.json',
    ]
    if RNG_HOOK:
        opts.append('default_hooks.rng_state.type=RNGStateHook')
    for split in ('train', 'val'):
        opts += [
            f'{split}_dataloader.dataset.data_root={root}',
            f'{split}_dataloader.num_workers=0',
            f'{split}_dataloader.persistent_workers=False'
        ]
    return opts


def _train(root, work_dir, *extra, resume=False, check=True):
    env = dict(
        OMP_NUM_THREADS='1', MKL_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join(
            [REPO_ROOT, HERE, os.environ.get('PYTHONPATH', '')]))
    args = ['tools/train.py', CONFIG, '--work-dir', str(work_dir)]
    if resume:
        args.append('--resume')
    return run_python(args + ['--cfg-options', *_options(root), *extra],
                      env=env, check=check, timeout=600)


def _records(work_dir):
    with open(osp.join(work_dir, 'record.jsonl')) as f:
        lines = [json.loads(line) for line in f]
    losses = {}
    for r in lines:
        if 'iter' in r:
            losses.setdefault(r['iter'], []).append(r['losses'])
    vals = [r for r in lines if 'val_epoch' in r]
    return losses, vals


def _state_dict(path):
    return load_checkpoint_dict(path)['state_dict']


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('kill_resume_data')
    info = make_toy_dataset('persons', str(root), num_images=20, seed=1,
                            image_size=64)
    assert info['num_train_instances'] == 37
    return root


@pytest.fixture(scope='module')
def uninterrupted(data_root, tmp_path_factory):
    work = tmp_path_factory.mktemp('uninterrupted')
    _train(data_root, work)
    losses, vals = _records(work)
    assert sorted(losses) == list(range(1, TOTAL_ITERS + 1))
    assert [v['val_epoch'] for v in vals] == [1, 2, 3]
    return work, losses, vals


def _assert_repeats(uninterrupted, work, resumed_after):
    """Every iteration after ``resumed_after`` has exactly the uninterrupted
    run's losses; the final validation and weights are identical."""
    ref_work, ref_losses, ref_vals = uninterrupted
    losses, vals = _records(work)
    for it in range(resumed_after + 1, TOTAL_ITERS + 1):
        # The last record of an iteration is the resumed run's.
        assert losses[it][-1] == ref_losses[it][0], (
            f'iteration {it}: {losses[it][-1]} != {ref_losses[it][0]}')
    assert vals[-1]['metrics'] == ref_vals[-1]['metrics']
    assert vals[-1]['checksum'] == ref_vals[-1]['checksum']
    ours = _state_dict(osp.join(work, f'epoch_{MAX_EPOCHS}.pth'))
    ref = _state_dict(osp.join(ref_work, f'epoch_{MAX_EPOCHS}.pth'))
    assert ours.keys() == ref.keys()
    for k in ref:
        assert torch.equal(ours[k], ref[k]), k


def test_kill_mid_epoch_resume_repeats_the_uninterrupted_run(
        data_root, uninterrupted, tmp_path):
    kill_at = ITERS_PER_EPOCH + 3  # third iteration of epoch 2
    proc = _train(data_root, tmp_path,
                  'default_hooks.kill.type=mmkp_ckpt_test_hooks.'
                  'KillAtIterHook', f'default_hooks.kill.kill_at_iter='
                  f'{kill_at}', check=False)
    assert proc.returncode == -9, proc.stdout[-3000:]
    losses, _ = _records(tmp_path)
    assert max(losses) == kill_at
    assert osp.isfile(tmp_path / 'epoch_1.pth')
    proc = _train(data_root, tmp_path, resume=True)
    assert f'resumed epoch: 1, iter: {ITERS_PER_EPOCH}' in proc.stdout
    _assert_repeats(uninterrupted, tmp_path, ITERS_PER_EPOCH)


def test_kill_while_saving_keeps_the_previous_checkpoint(
        data_root, uninterrupted, tmp_path):
    proc = _train(data_root, tmp_path,
                  'default_hooks.kill.type=mmkp_ckpt_test_hooks.'
                  'KillDuringSaveHook', 'default_hooks.kill.name=epoch_2.pth',
                  check=False)
    assert proc.returncode == -9, proc.stdout[-3000:]
    # The kill hit the save of epoch 2 half-way: epoch 1's checkpoint is
    # still complete and last_checkpoint still names it.
    assert checkpoint_looks_complete(str(tmp_path / 'epoch_1.pth'))[0]
    assert not osp.exists(tmp_path / 'epoch_2.pth')
    with open(tmp_path / 'last_checkpoint') as f:
        assert osp.basename(f.read().strip()) == 'epoch_1.pth'
    proc = _train(data_root, tmp_path, resume=True)
    assert f'resumed epoch: 1, iter: {ITERS_PER_EPOCH}' in proc.stdout
    # The partial file of the killed save is cleaned up; one checkpoint
    # kept.
    names = sorted(os.listdir(tmp_path))
    assert not [n for n in names if n.endswith('.tmp')], names
    assert [n for n in names if n.startswith('epoch_')] == ['epoch_3.pth']
    _assert_repeats(uninterrupted, tmp_path, ITERS_PER_EPOCH)


def test_empty_last_checkpoint_falls_back(data_root, uninterrupted,
                                          tmp_path):
    """An empty ``last_checkpoint`` beside a good ``epoch_3.pth`` (and a
    truncated, newer ``epoch_4.pth``): ``--resume`` takes epoch 3."""
    ref_work = uninterrupted[0]
    work = tmp_path / 'work'
    shutil.copytree(ref_work, work)
    (work / 'last_checkpoint').write_text('')
    data = (work / 'epoch_3.pth').read_bytes()
    (work / 'epoch_4.pth').write_bytes(data[:len(data) // 3])
    proc = _train(data_root, work, resume=True)
    assert f'resuming from {work / "epoch_3.pth"}' in proc.stdout
    assert 'epoch_4.pth: is truncated' in proc.stdout
    assert f'resumed epoch: {MAX_EPOCHS}' in proc.stdout

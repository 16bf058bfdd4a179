"""AtomicCheckpointHook in-process: the order of writes and deletions, the
resume fallback, and the completeness check (the kill tests with real
train.py runs are in test_kill_resume.py)."""
import logging
import os
import os.path as osp

import pytest
import torch
from mmengine.logging import MessageHub, MMLogger

import mmkp_ext  # noqa: F401
from mmkp_ext.engine.hooks import (AtomicCheckpointHook,
                                   checkpoint_looks_complete,
                                   find_resume_checkpoint)
from mmkp_ext.safe_load import load_checkpoint_dict


def _ckpt(path, step):
    torch.save(dict(state_dict=dict(w=torch.full((4, ), float(step))),
                    meta=dict(epoch=step, iter=step * 10)), str(path))
    return str(path)


class _Crash(Exception):
    pass


class _FakeRunner:
    """What CheckpointHook uses of mmengine's Runner; ``save_checkpoint``
    writes a small checkpoint like the Runner's (through the given file
    name), or writes half of it and raises when ``crash`` is set (a kill
    during the save)."""

    def __init__(self, work_dir, name):
        self.work_dir = str(work_dir)
        self.message_hub = MessageHub.get_instance(name)
        self.logger = MMLogger.get_instance(name)
        self.epoch = 0
        self.iter = 0
        self.crash = False
        self.saved = []

    def save_checkpoint(self, out_dir, filename, file_client_args=None,
                        save_optimizer=True, save_param_scheduler=True,
                        meta=None, by_epoch=True, backend_args=None):
        path = osp.join(out_dir, filename)
        self.saved.append(filename)
        _ckpt(path, self.epoch + 1)
        if self.crash:
            with open(path, 'rb') as f:
                data = f.read()
            with open(path, 'wb') as f:
                f.write(data[:len(data) // 2])
            raise _Crash(filename)


def _names(d):
    return sorted(n for n in os.listdir(d))


def test_save_replaces_atomically_and_deletes_after(tmp_path):
    runner = _FakeRunner(tmp_path, 'atomic_save')
    hook = AtomicCheckpointHook(interval=1, max_keep_ckpts=1)
    hook.before_train(runner)
    hook._save_checkpoint(runner)  # epoch_1
    assert runner.saved == ['.epoch_1.pth.tmp']  # written beside, renamed
    assert _names(tmp_path) == ['epoch_1.pth', 'last_checkpoint']
    assert (tmp_path / 'last_checkpoint').read_text() == str(
        tmp_path / 'epoch_1.pth')

    # A kill while epoch 2 is written: epoch 1 and last_checkpoint are
    # untouched (stock CheckpointHook deletes epoch_1.pth first and leaves
    # a half-written epoch_2.pth).
    runner.epoch = 1
    runner.crash = True
    with pytest.raises(_Crash):
        hook._save_checkpoint(runner)
    assert checkpoint_looks_complete(str(tmp_path / 'epoch_1.pth'))[0]
    assert not osp.exists(tmp_path / 'epoch_2.pth')
    assert (tmp_path / 'last_checkpoint').read_text() == str(
        tmp_path / 'epoch_1.pth')
    assert find_resume_checkpoint(str(tmp_path), [str(tmp_path)]) == str(
        tmp_path / 'epoch_1.pth')

    # The next run's before_train removes the partial file; a complete save
    # then replaces epoch 1.
    runner = _FakeRunner(tmp_path, 'atomic_save_2')
    runner.message_hub.update_info('keep_ckpt_ids', [1])
    hook = AtomicCheckpointHook(interval=1, max_keep_ckpts=1)
    hook.before_train(runner)
    assert '.epoch_2.pth.tmp' not in _names(tmp_path)
    runner.epoch = 1
    hook._save_checkpoint(runner)
    assert _names(tmp_path) == ['epoch_2.pth', 'last_checkpoint']
    assert runner.message_hub.get_info('keep_ckpt_ids') == [2]
    assert load_checkpoint_dict(str(tmp_path / 'epoch_2.pth'))['meta'][
        'epoch'] == 2


def test_best_checkpoint_replaced_only_after_the_new_one_is_complete(
        tmp_path):
    runner = _FakeRunner(tmp_path, 'atomic_best')
    hook = AtomicCheckpointHook(interval=1, max_keep_ckpts=1,
                                save_best='coco/AP', rule='greater')
    hook.before_train(runner)
    runner.epoch = 1
    hook.after_val_epoch(runner, {'coco/AP': 0.5})
    assert 'best_coco_AP_epoch_1.pth' in _names(tmp_path)
    runner.epoch = 2
    runner.crash = True
    with pytest.raises(_Crash):
        hook.after_val_epoch(runner, {'coco/AP': 0.7})
    # The old best survives a kill during the save of the new best.
    assert checkpoint_looks_complete(
        str(tmp_path / 'best_coco_AP_epoch_1.pth'))[0]
    assert 'best_coco_AP_epoch_2.pth' not in _names(tmp_path)
    runner.crash = False
    hook.after_val_epoch(runner, {'coco/AP': 0.9})
    names = _names(tmp_path)
    assert 'best_coco_AP_epoch_2.pth' in names
    assert 'best_coco_AP_epoch_1.pth' not in names


def test_completeness_check(tmp_path):
    good = _ckpt(tmp_path / 'good.pth', 1)
    assert checkpoint_looks_complete(good) == (True, '')
    data = open(good, 'rb').read()
    (tmp_path / 'empty.pth').write_bytes(b'')
    assert checkpoint_looks_complete(str(tmp_path / 'empty.pth')) == (
        False, 'is empty (0 bytes)')
    for frac in (0.3, 0.9):
        path = tmp_path / f'trunc{frac}.pth'
        path.write_bytes(data[:int(len(data) * frac)])
        ok, reason = checkpoint_looks_complete(str(path))
        assert not ok and 'truncated' in reason, reason
    # Same size, one byte of the tensor data changed: the CRC check fails.
    start = data.index(b'data/0') + 200
    bad = bytearray(data)
    bad[start] ^= 0xFF
    (tmp_path / 'crc.pth').write_bytes(bytes(bad))
    ok, reason = checkpoint_looks_complete(str(tmp_path / 'crc.pth'))
    assert not ok, reason
    assert not checkpoint_looks_complete(str(tmp_path / 'missing.pth'))[0]


@pytest.mark.parametrize('last', ['missing', 'empty', 'gone', 'truncated'])
def test_resume_falls_back_to_newest_complete(tmp_path, last, caplog):
    for step in (1, 3, 10):
        _ckpt(tmp_path / f'epoch_{step}.pth', step)
    data = (tmp_path / 'epoch_10.pth').read_bytes()
    (tmp_path / 'epoch_12.pth').write_bytes(data[:len(data) // 2])
    (tmp_path / 'best_coco_AP_epoch_20.pth').write_bytes(data)
    last_file = tmp_path / 'last_checkpoint'
    if last == 'empty':
        last_file.write_text('\n')
    elif last == 'gone':
        last_file.write_text(str(tmp_path / 'epoch_11.pth'))
    elif last == 'truncated':
        last_file.write_text(str(tmp_path / 'epoch_12.pth'))
    logger = logging.getLogger(f'resume_test_{last}')
    with caplog.at_level(logging.WARNING, logger=logger.name):
        path = find_resume_checkpoint(str(tmp_path), [str(tmp_path)],
                                      'epoch_{}.pth', logger)
    # Numerically newest, not lexically (epoch_3 > epoch_10 as strings);
    # the truncated epoch_12 and the best checkpoint are not taken.
    assert path == str(tmp_path / 'epoch_10.pth')
    assert f'resuming from {path}' in caplog.text
    assert {'missing': 'does not exist', 'empty': 'is empty',
            'gone': 'epoch_11.pth, which does not exist',
            'truncated': 'epoch_12.pth, which is truncated'}[last] in \
        caplog.text
    if last != 'truncated':
        assert 'skipped epoch_12.pth: is truncated' in caplog.text


def test_resume_keeps_a_good_last_checkpoint(tmp_path):
    _ckpt(tmp_path / 'epoch_1.pth', 1)
    _ckpt(tmp_path / 'epoch_2.pth', 2)
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_1.pth'))
    assert find_resume_checkpoint(str(tmp_path), [str(tmp_path)]) == str(
        tmp_path / 'epoch_1.pth')
    # Another template: iteration checkpoints.
    _ckpt(tmp_path / 'iter_50.pth', 5)
    _ckpt(tmp_path / 'iter_100.pth', 10)
    (tmp_path / 'last_checkpoint').write_text('')
    assert find_resume_checkpoint(str(tmp_path), [str(tmp_path)],
                                  'iter_{}.pth') == str(tmp_path /
                                                        'iter_100.pth')


def test_before_run_hands_the_choice_to_the_runner(tmp_path):
    runner = _FakeRunner(tmp_path, 'atomic_before_run')
    hook = AtomicCheckpointHook(interval=1)
    # Nothing to resume and a stale last_checkpoint: start from scratch
    # instead of failing on the stale name.
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_3.pth'))
    runner._resume, runner._load_from = True, None
    hook.before_run(runner)
    assert runner._resume is False and runner._load_from is None
    _ckpt(tmp_path / 'epoch_2.pth', 2)
    runner._resume, runner._load_from = True, None
    hook.before_run(runner)
    assert runner._resume and runner._load_from == str(tmp_path /
                                                       'epoch_2.pth')
    # An explicit --resume PATH and load_from without resume are left alone.
    runner._resume, runner._load_from = True, 'given.pth'
    hook.before_run(runner)
    assert runner._load_from == 'given.pth'
    runner._resume, runner._load_from = False, None
    hook.before_run(runner)
    assert runner._load_from is None


def test_registered_in_mmpose_hooks():
    from mmengine.hooks import CheckpointHook
    from mmpose.registry import HOOKS

    from mmkp_ext.engine.hooks import RNGStateHook
    assert HOOKS.scope == 'mmpose'
    assert HOOKS.module_dict['AtomicCheckpointHook'] is AtomicCheckpointHook
    assert HOOKS.module_dict['RNGStateHook'] is RNGStateHook
    assert issubclass(AtomicCheckpointHook, CheckpointHook)
    hook = HOOKS.build(dict(type='AtomicCheckpointHook', interval=2,
                            max_keep_ckpts=3, save_best='coco/AP',
                            rule='greater'))
    assert (hook.interval, hook.max_keep_ckpts) == (2, 3)


def test_published_checkpoint_keeps_only_published_keys(tmp_path):
    import re
    runner = _FakeRunner(tmp_path, 'atomic_publish')
    hook = AtomicCheckpointHook(interval=1, published_keys=['state_dict'])
    hook.before_train(runner)
    hook._save_checkpoint(runner)
    hook.after_train(runner)
    published = [n for n in _names(tmp_path) if n.startswith('epoch_1-')]
    assert len(published) == 1 and not any(
        n.endswith('.tmp') for n in _names(tmp_path))
    ckpt = load_checkpoint_dict(str(tmp_path / published[0]))
    assert list(ckpt) == ['state_dict']
    assert re.fullmatch(r'epoch_1-[0-9a-f]{8}\.pth', published[0])

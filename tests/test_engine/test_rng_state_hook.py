"""RNGStateHook in-process: what it saves, that it survives weights-only
loading, when it restores (resume only; after mmengine's re-seeding; after
the iteration-based fast-forward) and that validation leaves the training
streams alone. End to end with train.py: test_kill_resume.py."""
import io
import random
from types import SimpleNamespace

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from mmengine.logging import MMLogger

import mmkp_ext  # noqa: F401
from mmkp_ext.engine.hooks import (RNGStateHook, capture_rng_state,
                                   restore_rng_state)


def _draw():
    """A few numbers from every global generator."""
    return (random.random(), random.randint(0, 10**9),
            float(np.random.rand()), float(np.random.randn()),
            torch.rand(3).tolist(), torch.randint(0, 10**6, (2, )).tolist())


def _loader(seed=7):
    dataset = list(range(10))
    sampler = DefaultSampler(dataset, shuffle=True, seed=seed)
    return torch.utils.data.DataLoader(dataset, sampler=sampler,
                                       batch_size=2)


def test_capture_restore_roundtrip_through_weights_only_load():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    np.random.randn()  # a cached gaussian is part of numpy's state
    loader = _loader(seed=123)
    loader.sampler.set_epoch(4)
    state = capture_rng_state(loader)
    expected = _draw()
    buf = io.BytesIO()
    torch.save({'rng_state': state}, buf)
    buf.seek(0)
    # Plain torch.load, no allow-listed globals: weights_only loads it.
    loaded = torch.load(buf, weights_only=True)['rng_state']
    assert loaded['sampler'] == dict(type='DefaultSampler', seed=123,
                                     epoch=4)
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    other = DefaultSampler(list(range(10)), shuffle=True, seed=5)
    loader2 = torch.utils.data.DataLoader(list(range(10)), sampler=other)
    restore_rng_state(loaded, loader2)
    assert _draw() == expected
    assert other.seed == 123


def _runner(resume, loop=None):
    return SimpleNamespace(_resume=resume, train_loop=loop, _train_loop=loop,
                           logger=MMLogger.get_instance('rng_hook_test'))


def test_restored_only_when_resuming_after_reseeding():
    loader = _loader()
    loop = SimpleNamespace(dataloader=loader)
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    hook = RNGStateHook()
    ckpt = {'meta': dict(epoch=1, iter=5)}
    hook.before_save_checkpoint(_runner(True, loop), ckpt)
    expected = _draw()

    # load_from (fine-tuning) / test.py: the seeds stay as configured.
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    fresh = _draw()
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    hook.after_load_checkpoint(_runner(False, loop), ckpt)
    hook.before_train_epoch(_runner(False, loop))
    assert _draw() == fresh

    # Resume: mmengine re-seeds after loading; the states come back at the
    # first train epoch.
    hook.after_load_checkpoint(_runner(True, loop), ckpt)
    torch.manual_seed(0), np.random.seed(0), random.seed(0)  # re-seeding
    hook.before_train_epoch(_runner(True, loop))
    assert _draw() == expected
    # Only once.
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    hook.before_train_epoch(_runner(True, loop))
    assert _draw() == fresh


def test_validation_does_not_consume_training_streams():
    loop = SimpleNamespace(dataloader=_loader())
    runner = _runner(True, loop)
    hook = RNGStateHook()
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    expected = _draw()
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    hook.before_val(runner)
    _draw()  # validation draws (dataloader base seeds, ...)
    ckpt = {}
    hook.before_save_checkpoint(runner, ckpt)  # best checkpoint, in val
    hook.after_val(runner)
    assert _draw() == expected
    # The best checkpoint holds the training states from before validation.
    restore_rng_state(ckpt['rng_state'])
    assert _draw() == expected


def test_iteration_based_loop_restores_after_fast_forward():
    """mmengine's IterBasedTrainLoop calls next() ``iter`` times to skip
    trained batches (loading them draws random numbers); the states must
    apply to the first batch after that."""
    torch.manual_seed(11)
    hook = RNGStateHook()

    class Batches:
        def __next__(self):
            return torch.rand(1).item()  # an augmentation's draw

    loader = _loader()
    loop = SimpleNamespace(dataloader=loader, dataloader_iterator=Batches(),
                           _iter=3)
    runner = _runner(True, loop)
    ckpt = {'meta': dict(epoch=0, iter=3)}
    hook.before_save_checkpoint(runner, ckpt)
    expected = torch.rand(1).item()
    hook.after_load_checkpoint(runner, ckpt)
    torch.manual_seed(0)
    hook.before_train_epoch(runner)
    for _ in range(3):  # the fast-forward
        next(loop.dataloader_iterator)
    assert next(loop.dataloader_iterator) == expected


def test_warns_without_states_and_for_persistent_workers():
    loader = SimpleNamespace(persistent_workers=True, num_workers=2)
    runner = _runner(True, SimpleNamespace(dataloader=loader))
    warnings = []
    runner.logger = SimpleNamespace(warning=warnings.append,
                                    info=lambda msg: None)
    hook = RNGStateHook()
    hook.after_load_checkpoint(runner, {'meta': {}})
    hook.before_train(runner)
    assert len(warnings) == 2
    assert 'holds no RNG states' in warnings[0]
    assert 'persistent_workers=False' in warnings[1]


def test_warns_for_mid_epoch_checkpoint_in_epoch_loop():
    loader = _loader()  # 5 batches per epoch
    runner = _runner(True, SimpleNamespace(dataloader=loader))
    warnings = []
    runner.logger = SimpleNamespace(warning=warnings.append,
                                    info=lambda msg: None)
    hook = RNGStateHook()
    state = capture_rng_state(loader)
    hook.after_load_checkpoint(
        runner, {'meta': dict(epoch=2, iter=10), 'rng_state': state})
    assert warnings == []  # an epoch-end checkpoint
    hook.after_load_checkpoint(
        runner, {'meta': dict(epoch=2, iter=12), 'rng_state': state})
    assert len(warnings) == 1 and 'mid-epoch checkpoint' in warnings[0]

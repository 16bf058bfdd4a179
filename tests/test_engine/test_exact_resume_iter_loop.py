"""Exact resume in an iteration-based loop (mmengine's IterBasedTrainLoop
with an InfiniteSampler), in-process with mmengine's Runner on a tiny model
whose data pipeline draws from numpy's and python's generators and whose
model draws dropout masks from torch's. A run interrupted after iteration 8
(checkpoints every 3 iterations) and resumed from ``iter_6.pth`` must give
the uninterrupted run's losses from iteration 7 on; without RNGStateHook
they differ (checked too, so the test shows the hook is what matters)."""
import random

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

import mmkp_ext  # noqa: F401

MAX_ITERS = 12


class _NoisyData(Dataset):
    """Each item: a fixed vector plus noise from numpy and python's
    ``random`` (an augmentation)."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        x = np.full(4, float(i), np.float32)
        x = x + np.random.randn(4).astype(np.float32) * 0.1
        x[0] += random.random()
        return dict(inputs=torch.from_numpy(x), target=torch.tensor(i % 3))


class _Model(BaseModel):

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Dropout(0.5),
                                 nn.Linear(16, 3))

    def forward(self, inputs, target, mode='tensor'):
        logits = self.net(torch.stack(inputs) if isinstance(inputs, list)
                          else inputs)
        if mode == 'loss':
            target = torch.stack(target) if isinstance(target,
                                                       list) else target
            return dict(loss=nn.functional.cross_entropy(logits, target))
        return logits


class _Stop(Exception):
    pass


class _Recorder(Hook):
    """Hook recording every iteration's loss; optionally raises after
    iteration ``stop_after`` (the process dying)."""
    priority = 'LOWEST'

    def __init__(self, losses, stop_after=None):
        self.losses = losses
        self.stop_after = stop_after

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses[runner.iter + 1] = float(outputs['loss'])
        if self.stop_after == runner.iter + 1:
            raise _Stop()


def _runner(work_dir, name, rng_hook, recorder, resume=False):
    custom = [recorder] + ([dict(type='RNGStateHook')] if rng_hook else [])
    torch.manual_seed(0)  # the model is built before the Runner seeds
    return Runner(
        model=_Model(),
        work_dir=str(work_dir),
        experiment_name=name,
        train_dataloader=dict(
            dataset=_NoisyData(),
            sampler=dict(type='InfiniteSampler', shuffle=True),
            batch_size=3,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=MAX_ITERS),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(
            checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False,
                            interval=3, max_keep_ckpts=1),
            logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=custom,
        randomness=dict(seed=0),
        default_scope='mmpose',
        resume=resume)


@pytest.mark.parametrize('rng_hook', [True, False])
def test_iteration_based_resume(tmp_path, rng_hook):
    tag = 'rng' if rng_hook else 'plain'
    ref = {}
    _runner(tmp_path / 'ref', f'ref_{tag}', rng_hook, _Recorder(ref)).train()
    assert sorted(ref) == list(range(1, MAX_ITERS + 1))

    part = {}
    with pytest.raises(_Stop):
        _runner(tmp_path / 'run', f'run1_{tag}', rng_hook,
                _Recorder(part, stop_after=8)).train()
    resumed = {}
    _runner(tmp_path / 'run', f'run2_{tag}', rng_hook, _Recorder(resumed),
            resume=True).train()
    assert sorted(resumed) == list(range(7, MAX_ITERS + 1))
    same = [resumed[i] == ref[i] for i in range(7, MAX_ITERS + 1)]
    if rng_hook:
        assert all(same), (resumed, ref)
    else:
        assert not same[0], 'stock resume repeated the run by chance?'

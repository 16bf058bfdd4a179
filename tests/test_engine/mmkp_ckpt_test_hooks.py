"""Test-only hooks for the kill / resume tests (test_kill_resume.py).

Imported by the training subprocesses through ``PYTHONPATH`` (this folder)
and named in ``--cfg-options`` by module path, e.g.
``default_hooks.kill.type=mmkp_ckpt_test_hooks.KillAtIterHook`` (mmengine's
registry imports a dotted name it does not know). Not part of mmkp_ext.
"""
import json
import os
import os.path as osp
import signal

import torch
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import Hook


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


class KillDuringSaveHook(Hook):
    """SIGKILL the process while the checkpoint file whose name contains
    ``name`` is being written: the file is opened, half of the bytes are
    written and flushed to disk, then the process dies (the moment a power
    cut or the OOM killer would leave a partial file)."""

    def __init__(self, name: str):
        self.name = name

    def before_run(self, runner):
        original = LocalBackend.put
        name = self.name

        def put(backend, obj, filepath):
            if name in osp.basename(str(filepath)) and 'best' not in str(
                    filepath):
                with open(filepath, 'wb') as f:
                    f.write(obj[:len(obj) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                _die()
            return original(backend, obj, filepath)

        LocalBackend.put = put


class KillAtIterHook(Hook):
    """SIGKILL the process right after training iteration ``kill_at_iter``
    (1-based) has finished."""

    priority = 'LOWEST'

    def __init__(self, kill_at_iter: int):
        self.kill_at_iter = kill_at_iter

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 == self.kill_at_iter:
            _die()


class RecordHook(Hook):
    """Append one JSON line per training iteration (its losses as floats)
    and per validation (the metrics and a checksum of every predicted
    keypoint) to ``work_dir/record.jsonl``."""

    priority = 'HIGHEST'

    def _write(self, runner, entry):
        with open(osp.join(runner.work_dir, 'record.jsonl'), 'a') as f:
            f.write(json.dumps(entry) + '\n')

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self._write(runner, dict(
            iter=runner.iter + 1,
            losses={k: float(v) for k, v in outputs.items()}))

    def before_val_epoch(self, runner):
        self._checksum = 0.0

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None):
        for sample in outputs:
            kpts = sample.pred_instances.keypoints
            self._checksum += float(torch.as_tensor(kpts).double().sum())

    def after_val_epoch(self, runner, metrics=None):
        self._write(runner, dict(
            val_epoch=runner.epoch,
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            checksum=self._checksum))

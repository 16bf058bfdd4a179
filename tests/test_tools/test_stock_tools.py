"""mmpose's stock train.py / test.py on our toy config, end to end.

One tiny generated persons dataset is shared by the module. The runs are
short (one epoch of a few iterations) but real: the stock scripts parse the
config, import mmkp_ext through ``custom_imports``, train, save mmengine
checkpoints (numpy arrays in their meta), reload them for testing and for
``--resume`` under torch's safe loading, and evaluate with CocoMetric.
"""
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from _helpers import REPO_ROOT, run_python
from mmengine.runner.checkpoint import _load_checkpoint

import mmkp_ext  # noqa: F401
from mmkp_ext import compat
from mmkp_ext.datasets import make_toy_dataset
from mmkp_ext.utils import mmpose_tool_path, parse_metric

CONFIG = osp.join(
    REPO_ROOT, 'configs/soft_argmax/toy_persons/'
    'td-sa_res18-s8_1xb16-6e_toy-persons-128x96.py')


def _options(data_root, max_epochs=1):
    root = str(data_root).rstrip('/') + '/'
    opts = [f'train_cfg.max_epochs={max_epochs}', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=3',
            'default_hooks.logger.interval=1',
            f'val_evaluator.ann_file={root}annotations/val.json',
            f'test_evaluator.ann_file={root}annotations/val.json']
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={root}',
                 f'{split}_dataloader.num_workers=0',
                 f'{split}_dataloader.persistent_workers=False',
                 f'{split}_dataloader.batch_size=8']
    return opts


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_persons')
    make_toy_dataset('persons', str(root), num_images=12, seed=3,
                     val_fraction=0.25)
    return root


@pytest.fixture(scope='module')
def trained(toy_root, tmp_path_factory):
    work = tmp_path_factory.mktemp('work')
    proc = run_python(['tools/train.py', CONFIG, '--work-dir', str(work),
                       '--cfg-options', *_options(toy_root)])
    return work, proc.stdout


def test_train_saves_checkpoint_with_numpy_meta(trained):
    work, out = trained
    assert 'Epoch(train)' in out and 'Epoch(val)' in out
    assert 0.0 <= parse_metric(out) <= 1.0
    path = osp.join(work, 'epoch_1.pth')
    ckpt = _load_checkpoint(path)  # mmengine's loader, safe loading scoped
    if compat.torch_load_defaults_to_weights_only():
        # The allow-list is not process-wide: a plain safe load refuses.
        with pytest.raises(Exception, match='Weights only load failed'):
            torch.load(path, weights_only=True)
    sigmas = ckpt['meta']['dataset_meta']['sigmas']
    assert isinstance(sigmas, np.ndarray) and sigmas.shape == (17, )
    assert any(k.startswith('head.final_layer') for k in ckpt['state_dict'])


def test_stock_test_py_directly_and_via_wrapper(trained, toy_root):
    work, _ = trained
    ckpt = osp.join(work, 'epoch_1.pth')
    # The stock script itself (the documented one-liner) ...
    stock = run_python([mmpose_tool_path('test.py'), CONFIG, ckpt,
                        '--work-dir', str(work / 'test_stock'),
                        '--cfg-options', *_options(toy_root)])
    # ... and our thin wrapper give the same metric.
    wrapped = run_python(['tools/test.py', CONFIG, ckpt, '--work-dir',
                          str(work / 'test_wrap'), '--cfg-options',
                          *_options(toy_root)])
    assert parse_metric(stock.stdout) == parse_metric(wrapped.stdout)


def test_resume_continues_from_checkpoint(trained, toy_root, tmp_path):
    work, _ = trained
    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    shutil.copy(osp.join(work, 'epoch_1.pth'), resumed / 'epoch_1.pth')
    proc = run_python([
        'tools/train.py', CONFIG, '--work-dir', str(resumed), '--resume',
        str(resumed / 'epoch_1.pth'), '--cfg-options',
        *_options(toy_root, max_epochs=2)
    ])
    assert 'resumed epoch: 1' in proc.stdout, proc.stdout[-3000:]
    assert 'Epoch(train) [1]' not in proc.stdout
    assert 'Epoch(train) [2]' in proc.stdout
    assert osp.isfile(resumed / 'epoch_2.pth')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_process_cpu_distributed_training(toy_root, tmp_path):
    """mmpose's dist_train.sh (torch.distributed.launch, --launcher pytorch)
    with 2 CPU processes; the config keeps mmpose's default nccl backend,
    which the compat layer turns into gloo without CUDA."""
    work = tmp_path / 'dist'
    env = dict(os.environ, PYTHONWARNINGS='ignore', OMP_NUM_THREADS='1',
               PORT=str(_free_port()),
               PATH=osp.dirname(sys.executable) + os.pathsep +
               os.environ.get('PATH', ''))
    cmd = [
        'bash', mmpose_tool_path('dist_train.sh'), CONFIG, '2', '--work-dir',
        str(work), '--cfg-options', *_options(toy_root)
    ]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert 'Distributed launcher: pytorch' in proc.stdout, \
        proc.stdout[-3000:]
    assert 'Distributed training: True' in proc.stdout
    assert 'GPU number: 2' in proc.stdout  # mmengine's name for world size
    assert 'using the gloo backend' in proc.stdout
    ckpt = work / 'epoch_1.pth'
    assert ckpt.is_file()
    # The DDP-trained checkpoint has plain (unwrapped) keys and evaluates
    # in a single process.
    keys = _load_checkpoint(str(ckpt))['state_dict'].keys()
    assert not any(k.startswith('module.') for k in keys)
    out = run_python(['tools/test.py', CONFIG, str(ckpt), '--work-dir',
                      str(tmp_path / 'dist_test'), '--cfg-options',
                      *_options(toy_root)]).stdout
    assert 0.0 <= parse_metric(out) <= 1.0


def test_unknown_config_value_fails_clearly(toy_root, tmp_path):
    proc = run_python(['tools/train.py', CONFIG, '--work-dir',
                       str(tmp_path / 'bad'), '--cfg-options',
                       *_options(toy_root), 'model.head.alpha=-1'],
                      check=False)
    assert proc.returncode != 0
    assert 'alpha' in proc.stdout and 'ValueError' in proc.stdout


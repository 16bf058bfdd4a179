"""mmpose's stock train.py / test.py on our toy config, end to end.

One tiny generated persons dataset is shared by the module. The runs are
as short as what they check allows (one epoch of a few iterations, one
validation) but real: the stock scripts parse the config, import mmkp_ext
through ``custom_imports``, train (finite losses at every iteration, read
from mmengine's scalars.json), save mmengine checkpoints (numpy arrays in
their meta), reload them for testing (CocoMetric's names; predictions
dumped in image pixels) and for ``--resume`` under torch's safe loading,
and train with two CPU processes. Whether training learns is
tests/test_learning/'s concern.
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
from _helpers import (REPO_ROOT, check_dumped_predictions, check_metric_names,
                      check_training_scalars, load_json, read_scalars,
                      run_python, toy_run_options)
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint

import mmkp_ext  # noqa: F401
from mmkp_ext import compat
from mmkp_ext.datasets import make_toy_dataset
from mmkp_ext.utils import mmpose_tool_path, parse_metric
from mmpose.registry import MODELS

CONFIG = osp.join(
    REPO_ROOT, 'configs/soft_argmax/toy_persons/'
    'td-sa_res18-s8_1xb16-6e_toy-persons-128x96.py')


def _options(data_root, max_epochs=1):
    return [f'train_cfg.max_epochs={max_epochs}', 'train_cfg.val_interval=1',
            'default_hooks.checkpoint.interval=1',
            'default_hooks.checkpoint.max_keep_ckpts=3',
            'default_hooks.logger.interval=1'
            ] + toy_run_options(data_root, batch_size=8)


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


def test_train_saves_checkpoint_with_numpy_meta(trained, toy_root):
    work, out = trained
    assert 'Epoch(train)' in out and 'Epoch(val)' in out
    # one iteration per 8 training people (top-down samples are people),
    # SoftArgmaxHead's L1 loss
    people = len(load_json(osp.join(toy_root, 'annotations',
                                    'train.json'))['annotations'])
    check_training_scalars(work, -(-people // 8), ('loss_kpt', ))
    _, results = read_scalars(work)
    assert len(results) == 1  # one validation
    check_metric_names(results[0], 'coco')
    assert results[0]['coco/AP'] == parse_metric(out)
    path = osp.join(work, 'epoch_1.pth')
    ckpt = _load_checkpoint(path)  # mmengine's loader, safe loading scoped
    if compat.torch_load_defaults_to_weights_only():
        # The allow-list is not process-wide: a plain safe load refuses.
        with pytest.raises(Exception, match='Weights only load failed'):
            torch.load(path, weights_only=True)
    assert {'meta', 'state_dict', 'optimizer', 'message_hub',
            'param_schedulers'} <= set(ckpt)
    sigmas = ckpt['meta']['dataset_meta']['sigmas']
    assert isinstance(sigmas, np.ndarray) and sigmas.shape == (17, )
    # exactly the parameters and buffers of the config's model
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(Config.fromfile(CONFIG).model)
    assert set(ckpt['state_dict']) == set(model.state_dict())
    assert any(k.startswith('head.final_layer') for k in ckpt['state_dict'])


def test_stock_test_py_reloads_and_dumps_image_pixels(trained, toy_root):
    work, train_out = trained
    ckpt = osp.join(work, 'epoch_1.pth')
    dump = work / 'preds.pkl'
    # The stock script itself (the documented one-liner; tools/test.py, our
    # thin wrapper, runs in the other methods' stock tests). With --dump,
    # test.py turns test_evaluator into [evaluator, DumpResults] before it
    # applies --cfg-options, so the evaluator is addressed by index.
    opts = [o.replace('test_evaluator.', 'test_evaluator.0.', 1)
            for o in _options(toy_root)]
    stock = run_python([mmpose_tool_path('test.py'), CONFIG, ckpt,
                        '--work-dir', str(work / 'test_stock'), '--dump',
                        str(dump), '--cfg-options', *opts])
    # same checkpoint, same images: the validation's metric again
    assert parse_metric(stock.stdout) == parse_metric(train_out)
    cfg = Config.fromfile(CONFIG)
    check_dumped_predictions(
        dump, osp.join(toy_root, 'annotations', 'val.json'), 17,
        topdown_input_size=cfg.codec['input_size'])


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
    state = _load_checkpoint(str(ckpt))['state_dict']
    assert not any(k.startswith('module.') for k in state)
    # ... and loads strictly into the single-process model (test.py's
    # loading is checked above).
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(Config.fromfile(CONFIG).model)
    model.load_state_dict(state, strict=True)


def test_unknown_config_value_fails_clearly(toy_root, tmp_path):
    proc = run_python(['tools/train.py', CONFIG, '--work-dir',
                       str(tmp_path / 'bad'), '--cfg-options',
                       *_options(toy_root), 'model.head.alpha=-1'],
                      check=False)
    assert proc.returncode != 0
    assert 'alpha' in proc.stdout and 'ValueError' in proc.stdout


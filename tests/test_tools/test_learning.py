"""Training learns: mmpose's stock train.py on a small toy persons split
reaches a clearly non-trivial coco/AP within about a minute, and the trained
features decoded by SoftArgmaxHead (stock test.py, soft-argmax config, same
checkpoint) keep it.

The recipe is ``td-hm_res18-s8_1xb16-10e_toy-persons-64x48.py`` (ResNet-18
stages 1-2 from scratch, 64x48 input, 10 epochs = 240 iterations) on 200
generated images of 160 px (160 train / 40 val images, 377 / 88 persons).
The runs use one thread: the results do not depend on the core count, and
another busy process on a 2-core machine costs one thread little, while
two OpenMP threads then spin-wait for each other (one such run of train.py
took 419 s instead of 41 s). Measured on the 2-core CPU
machine (coco/AP on the val split with flip test; train.py wall time
including its start-up and validation; test.py takes about 6.5 s):

==============================  ===========  ===============  ===========
run                             heatmap AP   soft-argmax AP   train.py
==============================  ===========  ===============  ===========
data seed 1, training seed 0    0.222650     0.162836         41 s
data seed 1, training seed 1    0.245473     0.174270         42 s
data seed 1, training seed 2    0.215184     0.156552         41 s
data seed 2, training seed 0    0.187188     0.127126         38 s
data seed 1, lr = 0             0.000000     0.000000         59 s (busy)
==============================  ===========  ===============  ===========

The test uses data seed 1 and the config's training seed 0. ``lr = 0``
(``--cfg-options optim_wrapper.optimizer.lr=0``) is a model whose head
never learns to use its features: AP 0. The thresholds sit well between.
"""
import os.path as osp
import time

import pytest
from _helpers import REPO_ROOT, run_python

from mmkp_ext.datasets import make_toy_dataset
from mmkp_ext.utils import parse_metric, parse_metric_values

CFG_DIR = osp.join(REPO_ROOT, 'configs/soft_argmax/toy_persons')
HEATMAP_CONFIG = osp.join(CFG_DIR,
                          'td-hm_res18-s8_1xb16-10e_toy-persons-64x48.py')
SOFTARGMAX_CONFIG = osp.join(CFG_DIR,
                             'td-sa_res18-s8_1xb16-4e_toy-persons-64x48.py')
NUM_EPOCHS = 10  # the heatmap config's max_epochs

#: coco/AP the trained heatmap model must reach on the val split (measured
#: 0.19-0.25 over data and training seeds, 0 without learning).
MIN_HEATMAP_AP = 0.12
#: coco/AP of the same checkpoint decoded by SoftArgmaxHead (measured
#: 0.13-0.17, 0 without learning).
MIN_SOFTARGMAX_AP = 0.08


#: One thread (see the module docstring).
_ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')


def _options(data_root):
    root = str(data_root).rstrip('/') + '/'
    opts = [
        f'val_evaluator.ann_file={root}annotations/val.json',
        f'test_evaluator.ann_file={root}annotations/val.json'
    ]
    for split in ('train', 'val', 'test'):
        # Loading in the main process: worker start-up costs more than the
        # small images take to load.
        opts += [
            f'{split}_dataloader.dataset.data_root={root}',
            f'{split}_dataloader.num_workers=0',
            f'{split}_dataloader.persistent_workers=False'
        ]
    return opts


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp('toy_persons_learning')
    info = make_toy_dataset('persons', str(root), num_images=200, seed=1,
                            image_size=160)
    assert (info['num_train_instances'], info['num_val_instances']) == (377,
                                                                        88)
    work = tmp_path_factory.mktemp('learning_work')
    start = time.time()
    proc = run_python(['tools/train.py', HEATMAP_CONFIG, '--work-dir',
                       str(work), '--cfg-options', *_options(root)],
                      env=_ENV)
    print(f'train.py took {time.time() - start:.1f} s')
    return root, work, proc.stdout


def test_stock_train_py_learns(trained):
    _, work, out = trained
    ap = parse_metric(out, 'coco/AP')
    print(f'heatmap model: coco/AP {ap:.4f}')
    assert ap >= MIN_HEATMAP_AP, out[-3000:]
    # The loss fell well below its start, not just noise around it.
    losses = parse_metric_values(out, 'loss')
    assert len(losses) >= 2 * NUM_EPOCHS
    assert min(losses[-3:]) < 0.7 * max(losses[:3]), losses
    assert osp.isfile(osp.join(work, f'epoch_{NUM_EPOCHS}.pth'))


def test_soft_argmax_head_decodes_the_trained_features(trained, tmp_path):
    root, work, _ = trained
    ckpt = osp.join(work, f'epoch_{NUM_EPOCHS}.pth')
    proc = run_python(['tools/test.py', SOFTARGMAX_CONFIG, ckpt,
                       '--work-dir', str(tmp_path), '--cfg-options',
                       *_options(root)], env=_ENV)
    ap = parse_metric(proc.stdout, 'coco/AP')
    print(f'soft-argmax head: coco/AP {ap:.4f}')
    assert ap >= MIN_SOFTARGMAX_AP, proc.stdout[-3000:]

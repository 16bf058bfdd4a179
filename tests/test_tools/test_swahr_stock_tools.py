"""mmpose's stock train.py / test.py on the SWAHR toy config, bottom-up,
on generated toy persons AND the real COCO fixture (``../shared/data/coco``).

Two subprocess runs keep the budget: train.py trains on the concatenation
of a 10-image toy persons set and the 4 real COCO images (mmengine's
``ConcatDataset``; both use the COCO keypoint layout) for one epoch of two
iterations and validates on the real COCO fixture at the end; test.py
then evaluates the last checkpoint on the toy val split and dumps its
predictions. Checked:
every iteration logs finite heatmap, scale and AE losses of both
resolutions, the scale branches' zero-initialised last convolutions moved
(gradients reach them), both metrics are printed in [0, 1], and the dumped
predictions keep mmpose's bottom-up layout in image pixels. The decoder's
keypoint threshold is lowered so that people are decoded after so few
iterations (an empty result would skip the metric's real work). Whether
SWAHR learns is tests/test_learning/'s concern.
"""
import math
import os.path as osp
import pickle
import re
import textwrap

import numpy as np
import pytest
from _helpers import (REPO_ROOT, check_metric_names, check_training_scalars,
                      load_json, read_scalars, run_python, shared_data_dir)
from mmengine.runner.checkpoint import _load_checkpoint

import mmkp_ext  # noqa: F401
from mmkp_ext.datasets import make_toy_dataset
from mmkp_ext.utils import parse_metric_values

CONFIG = osp.join(
    REPO_ROOT, 'configs/swahr/toy_persons/'
    'swahr_hrnet-w16-tiny_1xb16-12e_toy-persons-128x128.py')
COCO = osp.join(shared_data_dir(), 'coco')
LOSSES = ('loss_heatmap_0', 'loss_heatmap_1', 'loss_scale_0', 'loss_scale_1',
          'loss_pull', 'loss_push')
ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')

CHILD = '''
_base_ = [{base!r}]
train_cfg = dict(max_epochs=1, val_interval=1)
# a few iterations leave heatmaps below any sensible threshold: keep every
# candidate so that grouping, the image mapping and the metric see people
model = dict(head=dict(decoder=dict(decode_keypoint_thr=-1.0)))
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=1, max_keep_ckpts=1, save_best=None))
toy_train = dict(
    type='CocoDataset',
    data_root={toy!r},
    data_mode='bottomup',
    metainfo=dict(from_file='configs/_base_/datasets/coco.py'),
    ann_file='annotations/train.json',
    data_prefix=dict(img='images/train/'),
    pipeline={{{{_base_.train_pipeline}}}})
coco_train = dict(
    type='CocoDataset',
    data_root='',
    data_mode='bottomup',
    ann_file={coco_ann!r},
    data_prefix=dict(img={coco!r}),
    pipeline={{{{_base_.train_pipeline}}}})
train_dataloader = dict(
    _delete_=True,
    batch_size=6,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='ConcatDataset', datasets=[toy_train, coco_train]))
val_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root='',
        metainfo=None,
        ann_file={coco_ann!r},
        data_prefix=dict(img={coco!r})))
val_evaluator = dict(ann_file={coco_ann!r})
test_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type='CocoDataset',
        data_root={toy!r},
        data_mode='bottomup',
        metainfo=dict(from_file='configs/_base_/datasets/coco.py'),
        ann_file='annotations/val.json',
        data_prefix=dict(img='images/val/'),
        test_mode=True,
        pipeline={{{{_base_.val_pipeline}}}}))
test_evaluator = dict(
    type='CocoMetric',
    ann_file={toy_val!r},
    nms_mode='none',
    score_mode='bbox')
'''


@pytest.mark.skipif(
    not osp.isfile(osp.join(COCO, 'test_coco.json')),
    reason=f'real COCO fixture not found under {COCO}')
def test_train_and_test_bottom_up_on_toy_and_real_coco(tmp_path):
    toy = tmp_path / 'toy'
    summary = make_toy_dataset(
        'persons', str(toy), num_images=10, seed=5, val_fraction=0.3,
        image_size=128)
    child = tmp_path / 'swahr_toy_coco.py'
    child.write_text(
        textwrap.dedent(
            CHILD.format(
                base=CONFIG,
                toy=str(toy) + '/',
                toy_val=summary['val_ann_file'],
                coco=COCO + '/',
                coco_ann=osp.join(COCO, 'test_coco.json'))))
    work = tmp_path / 'work'
    train = run_python(
        ['tools/train.py', str(child), '--work-dir',
         str(work)], env=ENV).stdout

    # 7 toy + 4 COCO images, batch 6 -> 2 iterations, one epoch
    lines = [ln for ln in train.splitlines() if 'Epoch(train)' in ln]
    assert len(lines) == 2, train[-3000:]
    check_training_scalars(work, 2, LOSSES)
    check_metric_names(read_scalars(work)[1][0], 'coco')
    for line in lines:
        for name in LOSSES:
            found = re.search(rf'\b{name}: (\S+)', line)
            assert found, (name, line)
            assert math.isfinite(float(found.group(1))), line
    val_ap = parse_metric_values(train, 'coco/AP')
    assert len(val_ap) == 1 and 0.0 <= val_ap[0] <= 1.0

    ckpt = work / 'epoch_1.pth'
    state = _load_checkpoint(str(ckpt))['state_dict']
    for r in (0, 1):
        # the depthwise 9x9 conv started at zero: gradients reached it
        assert state[f'head.scale_layers.{r}.3.weight'].abs().max() > 0
        assert state[f'head.scale_layers.{r}.3.weight'].shape == (17, 1, 9,
                                                                 9)

    dump = tmp_path / 'preds.pkl'
    test = run_python([
        'tools/test.py',
        str(child),
        str(ckpt), '--work-dir',
        str(tmp_path / 'test'), '--dump',
        str(dump)
    ],
                      env=ENV).stdout
    test_ap = parse_metric_values(test, 'coco/AP')
    assert len(test_ap) == 1 and 0.0 <= test_ap[0] <= 1.0, test[-2000:]

    with open(dump, 'rb') as f:
        preds = pickle.load(f)
    assert sum(len(p['pred_instances']['keypoints']) for p in preds) > 0
    val = load_json(summary['val_ann_file'])
    assert sorted(p['img_id'] for p in preds) == sorted(
        i['id'] for i in val['images'])
    for p in preds:
        inst = p['pred_instances']
        kpts = np.asarray(inst['keypoints'])
        assert kpts.ndim == 3 and kpts.shape[1:] == (17, 2)
        assert np.asarray(inst['keypoint_scores']).shape == kpts.shape[:2]
        assert np.asarray(inst['bbox_scores']).shape == kpts.shape[:1]
        # image pixels of the 128x128 toy image (small margin for the
        # sub-pixel shift at the border)
        assert np.all((kpts > -4) & (kpts < 132))

"""Real COCO data (../shared/data/coco: 4 val2017 images, 14 people).

* CocoMetric reports AP = 1.0 when the ground truth is fed as predictions
  (and less when the predictions are moved), on mmpose's CocoDataset.
* mmpose's stock test.py runs our COCO soft-argmax config end to end with
  ground-truth boxes, and the dumped predictions lie in the person boxes.
"""
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from _helpers import REPO_ROOT, run_python, shared_data_dir

import mmkp_ext  # noqa: F401

COCO_DIR = osp.join(shared_data_dir(), 'coco')
ANN = osp.join(COCO_DIR, 'test_coco.json')
CONFIG = osp.join(REPO_ROOT, 'configs/soft_argmax/coco/'
                  'td-sa_hrnet-w32_8xb64-20e_coco-256x192.py')

pytestmark = pytest.mark.skipif(
    not osp.isfile(ANN),
    reason=f'real COCO fixtures not found at {COCO_DIR} (set '
    'MMKP_SHARED_DATA to the shared data folder to run these tests)')


def _coco_dataset():
    from mmpose.datasets import CocoDataset
    return CocoDataset(
        data_root=COCO_DIR + '/', ann_file='test_coco.json',
        data_prefix=dict(img=''), data_mode='topdown', test_mode=True,
        pipeline=[])


def _evaluate(dataset, offset_px):
    from mmpose.evaluation import CocoMetric
    metric = CocoMetric(ann_file=ANN)
    metric.dataset_meta = dataset.metainfo
    samples = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        kpts = info['keypoints'].astype(np.float64) + offset_px
        samples.append(dict(
            id=info['id'], img_id=info['img_id'], category_id=1,
            pred_instances=dict(keypoints=kpts,
                                keypoint_scores=np.ones(kpts.shape[:2])),
            gt_instances=dict(bbox_scores=np.ones(1))))
    metric.process([], samples)
    return metric.evaluate(size=len(samples))


def test_coco_metric_gives_ap_1_for_ground_truth():
    dataset = _coco_dataset()
    # 14 annotations, 2 without any labelled keypoint (dropped by mmpose).
    assert len(dataset) == 12
    assert _evaluate(dataset, 0.0)['coco/AP'] == pytest.approx(1.0)
    # Moving every keypoint by 8 px must cost AP: the metric really compares.
    assert _evaluate(dataset, 8.0)['coco/AP'] < 0.9


def test_stock_test_py_with_gt_boxes(tmp_path):
    from mmengine.config import Config
    from mmpose.registry import MODELS
    cfg = Config.fromfile(CONFIG)
    model = MODELS.build(cfg.model)
    ckpt = tmp_path / 'random_init.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)

    dump = tmp_path / 'preds.pkl'
    data = 'test_dataloader.dataset.'
    proc = run_python([
        'tools/test.py', CONFIG, str(ckpt), '--work-dir',
        str(tmp_path / 'work'), '--dump', str(dump), '--cfg-options',
        f'{data}data_root={COCO_DIR}/', f'{data}ann_file=test_coco.json',
        f'{data}data_prefix.img=', f'{data}bbox_file=None',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        'test_dataloader.batch_size=14',
        # --dump turns test_evaluator into a list before the options merge
        f'test_evaluator.0.ann_file={ANN}'
    ])
    assert 'coco/AP:' in proc.stdout, proc.stdout[-3000:]

    with open(dump, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 12
    for pred in preds:
        kpts = np.asarray(pred['pred_instances']['keypoints'])
        scores = np.asarray(pred['pred_instances']['keypoint_scores'])
        assert kpts.shape == (1, 17, 2) and scores.shape == (1, 17)
        assert np.isfinite(kpts).all()
        assert ((scores >= 0) & (scores <= 1)).all()
        # Predictions are mapped back from the 256x192 crop of the GT box
        # (padded by 1.25): they must lie inside that crop in image pixels.
        center = np.asarray(pred['input_center']).reshape(2)
        scale = np.asarray(pred['input_scale']).reshape(2)
        lo, hi = center - scale / 2 - 1, center + scale / 2 + 1
        assert ((kpts[0] >= lo) & (kpts[0] <= hi)).all()

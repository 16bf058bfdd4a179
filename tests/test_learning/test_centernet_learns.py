"""Grouped CenterNet learns: a tiny DLA-34 layout (widths 4-128) with the
DLA-up neck and CenterNetPoseHead (centre heatmap per category, offsets,
box size, keypoint regression, keypoint heatmaps with the masked loss) on
GroupedCenterNetLabel fits 12 generated 64 px toy-fashion images (3
garment categories on a 32-keypoint list; 64x64 input, 16x16 outputs).
Predictions are decoded with the codec's Gaussian rescoring and scored by
MultiCategoryCocoMetric (per-category keypoint ranges) on the same images.

Measured with ``OMP_NUM_THREADS=1 python benchmarks/learning_seeds.py
--tests centernet --seeds 0 1 2 3 4`` (80 steps, Adam 5e-3, full batch
of the 12 images; CPU seconds of the run, data preparation, training and
evaluation; wall times on the shared 2-core machine under load 12-15 were
8-13x longer and say nothing):

=============  =========  ===============  =======
run            loss drop  toy_fashion/AP   CPU
=============  =========  ===============  =======
seed 0         0.948      0.926            6.6 s
seed 1         0.954      0.954            5.6 s
seed 2         0.949      0.929            5.7 s
seed 3         0.934      0.839            6.5 s
seed 4         0.939      0.909            6.2 s
seed 0, lr=0   0.000      0.000            2.4 s
=============  =========  ===============  =======

Thresholds: loss drop >= 0.8 and AP >= 0.5, i.e. 0.34 AP below the worst
seed and 0.5 above the control. (At 120 steps, the budget until this stop:
AP 0.971 / 0.994 / 0.976 at seeds 0-2.)
"""
from _learning import (PREPROCESSOR, bottomup_batches, evaluate, fit,
                       learning_tests)

STEPS, LR = 80, 5e-3
#: The loss must fall by at least this fraction (mean of the last 3 steps
#: against the first 3).
MIN_LOSS_DROP = 0.8
#: toy_fashion/AP on the fitted images that the trained model must reach
#: and the lr=0 control must stay below.
MIN_AP = 0.5

INPUT = (64, 64)
CODEC = dict(type='GroupedCenterNetLabel', input_size=INPUT,
             heatmap_size=(16, 16), num_keypoints=32,
             category_keypoints='toy_fashion', decode_mode='rescore',
             rescore_sigma=3.0, topk=20)
CHANNELS = (4, 8, 16, 32, 64, 128)
MODEL = dict(
    type='CenterNetPoseEstimator',
    data_preprocessor=PREPROCESSOR,
    backbone=dict(type='DLANet', depth=34, channels=CHANNELS),
    neck=dict(type='DLAUpNeck', in_channels=CHANNELS, first_level=2,
              out_channels=16),
    head=dict(type='CenterNetPoseHead', in_channels=16, num_keypoints=32,
              category_keypoints='toy_fashion', head_conv=16,
              masked_keypoint_loss=True, decoder=CODEC),
    test_cfg=dict(flip_test=False))


def prepare(info):
    """(metainfo, training batches, prediction batches) of the fitted
    images."""
    return bottomup_batches(
        info, CODEC, 'ToyFashionDataset', test_meta_keys=None,
        extra_train=[dict(type='CenterNetFilterInstances',
                          category_keypoints='toy_fashion')])


def score(model, batches, info, meta):
    """toy_fashion/AP (MultiCategoryCocoMetric) of ``model`` on the fitted
    images."""
    return evaluate(model, batches, dict(
        type='MultiCategoryCocoMetric', ann_file=info['train_ann_file'],
        category_keypoints='toy_fashion', prefix='toy_fashion'),
        meta)['toy_fashion/AP']


def run(info, seed=0, lr=LR, steps=STEPS):
    """Train with ``seed`` / ``lr``; return (FitResult, toy_fashion/AP on
    the training images)."""
    meta, train, test = prepare(info)
    result = fit(MODEL, train, steps, lr, seed=seed)
    return result, score(result.model, test, info, meta)


# DATA (12 toy-fashion images of 64 px), the module fixture ``info`` and
# the two tests (trained run passes both thresholds; the lr=0 control stays
# below them)
learning_tests(globals(), 'grouped_centernet', ('fashion', 64, 12), run,
               MIN_LOSS_DROP, MIN_AP, metric='toy_fashion/AP',
               subject='toy_fashion')

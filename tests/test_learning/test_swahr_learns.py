"""Bottom-up HigherHRNet and SWAHR learn: a tiny HRNet (widths 8-64, one
block per branch) with HigherHRNetHead (1/4 and 1/2 resolution heatmaps,
associative-embedding tags, HigherHRNetAELoss) on MultiResolutionAELabel
fits 12 generated 64 px toy-persons images (64x64 input, 16x16 and 32x32
outputs), in two variants:

* plain HigherHRNet: SWAHRLoss with both adaptations off (the authors'
  heatmap MSE);
* SWAHR: the scale branches (``with_scale_branch=True``) and SWAHRLoss
  (scale-adaptive targets, weight-adaptive loss).

Predictions go through the head's AE grouping and are scored by CocoMetric
(bottom-up: no boxes given, ``nms_mode='none'``, ``score_mode='bbox'``) on
the same images.

MEASURED
"""
import pytest
from _learning import (COCO_METAINFO, PREPROCESSOR, bottomup_batches,
                       coco_ap, fit)

STEPS, LR = 200, 5e-3
#: The loss must fall by at least this fraction (mean of the last 3 steps
#: against the first 3).
MIN_LOSS_DROP = 0.7
#: coco/AP on the fitted images that the trained model must reach and the
#: lr=0 control must stay below.
MIN_AP = 0.02

INPUT = (64, 64)
CODEC = dict(
    type='MultiResolutionAELabel', input_size=INPUT,
    heatmap_sizes=[(16, 16), (32, 32)], sigma=2,
    decode_keypoint_order=[0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13,
                           14, 15, 16],
    decode_keypoint_thr=0.1, decode_topk=20, decode_max_instances=20)


def _stage(branches, channels):
    return dict(num_modules=1, num_branches=branches, block='BASIC',
                num_blocks=(1, ) * branches, num_channels=channels)


def model_cfg(swahr):
    """The plain HigherHRNet (``swahr=False``) or SWAHR model."""
    loss = dict(type='SWAHRLoss', gamma=0.01, scale_loss_weight=1.0) \
        if swahr else dict(type='SWAHRLoss', scale_adaptive=False,
                           weight_adaptive=False)
    return dict(
        type='BottomupPoseEstimator',
        data_preprocessor=PREPROCESSOR,
        backbone=dict(type='HRNet', in_channels=3, extra=dict(
            stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK',
                        num_blocks=(1, ), num_channels=(16, )),
            stage2=_stage(2, (8, 16)),
            stage3=_stage(3, (8, 16, 32)),
            stage4=_stage(4, (8, 16, 32, 64)))),
        head=dict(type='HigherHRNetHead', in_channels=8, num_keypoints=17,
                  num_deconv_layers=1, deconv_channels=8,
                  num_basic_blocks=1, with_scale_branch=swahr,
                  heatmap_loss=loss,
                  tag_loss=dict(type='HigherHRNetAELoss'), decoder=CODEC),
        test_cfg=dict(flip_test=False, align_corners=False))


def prepare(info):
    """(metainfo, training batches, prediction batches) of the fitted
    images."""
    return bottomup_batches(info, CODEC, 'CocoDataset',
                            metainfo=COCO_METAINFO,
                            extra_train=[dict(type='BottomupIgnoreMask')])


def score(model, batches, info, meta):
    """coco/AP of ``model`` on the fitted images (bottom-up)."""
    return coco_ap(model, batches, info, meta, nms_mode='none',
                   score_mode='bbox')


def run(info, seed=0, lr=LR, steps=STEPS, swahr=True):
    """Train with ``seed`` / ``lr``; return (FitResult, coco/AP on the
    training images)."""
    meta, train, test = prepare(info)
    result = fit(model_cfg(swahr), train, steps, lr, seed=seed)
    return result, score(result.model, test, info, meta)


#: What benchmarks/learning_seeds.py measures (both variants).
VARIANTS = [dict(swahr=False), dict(swahr=True)]


def DATA(toy_dataset):
    """The fitted images: 12 toy-persons images of 64 px (39 people)."""
    return toy_dataset('persons', 64, 12)


@pytest.fixture(scope='module')
def info(toy_dataset):
    return DATA(toy_dataset)


@pytest.mark.parametrize('swahr', [False, True], ids=['higherhrnet',
                                                      'swahr'])
def test_bottomup_fits_toy_persons(info, swahr):
    result, ap = run(info, swahr=swahr)
    print(f'loss {result.losses[0]:.5f} -> {result.losses[-1]:.5f}, '
          f'coco/AP {ap:.3f}')
    assert result.loss_drop() >= MIN_LOSS_DROP, result.losses
    assert ap >= MIN_AP


@pytest.mark.parametrize('swahr', [False, True], ids=['higherhrnet',
                                                      'swahr'])
def test_bottomup_lr0_control_stays_below(info, swahr):
    result, ap = run(info, lr=0.0, swahr=swahr)
    print(f'lr=0: coco/AP {ap:.3f}')
    assert ap < MIN_AP
    assert result.loss_drop() < MIN_LOSS_DROP

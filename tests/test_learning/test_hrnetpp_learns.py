"""HRNet++ learns: a tiny HRNetPlus (SE residual units, average-pool
downsampling, cross-module skips; widths 8-64, one block per branch) with
the SubPixelFusion neck and SoftArgmaxHead trained directly with the L1
loss on RegressionLabel coordinates (soft-argmax regression from scratch)
fits the people of 12 generated 64 px toy-persons images (top-down, 64x64
crops of the ground-truth boxes).

Measured with ``OMP_NUM_THREADS=1 python benchmarks/learning_seeds.py
--tests hrnetpp`` (120 steps, Adam 5e-3, full batch of the 39 people;
CPU seconds of the run: data preparation,
training and evaluation; wall times on the shared 2-core machine under load
12-15 were 7-13x longer and say nothing):

=============  =========  =======  =======
run            loss drop  coco/AP  CPU
=============  =========  =======  =======
seed 0         0.940      0.710    12.2 s
seed 1         0.931      0.685    11.9 s
seed 2         0.942      0.756    11.7 s
seed 0, lr=0   0.000      0.000    5.0 s
=============  =========  =======  =======

Thresholds: loss drop >= 0.7 and AP >= 0.3, i.e. 0.385 AP below the worst
seed and 0.3 above the control.
"""
import pytest
from _learning import PREPROCESSOR, coco_ap, fit, topdown_batches

STEPS, LR = 120, 5e-3
#: The loss must fall by at least this fraction (mean of the last 3 steps
#: against the first 3).
MIN_LOSS_DROP = 0.7
#: coco/AP on the fitted images that the trained model must reach and the
#: lr=0 control must stay below.
MIN_AP = 0.3

CODEC = dict(type='RegressionLabel', input_size=(64, 64))


def _stage(branches, channels):
    return dict(num_modules=1, num_branches=branches, block='BASIC',
                num_blocks=(1, ) * branches, num_channels=channels)


MODEL = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=PREPROCESSOR,
    backbone=dict(
        type='HRNetPlus', in_channels=3, se_ratio=4,
        avg_pool_downsample=True, cross_module_skips=True,
        extra=dict(
            stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK',
                        num_blocks=(1, ), num_channels=(16, )),
            stage2=_stage(2, (8, 16)),
            stage3=_stage(3, (8, 16, 32)),
            stage4=dict(_stage(4, (8, 16, 32, 64)),
                        multiscale_output=True))),
    neck=dict(type='SubPixelFusion', in_channels=(8, 16, 32, 64)),
    head=dict(type='SoftArgmaxHead', in_channels=16, num_joints=17,
              alpha=60.0, loss=dict(type='L1Loss', use_target_weight=True),
              decoder=CODEC),
    test_cfg=dict(flip_test=False))


def prepare(info):
    """(metainfo, training batches, prediction batches) of the fitted
    people (top-down crops with the codec's targets)."""
    meta, batches = topdown_batches(info, CODEC)
    return meta, batches, batches


def score(model, batches, info, meta):
    """coco/AP of ``model`` on the fitted images."""
    return coco_ap(model, batches, info, meta)


def run(info, seed=0, lr=LR, steps=STEPS):
    """Train with ``seed`` / ``lr``; return (FitResult, coco/AP on the
    training images)."""
    meta, train, test = prepare(info)
    result = fit(MODEL, train, steps, lr, seed=seed)
    return result, score(result.model, test, info, meta)


def DATA(toy_dataset):
    """The fitted images: 12 toy-persons images of 64 px (39 people)."""
    return toy_dataset('persons', 64, 12)


@pytest.fixture(scope='module')
def info(toy_dataset):
    return DATA(toy_dataset)


def test_hrnetpp_soft_argmax_fits_toy_persons(info):
    result, ap = run(info)
    print(f'loss {result.losses[0]:.5f} -> {result.losses[-1]:.5f}, '
          f'coco/AP {ap:.3f}')
    assert result.loss_drop() >= MIN_LOSS_DROP, result.losses
    assert ap >= MIN_AP


def test_hrnetpp_lr0_control_stays_below(info):
    result, ap = run(info, lr=0.0)
    print(f'lr=0: coco/AP {ap:.3f}')
    assert ap < MIN_AP
    assert result.loss_drop() < MIN_LOSS_DROP

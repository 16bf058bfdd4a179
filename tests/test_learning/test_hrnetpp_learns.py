"""HRNet++ learns: a tiny HRNetPlus (SE residual units, average-pool
downsampling, cross-module skips; widths 8-64, one block per branch) with
the SubPixelFusion neck and SoftArgmaxHead trained directly with the L1
loss on RegressionLabel coordinates (soft-argmax regression from scratch)
fits the people of 12 generated 64 px toy-persons images (top-down, 64x64
crops of the ground-truth boxes).

Measured with ``OMP_NUM_THREADS=1 python benchmarks/learning_seeds.py
--tests hrnetpp --seeds 0 1 2 3 4`` (80 steps, Adam 5e-3, full batch of
the 39 people; CPU seconds of the run: data preparation,
training and evaluation; wall times on the shared 2-core machine under load
12-15 were 7-13x longer and say nothing):

=============  =========  =======  =======
run            loss drop  coco/AP  CPU
=============  =========  =======  =======
seed 0         0.928      0.598    8.5 s
seed 1         0.910      0.564    7.9 s
seed 2         0.919      0.635    7.8 s
seed 3         0.908      0.579    7.7 s
seed 4         0.912      0.487    8.5 s
seed 0, lr=0   0.000      0.000    3.3 s
=============  =========  =======  =======

Thresholds: loss drop >= 0.7 and AP >= 0.3, i.e. 0.19 AP below the worst
seed and 0.3 above the control. (At 120 steps, the budget until this stop:
AP 0.710 / 0.685 / 0.756 at seeds 0-2.)
"""
from _learning import PREPROCESSOR, topdown_learning_module

STEPS, LR = 80, 5e-3
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

# prepare / score / run / DATA (read by benchmarks/learning_seeds.py), the
# module fixture ``info`` and the two tests (trained run passes both
# thresholds; the lr=0 control stays below them)
topdown_learning_module(globals(), 'hrnetpp_soft_argmax', MODEL, CODEC,
                        STEPS, LR, MIN_LOSS_DROP, MIN_AP)

# Soft-gated hourglass / U-Net hybrid (SoftGatedHourglass) on the generated
# toy persons dataset: 2 stacks of width 64, 2 poolings per hourglass (64x48
# input -> 16x12 maps at stride 4 -> 4x3 at the bottom), per-channel gates,
# concat fusion; mmpose's CPMHead applies KeypointMSELoss to every stack's
# heatmaps (intermediate supervision). Small enough for the CI tests and
# `make demo-softgated` on a CPU:
#   python tools/dataset_converters/make_toy_dataset.py --kind persons --out data/toy_persons
#   python tools/train.py configs/soft_gated/toy_persons/td-hm_softgated-hg2-c64_1xb16-10e_toy-persons-64x48.py
# The comparison configs of docs/benchmarks.md (about 7.5M parameters each)
# inherit this one.
# Runtime (seed 0, CPU DDP wrapper) and data: configs/_base_/.
_base_ = [
    '../../_base_/cpu_runtime.py',
    '../../_base_/datasets/toy_persons_topdown.py'
]

max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)

optim_wrapper = dict(optimizer=dict(type='Adam', lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=10, start_factor=0.1,
         by_epoch=False),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5,
         begin=0, end=max_epochs, by_epoch=True),
]
auto_scale_lr = dict(base_batch_size=16)

codec = dict(
    type='MSRAHeatmap', input_size=(48, 64), heatmap_size=(12, 16),
    sigma=1.0)

num_stacks = 2
model = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='SoftGatedHourglass',
        num_stacks=num_stacks,
        channels=64,
        depth=2,
        num_keypoints=17,
        stem_channels=(32, 64),
        fusion='concat',
        gate='channel',
        gate_init=0.0),
    # The backbone already outputs every stack's heatmaps: the head only
    # applies the loss per stack and decodes the last one.
    head=dict(
        type='CPMHead',
        in_channels=17,
        out_channels=17,
        num_stages=num_stacks,
        deconv_out_channels=None,
        final_layer=None,
        loss=dict(type='KeypointMSELoss', use_target_weight=True),
        decoder=codec),
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=True))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs')
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs')
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader

default_hooks = dict(checkpoint=dict(interval=max_epochs))

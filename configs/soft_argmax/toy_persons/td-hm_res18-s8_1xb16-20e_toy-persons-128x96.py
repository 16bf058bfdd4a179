# HRNet++ recipe, stage 1: a heatmap model (MSE on Gaussian heatmaps, argmax
# decoding with the quarter-pixel shift), here with mmpose's HeatmapHead on a
# small ResNet-18 (first two stages, stride 8, one deconvolution -> stride 4)
# on the generated toy persons dataset. Stage 2 (soft-argmax fine-tuning) is
# td-sa_res18-s8_1xb16-6e_toy-persons-128x96.py. Both train on a CPU in
# minutes (`make demo` runs them in turn).
#   python tools/dataset_converters/make_toy_dataset.py --kind persons --out data/toy_persons
#   python tools/train.py configs/soft_argmax/toy_persons/td-hm_res18-s8_1xb16-20e_toy-persons-128x96.py
# Runtime (seed 0, CPU DDP wrapper) and data: configs/_base_/.
_base_ = [
    '../../_base_/cpu_runtime.py',
    '../../_base_/datasets/toy_persons_topdown.py'
]

max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=5)

optim_wrapper = dict(optimizer=dict(type='Adam', lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=100, start_factor=0.01,
         by_epoch=False),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=2e-5,
         begin=0, end=max_epochs, by_epoch=True),
]
auto_scale_lr = dict(base_batch_size=16)

codec = dict(
    type='MSRAHeatmap', input_size=(96, 128), heatmap_size=(24, 32),
    sigma=1.5)

model = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=18,
        num_stages=2,
        strides=(1, 2),
        dilations=(1, 1),
        out_indices=(1, ),
    ),
    head=dict(
        type='HeatmapHead',
        in_channels=128,
        out_channels=17,
        deconv_out_channels=(64, ),
        deconv_kernel_sizes=(4, ),
        loss=dict(type='KeypointMSELoss', use_target_weight=True),
        decoder=codec),
    test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=True))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomBBoxTransform', rotate_factor=30.0),
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

default_hooks = dict(
    checkpoint=dict(interval=5, save_best='coco/AP', rule='greater'))

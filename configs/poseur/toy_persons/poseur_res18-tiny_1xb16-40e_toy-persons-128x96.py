# A tiny Poseur for the generated toy persons dataset, trainable on a CPU in
# minutes (`make demo-poseur`) and used by the tests: ResNet-18 layout with
# 16 base channels (4 levels: 16, 32, 64, 128 channels at strides 4-32) ->
# ChannelMapper (1x1 conv + GN, 64) -> PoseurHead with 2 decoder layers of
# width 64 (4 heads, FFN 256), EMSDA, 3 noisy query groups, RLE losses.
#   python tools/dataset_converters/make_toy_dataset.py --kind persons --out data/toy_persons
#   python tools/train.py configs/poseur/toy_persons/poseur_res18-tiny_1xb16-40e_toy-persons-128x96.py
# This config trains 40 epochs; `make demo-poseur` stops it after 30 (its
# --epochs default) with train_cfg.max_epochs=30, which leaves the cosine
# schedule 40 epochs long (the run ends at about 0.15 x lr).
# Runtime (seed 0, CPU DDP wrapper) and data: configs/_base_/.
_base_ = [
    '../../_base_/cpu_runtime.py',
    '../../_base_/datasets/toy_persons_topdown.py'
]

max_epochs = 40
train_cfg = dict(max_epochs=max_epochs, val_interval=10)

# The paper's optimiser (AdamW, weight decay 1e-4, x0.1 on the sampling
# offsets) with a short warm-up and a cosine decay instead of the steps.
# lr 3e-3 and no dropout learn much faster at this size (make demo-poseur,
# 30 epochs on 200 images: coco/AP 0.110 vs 0.021 with lr 1e-3, dropout 0.1).
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=3e-3, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={'sampling_offsets': dict(lr_mult=0.1)}))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=100, start_factor=0.01,
         by_epoch=False),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5,
         begin=0, end=max_epochs, by_epoch=True),
]
auto_scale_lr = dict(base_batch_size=16)

codec = dict(type='RegressionLabel', input_size=(96, 128))
embed_dims = 64

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
        stem_channels=16,
        base_channels=16,
        out_indices=(0, 1, 2, 3)),
    neck=dict(
        type='ChannelMapper',
        in_channels=[16, 32, 64, 128],
        out_channels=embed_dims,
        kernel_size=1,
        act_cfg=None,
        norm_cfg=dict(type='GN', num_groups=32)),
    head=dict(
        type='PoseurHead',
        num_joints=17,
        in_channels=embed_dims,
        num_feature_levels=4,
        num_decoder_layers=2,
        num_heads=4,
        feedforward_channels=256,
        dropout=0.0,
        cross_attention='EMSDA',
        loss_coarse=dict(type='PoseurRLELoss'),
        loss_decoder=dict(type='PoseurRLELoss'),
        decoder=codec),
    test_cfg=dict(flip_test=True, shift_coords=True))

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
    checkpoint=dict(interval=10, save_best='coco/AP', rule='greater'))

# The paper's instance score: box score x mean Laplace keypoint score.
val_evaluator = dict(
    score_mode='bbox_keypoint',
    keypoint_score_thr=0.0)
test_evaluator = val_evaluator

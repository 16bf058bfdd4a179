# HRNet++ report, regression model: fine-tune a heatmap model with the
# soft-argmax head (alpha = 60, L1 on coordinates), 20 epochs, Adam with a
# cosine schedule 2e-5 -> 2e-7. Starts from mmpose's HRNet-W32 COCO heatmap
# checkpoint: the head's `final_layer` has the same shape and name as
# HeatmapHead's, so the trained heatmap logits are where soft-argmax starts.
_base_ = [
    'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_hrnet-w32_8xb64-210e_coco-256x192.py'
]
custom_imports = dict(imports=['mmkp_ext'], allow_failed_imports=False)
# Runtime and data come from the mmpose config above; the checkpoint hook
# and metric types are restated so that every config names them
# (configs/_base_/README.md).
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='RNGStateHook')]
val_evaluator = dict(type='GuardedCocoMetric')
test_evaluator = val_evaluator

load_from = ('https://download.openmmlab.com/mmpose/v1/body_2d_keypoint/'
             'topdown_heatmap/coco/'
             'td-hm_hrnet-w32_8xb64-210e_coco-256x192-81c58e40_20220909.pth')

max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=2e-5))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=2e-7,
         begin=0, end=max_epochs, by_epoch=True),
]

codec = dict(type='RegressionLabel', input_size=(192, 256))

model = dict(
    # load_from provides every weight; no separate backbone download.
    backbone=dict(init_cfg=None),
    head=dict(
        _delete_=True,
        type='SoftArgmaxHead',
        in_channels=32,
        num_joints=17,
        alpha=60.0,
        loss=dict(type='L1Loss', use_target_weight=True),
        decoder=codec),
    # Flip test fuses the logits of the crop and of its mirror image. The
    # mirror's map, flipped back, lies 0.75 heatmap px left (x -> w - 1 - x
    # at stride 4); shift_heatmap moves it one pixel right, so the fused
    # keypoints end 0.125 px right of the truth instead of 0.375 px left
    # (see SoftArgmaxHead.predict).
    test_cfg=dict(flip_test=True, shift_heatmap=True))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(type='RandomBBoxTransform'),
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
train_dataloader = dict(
    dataset=dict(type='CheckedCocoDataset', pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(type='CheckedCocoDataset', pipeline=val_pipeline))
test_dataloader = val_dataloader

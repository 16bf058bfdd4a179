# HRNet++ regression model: the heatmap model fine-tuned with soft-argmax
# (SoftArgmaxHead, alpha = 60, L1 on coordinates) for 20 epochs, Adam with
# a cosine schedule 2e-5 -> 2e-7. SoftArgmaxHead's `final_layer` has the
# name and shape of HeatmapHead's, so the heatmap model's checkpoint loads
# completely. There is no public HRNet++ checkpoint: train
# td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py first and point `load_from`
# at its checkpoint (e.g. `--cfg-options load_from=...`).
_base_ = ['./td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py']

load_from = 'work_dirs/td-hm_hrnetpp-w48_8xb32-150e_coco-384x288/epoch_150.pth'

max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=2e-5))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=2e-7,
         begin=0, end=max_epochs, by_epoch=True),
]

codec = dict(type='RegressionLabel', input_size=(288, 384))

model = dict(
    # load_from provides every weight.
    backbone=dict(init_cfg=None),
    head=dict(
        _delete_=True,
        type='SoftArgmaxHead',
        in_channels=96,
        num_joints=17,
        alpha=60.0,
        loss=dict(type='L1Loss', use_target_weight=True),
        decoder=codec),
    # See configs/soft_argmax/coco: flip test fuses the logits; the shift
    # keeps the fused keypoints 0.125 heatmap px right instead of 0.375 left.
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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader

# HRNet++ regression model on toy persons (stage 2 of the report's recipe):
# the heatmap model td-hm_hrnetpp-w16-tiny_1xb16-20e_toy-persons-128x96.py
# fine-tuned with the soft-argmax head (alpha = 60, L1 on coordinates).
# SoftArgmaxHead keeps HeatmapHead's layer names, so the stage-1 checkpoint
# loads unchanged:
#   python tools/train.py configs/hrnetpp/toy_persons/td-sa_hrnetpp-w16-tiny_1xb16-6e_toy-persons-128x96.py \
#       --cfg-options load_from=work_dirs/<stage-1 run>/best_coco_AP_epoch_20.pth
# Schedule of the soft-argmax toy recipe's stage 2 (6 epochs, Adam 5e-5
# cosine to 2e-6; the report: 20 epochs, 2e-5 -> 2e-7).
_base_ = ['./td-hm_hrnetpp-w16-tiny_1xb16-20e_toy-persons-128x96.py']

max_epochs = 6
train_cfg = dict(max_epochs=max_epochs, val_interval=3)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=5e-5))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=2e-6,
         begin=0, end=max_epochs, by_epoch=True),
]
default_hooks = dict(checkpoint=dict(interval=3))

codec = dict(type='RegressionLabel', input_size=(96, 128))
model = dict(
    head=dict(
        _delete_=True,
        type='SoftArgmaxHead',
        in_channels=32,
        num_joints=17,
        alpha=60.0,
        loss=dict(type='L1Loss', use_target_weight=True),
        decoder=codec),
    # Flip test with the heatmap shift (see SoftArgmaxHead.predict).
    test_cfg=dict(_delete_=True, flip_test=True, shift_heatmap=True))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomBBoxTransform', rotate_factor=30.0),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# Poseur (Mao et al., ECCV 2022) with a ResNet-50 backbone on COCO at
# 256x192, as the authors' poseur_res50_coco_256x192.py: 4 backbone levels ->
# ChannelMapper (1x1 conv + GN, 256, no activation) -> PoseurHead with 6
# decoder layers and EMSDA; AdamW 1e-3, weight decay 1e-4, learning rate x0.1
# on the sampling offsets; 325 epochs with steps at 255 and 310, 500 warm-up
# iterations; batch 8 x 32 = 256. Data pipeline, codec (RegressionLabel) and
# metric come from mmpose's RLE config.
#   python tools/train.py configs/poseur/coco/poseur_res50_8xb32-325e_coco-256x192.py
# Official checkpoints: python tools/model_converters/convert_poseur_checkpoint.py IN OUT
# (see mmkp_ext/converters/poseur_checkpoint.py).
_base_ = ['mmpose::body_2d_keypoint/topdown_regression/coco/'
          'td-reg_res50_rle-8xb64-210e_coco-256x192.py']
custom_imports = dict(imports=['mmkp_ext'], allow_failed_imports=False)
# Runtime and data come from the mmpose config above; the checkpoint hook
# and metric types are restated so that every config names them
# (configs/_base_/README.md; the metric's score mode is set below).
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='RNGStateHook')]

max_epochs = 325
train_cfg = dict(max_epochs=max_epochs, val_interval=25)

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={'sampling_offsets': dict(lr_mult=0.1)}))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=500, start_factor=0.001,
         by_epoch=False),
    dict(type='MultiStepLR', begin=0, end=max_epochs, milestones=[255, 310],
         gamma=0.1, by_epoch=True)
]
auto_scale_lr = dict(base_batch_size=256)

codec = dict(type='RegressionLabel', input_size=(192, 256))
model = dict(
    backbone=dict(
        type='ResNet',
        depth=50,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    neck=dict(
        _delete_=True,
        type='ChannelMapper',
        in_channels=[256, 512, 1024, 2048],
        out_channels=256,
        kernel_size=1,
        act_cfg=None,
        norm_cfg=dict(type='GN', num_groups=32)),
    head=dict(
        _delete_=True,
        type='PoseurHead',
        num_joints=17,
        in_channels=256,
        num_feature_levels=4,
        num_decoder_layers=6,
        cross_attention='EMSDA',
        num_noise_groups=3,
        num_noise_points=4,
        noise_variance=0.2,
        laplace_a=0.2,
        loss_coarse=dict(type='PoseurRLELoss'),
        loss_decoder=dict(type='PoseurRLELoss'),
        decoder=codec),
    test_cfg=dict(flip_test=True, shift_coords=True))

train_dataloader = dict(
    batch_size=32, num_workers=4, dataset=dict(type='CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader

# Instance score = box + mean + max keypoint score (the official code's
# rescoring). The paper's box * mean keypoint score (eq. 5) is
# dict(score_mode='bbox_keypoint', keypoint_score_thr=0.0).
val_evaluator = dict(type='GuardedCocoMetric', score_mode='bbox_rle')
test_evaluator = val_evaluator

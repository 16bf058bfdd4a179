# HRNet++ (COCO 2019 challenge report), heatmap model: HRNet-W48 with SE
# residual units (r = 8), average-pool downsampling and cross-module skips,
# the sub-pixel fusion neck and mmpose's HeatmapHead (MSE on MSRA Gaussian
# heatmaps, quarter-pixel-shift decoding). Report schedule: Adam 1e-3,
# cosine to 5e-5 over 150 epochs (mmpose's 500-iteration linear warm-up
# kept). Only the stem and stage 1 start from ImageNet HRNet-W48, as in the
# report; every other weight gets HRNet's default initialisation.
# The regression model fine-tunes this one:
# td-sa_hrnetpp-w48_8xb32-20e_coco-384x288.py.
_base_ = [
    'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_hrnet-w48_8xb32-210e_coco-384x288.py'
]
custom_imports = dict(imports=['mmkp_ext'], allow_failed_imports=False)
# Runtime and data come from the mmpose config above; the checkpoint hook
# and metric types are restated so that every config names them
# (configs/_base_/README.md).
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='RNGStateHook')]
val_evaluator = dict(type='GuardedCocoMetric')
# Annotation files checked at load (mmkp_ext.datasets.annotation_checks).
train_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

max_epochs = 150
train_cfg = dict(max_epochs=max_epochs, val_interval=10)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=500, start_factor=0.001,
         by_epoch=False),  # warm-up
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=5e-5,
         begin=0, end=max_epochs, by_epoch=True),
]

imagenet_hrnet_w48 = ('https://download.openmmlab.com/mmpose/'
                      'pretrain_models/hrnet_w48-8ef0771d.pth')
model = dict(
    backbone=dict(
        type='HRNetPlus',
        se_ratio=8,
        avg_pool_downsample=True,
        cross_module_skips=True,
        # the neck fuses all four branches
        extra=dict(stage4=dict(multiscale_output=True)),
        # HRNet's default init, then stem + stage 1 from ImageNet (the
        # stage-1 SE layers are not in that checkpoint and keep theirs).
        init_cfg=[
            dict(type='Normal', std=0.001, layer=['Conv2d']),
            dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']),
            dict(type='HRNetStage1Pretrained',
                 checkpoint=imagenet_hrnet_w48),
        ]),
    # 1/32 -> 1/16 -> 1/8 -> 1/4, each upsampling to the joined branch's
    # width: 48 + 48 = 96 channels at 1/4.
    neck=dict(type='SubPixelFusion', in_channels=(48, 96, 192, 384)),
    head=dict(in_channels=96, deconv_out_channels=None))

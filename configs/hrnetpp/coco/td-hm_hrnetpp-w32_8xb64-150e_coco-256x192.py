# HRNet++-W32 at 256x192: the W48 recipe (td-hm_hrnetpp-w48_8xb32-150e_
# coco-384x288.py) on mmpose's HRNet-W32 256x192 config: all three backbone
# switches, sub-pixel fusion neck, Adam 1e-3 cosine to 5e-5 over 150
# epochs, only stem + stage 1 from ImageNet HRNet-W32.
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

imagenet_hrnet_w32 = ('https://download.openmmlab.com/mmpose/'
                      'pretrain_models/hrnet_w32-36af842e.pth')
model = dict(
    backbone=dict(
        type='HRNetPlus',
        se_ratio=8,
        avg_pool_downsample=True,
        cross_module_skips=True,
        extra=dict(stage4=dict(multiscale_output=True)),
        init_cfg=[
            dict(type='Normal', std=0.001, layer=['Conv2d']),
            dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']),
            dict(type='HRNetStage1Pretrained',
                 checkpoint=imagenet_hrnet_w32),
        ]),
    neck=dict(type='SubPixelFusion', in_channels=(32, 64, 128, 256)),
    head=dict(in_channels=64, deconv_out_channels=None))

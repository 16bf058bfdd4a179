# Grouped CenterNet with another backbone: mmpose's HRNet-W32 (all four
# branches) and mmpose's FeatureMapProcessor neck, which upsamples the
# branches to the stride-4 one and concatenates them (32+64+128+256 = 480
# channels, one stride-4 map, as the head needs). Everything else as the
# DLA-34 baseline; the backbone starts from mmpose's ImageNet HRNet-W32.
_base_ = [
    './cn-pose_dla34_8xb32-140e_coco-256x256.py',
    '../../_base_/models/hrnet_w32_extra.py'
]

model = dict(
    backbone=dict(
        _delete_=True,
        type='HRNet',
        in_channels=3,
        extra={{_base_.hrnet_w32_extra}},
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmpose/'
            'pretrain_models/hrnet_w32-36af842e.pth')),
    neck=dict(_delete_=True, type='FeatureMapProcessor', concat=True),
    head=dict(in_channels=480))

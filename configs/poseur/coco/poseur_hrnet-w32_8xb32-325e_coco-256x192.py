# Poseur with HRNet-W32 (all four branches out: 32, 64, 128, 256 channels),
# as the authors' poseur_hrnet_w32_coco_256x192.py; 6 decoder layers.
_base_ = [
    './poseur_res50_8xb32-325e_coco-256x192.py',
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
            'pretrain_models/hrnet_w32-36af842e.pth'),
    ),
    neck=dict(in_channels=[32, 64, 128, 256]))

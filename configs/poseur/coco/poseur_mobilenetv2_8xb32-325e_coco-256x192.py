# Poseur with MobileNetV2 (levels after stages 1, 2, 4 and the final 1x1
# conv: 24, 32, 96, 1280 channels), as the authors'
# poseur_mobilenetv2_coco_256x192.py; 6 decoder layers.
_base_ = ['./poseur_res50_8xb32-325e_coco-256x192.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV2',
        widen_factor=1.,
        out_indices=(1, 2, 4, 7),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='mmcls://mobilenet_v2',
        )),
    neck=dict(in_channels=[24, 32, 96, 1280]))

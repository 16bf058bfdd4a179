# Ablation: the baseline (td-hm_hrnetpp-w32_all-off-...) + the sub-pixel
# fusion head change (branches upsampled by conv + PixelShuffle(2) and
# concatenated down to 1/4; HeatmapHead on the 64-channel result).
_base_ = ['./td-hm_hrnetpp-w32_all-off-8xb64-150e_coco-256x192.py']

model = dict(
    backbone=dict(extra=dict(stage4=dict(multiscale_output=True))),
    # the base sets neck=None, which a dict cannot be merged into
    neck=dict(
        _delete_=True, type='SubPixelFusion',
        in_channels=(32, 64, 128, 256)),
    head=dict(in_channels=64))

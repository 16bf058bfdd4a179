# HRNet++ heatmap model on toy persons (stage 1 of the report's recipe): the
# plain-HRNet baseline td-hm_hrnet-w16-tiny_1xb16-20e_toy-persons-128x96.py
# with the report's four changes switched on (HRNetPlus: SE units with
# r = 8, average-pool downsampling, cross-module skips; SubPixelFusion neck:
# all four branches sub-pixel-upsampled and concatenated down to 1/4), the
# same data, pipeline, schedule and seed.
#   python tools/train.py configs/hrnetpp/toy_persons/td-hm_hrnetpp-w16-tiny_1xb16-20e_toy-persons-128x96.py
_base_ = ['./td-hm_hrnet-w16-tiny_1xb16-20e_toy-persons-128x96.py']

model = dict(
    backbone=dict(
        type='HRNetPlus',
        se_ratio=8,
        avg_pool_downsample=True,
        cross_module_skips=True,
        # All four branches feed the sub-pixel fusion.
        extra=dict(stage4=dict(multiscale_output=True))),
    # (16, 32, 64, 128) -> one stride-4 map of 16 + 16 = 32 channels.
    neck=dict(type='SubPixelFusion', in_channels=(16, 32, 64, 128)),
    head=dict(in_channels=32))

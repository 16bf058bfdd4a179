# Ablation baseline: HRNetPlus with every switch off (= mmpose's HRNet-W32),
# HeatmapHead on the 1/4 branch, trained exactly like HRNet++-W32 (Adam 1e-3
# cosine to 5e-5, 150 epochs, only stem + stage 1 from ImageNet) so that the
# ablation configs `*_<switch>-only-*` differ from it by one change each:
#   se-only        SE residual units (r = 8)
#   avgpool-only   AvgPool(2) + 1x1 conv instead of strided 3x3 convs
#   xskip-only     cross-module skip connections
#   subpixel-only  the sub-pixel fusion neck
# td-hm_hrnetpp-w32_8xb64-150e_coco-256x192.py has all four.
_base_ = ['./td-hm_hrnetpp-w32_8xb64-150e_coco-256x192.py']

model = dict(
    backbone=dict(
        se_ratio=None,
        avg_pool_downsample=False,
        cross_module_skips=False,
        extra=dict(stage4=dict(multiscale_output=False))),
    neck=None,
    head=dict(in_channels=32))

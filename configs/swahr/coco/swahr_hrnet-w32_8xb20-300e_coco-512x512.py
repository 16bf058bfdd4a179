# SWAHR (scale- and weight-adaptive heatmap regression, Luo et al. CVPR
# 2021) on HigherHRNet-W32, COCO 512x512: the plain config plus one scale
# branch per resolution (last conv zero-initialised) and SWAHRLoss (gamma
# 0.01, lambda 1); keypoint threshold 0.12 as in the authors' test.
# Paper: 68.9 AP on COCO val (W32, single scale) vs 67.1 for the baseline.
# Published weights: tools/model_converters/convert_higherhrnet_checkpoint.py.
_base_ = ['./higherhrnet_hrnet-w32_8xb20-300e_coco-512x512.py']

model = dict(
    head=dict(
        with_scale_branch=True,
        heatmap_loss=dict(
            _delete_=True,
            type='SWAHRLoss',
            gamma=0.01,
            scale_loss_weight=1.0),
        decoder=dict(decode_keypoint_thr=0.12)))

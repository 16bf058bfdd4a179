# Stage layout of HRNet-W32 (Sun et al., CVPR 2019; mmpose's HRNet `extra`)
# with all four branches out (multiscale_output=True), for the configs that
# feed every branch to a neck (Poseur, grouped CenterNet). Use it as
#   _base_ = [..., '../../_base_/models/hrnet_w32_extra.py']
#   model = dict(backbone=dict(type='HRNet', extra={{_base_.hrnet_w32_extra}}))
# HigherHRNet / top-down HRNet configs take HRNet-W32 (1/4 branch only) from
# mmpose's own configs.
hrnet_w32_extra = dict(
    stage1=dict(
        num_modules=1,
        num_branches=1,
        block='BOTTLENECK',
        num_blocks=(4, ),
        num_channels=(64, )),
    stage2=dict(
        num_modules=1,
        num_branches=2,
        block='BASIC',
        num_blocks=(4, 4),
        num_channels=(32, 64)),
    stage3=dict(
        num_modules=4,
        num_branches=3,
        block='BASIC',
        num_blocks=(4, 4, 4),
        num_channels=(32, 64, 128)),
    stage4=dict(
        num_modules=3,
        num_branches=4,
        block='BASIC',
        num_blocks=(4, 4, 4, 4),
        num_channels=(32, 64, 128, 256),
        multiscale_output=True))

# SWAHR on the 64x64 toy HigherHRNet: scale branches + SWAHRLoss, the rest
# (data, schedule, seed) identical to the plain 64x64 config.
_base_ = ['./higherhrnet_hrnet-w16-tiny_1xb16-36e_toy-persons-64x64.py']

model = dict(
    head=dict(
        with_scale_branch=True,
        heatmap_loss=dict(
            _delete_=True,
            type='SWAHRLoss',
            gamma=0.01,
            scale_loss_weight=1.0)))

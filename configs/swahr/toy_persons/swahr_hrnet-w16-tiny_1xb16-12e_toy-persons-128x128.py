# SWAHR on the toy HigherHRNet: the plain toy config plus one scale branch
# per resolution (last conv zero-initialised) and SWAHRLoss (gamma 0.01,
# lambda 1); everything else (data, schedule, seed) identical.
_base_ = ['./higherhrnet_hrnet-w16-tiny_1xb16-12e_toy-persons-128x128.py']

model = dict(
    head=dict(
        with_scale_branch=True,
        heatmap_loss=dict(
            _delete_=True,
            type='SWAHRLoss',
            gamma=0.01,
            scale_loss_weight=1.0)))

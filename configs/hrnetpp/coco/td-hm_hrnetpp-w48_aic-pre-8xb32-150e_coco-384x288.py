# HRNet++-W48 heatmap model on COCO, initialised from the AI Challenger
# pre-training (../aic/td-hm_hrnetpp-w48_8xb32-150e_aic-384x288.py): the
# backbone and the sub-pixel fusion neck load from its checkpoint; the
# head (14 -> 17 keypoints) starts fresh. Otherwise identical to
# td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py. Point `aic_checkpoint` at
# the pre-training's checkpoint.
_base_ = ['./td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py']

aic_checkpoint = ('work_dirs/td-hm_hrnetpp-w48_8xb32-150e_aic-384x288/'
                  'epoch_150.pth')
model = dict(
    backbone=dict(
        init_cfg=dict(
            _delete_=True, type='Pretrained', checkpoint=aic_checkpoint,
            prefix='backbone.')),
    neck=dict(
        init_cfg=dict(
            type='Pretrained', checkpoint=aic_checkpoint, prefix='neck.')))

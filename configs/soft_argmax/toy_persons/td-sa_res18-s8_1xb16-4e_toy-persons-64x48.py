# Soft-argmax counterpart of td-hm_res18-s8_1xb16-10e_toy-persons-64x48.py
# (stage 2 of the fast recipe): the same model with SoftArgmaxHead, whose
# layers keep HeatmapHead's names, so the heatmap checkpoint loads unchanged.
# The CI learning test evaluates the trained heatmap checkpoint with it
# (stock test.py); fine-tuning works as with the 128x96 stage-2 config:
#   python tools/train.py configs/soft_argmax/toy_persons/td-sa_res18-s8_1xb16-4e_toy-persons-64x48.py \
#       --cfg-options load_from=work_dirs/<heatmap run>/epoch_10.pth
_base_ = ['./td-hm_res18-s8_1xb16-10e_toy-persons-64x48.py']

max_epochs = 4
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=5e-5))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=2e-6,
         begin=0, end=max_epochs, by_epoch=True),
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))

codec = dict(type='RegressionLabel', input_size=(48, 64))
model = dict(
    head=dict(
        _delete_=True,
        type='SoftArgmaxHead',
        in_channels=128,
        num_joints=17,
        alpha=60.0,
        deconv_out_channels=(64, ),
        deconv_kernel_sizes=(4, ),
        loss=dict(type='L1Loss', use_target_weight=True),
        decoder=codec),
    # Flip test fuses the logits of the crop and of its mirror image. The
    # mirror's map, flipped back, lies 0.75 heatmap px left (x -> w - 1 - x
    # at stride 4); shift_heatmap moves it one pixel right, so the fused
    # keypoints end 0.125 px right of the truth instead of 0.375 px left
    # (see SoftArgmaxHead.predict).
    test_cfg=dict(_delete_=True, flip_test=True, shift_heatmap=True))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# A fast heatmap recipe for the CI learning test
# (tests/test_tools/test_learning.py): the stage-1 model of
# td-hm_res18-s8_1xb16-20e_toy-persons-128x96.py at a quarter of the pixels
# (64x48 input, 16x12 heatmaps), a short warm-up, a higher learning rate and
# no RandomBBoxTransform (scale / rotation / shift augmentation slows the
# first few hundred iterations down most). On 200 generated images (160 px)
# it reaches about coco/AP 0.25 on the val split in under a minute of CPU
# training; the figures are in the test's docstring. Not a recipe for good
# accuracy: use the 128x96 configs for that.
_base_ = ['./td-hm_res18-s8_1xb16-20e_toy-persons-128x96.py']

max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)

optim_wrapper = dict(optimizer=dict(type='Adam', lr=5e-3))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=10, start_factor=0.1,
         by_epoch=False),
    dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5,
         begin=0, end=max_epochs, by_epoch=True),
]

codec = dict(
    type='MSRAHeatmap', input_size=(48, 64), heatmap_size=(12, 16),
    sigma=1.0)
model = dict(head=dict(decoder=codec))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs')
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='TopdownAffine', input_size=codec['input_size']),
    dict(type='PackPoseInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader

# One checkpoint, at the end.
default_hooks = dict(
    checkpoint=dict(interval=max_epochs, save_best=None))

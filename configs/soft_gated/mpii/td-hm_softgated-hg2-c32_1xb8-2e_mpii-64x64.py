# A CPU smoke-test version of td-hm_softgated-hg4-c144_1xb24-200e_mpii-256x256.py
# (same data, head, loss and PCKh evaluation; 2 stacks of width 32, 2
# poolings, 64x64 crops, Adam, 2 epochs), used by
# tests/test_tools/test_softgated_stock_tools.py on the 5 real MPII images
# of the shared fixtures. Not a recipe for accuracy.
_base_ = ['./td-hm_softgated-hg4-c144_1xb24-200e_mpii-256x256.py']

max_epochs = 2
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(_delete_=True, type='Adam', lr=1e-3))
param_scheduler = []
default_hooks = dict(checkpoint=dict(interval=max_epochs, save_best=None))

codec = dict(
    type='MSRAHeatmap', input_size=(64, 64), heatmap_size=(16, 16),
    sigma=1)
num_stacks = 2
model = dict(
    backbone=dict(num_stacks=num_stacks, channels=32, depth=2,
                  stem_channels=(16, 32)),
    head=dict(num_stages=num_stacks, decoder=codec))

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
train_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader

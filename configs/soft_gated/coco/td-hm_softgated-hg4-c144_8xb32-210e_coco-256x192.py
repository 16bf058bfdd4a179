# SoftGatedHourglass (4 stacks, width 144, concat fusion, per-channel gates)
# on COCO top-down at 256x192 (64x48 maps; 4 poolings -> 4x3). The paper
# reports MPII and LSP only: the schedule is mmpose's hourglass COCO recipe
# (td-hm_hourglass52_8xb32-210e_coco-256x256.py: Adam 5e-4, 210 epochs,
# steps at 170 and 200), the data settings mmpose's standard COCO ones.
_base_ = [
    'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_hourglass52_8xb32-210e_coco-256x256.py'
]
custom_imports = dict(imports=['mmkp_ext'], allow_failed_imports=False)
# Runtime and data come from the mmpose config above; the checkpoint hook
# and metric types are restated so that every config names them
# (configs/_base_/README.md).
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='RNGStateHook')]
val_evaluator = dict(type='GuardedCocoMetric')
test_evaluator = val_evaluator

codec = dict(
    type='MSRAHeatmap', input_size=(192, 256), heatmap_size=(48, 64),
    sigma=2)

num_stacks = 4
model = dict(
    backbone=dict(
        _delete_=True,
        type='SoftGatedHourglass',
        num_stacks=num_stacks,
        channels=144,
        depth=4,
        num_keypoints=17,
        fusion='concat',
        gate='channel',
        gate_init=0.0),
    head=dict(
        in_channels=17,
        out_channels=17,
        num_stages=num_stacks,
        deconv_out_channels=None,
        final_layer=None,
        decoder=codec))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='RandomHalfBody'),
    dict(type='RandomBBoxTransform'),
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
    dataset=dict(type='CheckedCocoDataset', pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(type='CheckedCocoDataset', pipeline=val_pipeline))
test_dataloader = val_dataloader

# Grouped CenterNet on COCO person keypoints, ungrouped baseline (17
# regression and 17 heatmap groups): DLA-34 (deformable convs replaced by
# plain 3x3 convs, as the paper trains) + DLA-up/IDA-up neck to one stride-4
# map, 256x256 input as in the paper's COCO grouping study. Variants with 14
# and 10 regression groups inherit from this file. Not trained here (no COCO,
# no GPU); the backbone starts from ImageNet DLA-34
# (docs/dla34_imagenet_weights.md).
#   python tools/train.py configs/centernet_grouping/coco/cn-pose_dla34_8xb32-140e_coco-256x256.py
# Runtime and data: configs/_base_/.
_base_ = [
    '../../_base_/default_runtime.py',
    '../../_base_/datasets/coco_bottomup.py'
]

max_epochs = 140
train_cfg = dict(max_epochs=max_epochs, val_interval=10)

# CenterNet's DLA multi_pose recipe: Adam, lr 5e-4 at batch 128 (here 1e-3
# at 8 x 32), x0.1 at epochs 90 and 120.
optim_wrapper = dict(optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=500, start_factor=0.001,
         by_epoch=False),
    dict(type='MultiStepLR', begin=0, end=max_epochs, milestones=[90, 120],
         gamma=0.1, by_epoch=True),
]
auto_scale_lr = dict(base_batch_size=256)

num_keypoints = 17
category_keypoints = 'coco'
input_size = (256, 256)
# Grouping: None = identity. Variants set grouping_file (a grouping JSON,
# docs/grouping_json.md) and allow_inconsistent.
# Changing the grouping from the command line: mmengine substitutes the
# top-level `grouping_file` and `codec` when it reads this file, so
# `--cfg-options grouping_file=G` changes nothing. Override the three keys
# that hold it (G a grouping JSON; the train pipeline's GenerateTarget is
# entry 4):
#   --cfg-options model.head.grouping_file=G \
#       model.head.decoder.grouping_file=G \
#       train_dataloader.dataset.pipeline.4.encoder.grouping_file=G
# (and, for groupings that merge keypoints of one object, the two codec
# keys' `allow_inconsistent=True`), or write a variant config as the
# grouped files next to this one do.
grouping_file = None
allow_inconsistent = False
codec = dict(
    type='GroupedCenterNetLabel',
    input_size=input_size,
    heatmap_size=(64, 64),
    num_keypoints=num_keypoints,
    category_keypoints=category_keypoints,
    grouping_file=grouping_file,
    allow_inconsistent=allow_inconsistent,
    decode_mode='rescore',
    # tune per model: tools/analysis_tools/sweep_rescore_sigma.py CONFIG CKPT
    rescore_sigma=2.0,
    topk=100)

model = dict(
    type='CenterNetPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='DLANet',
        depth=34,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='http://dl.yf.io/dla/models/imagenet/'
            'dla34-ba72cf86.pth')),
    neck=dict(type='DLAUpNeck', first_level=2, out_channels=64),
    head=dict(
        type='CenterNetPoseHead',
        in_channels=64,
        num_keypoints=num_keypoints,
        category_keypoints=category_keypoints,
        head_conv=256,
        grouping_file=grouping_file,
        decoder=codec),
    test_cfg=dict(flip_test=True))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='BottomupRandomAffine', input_size=input_size,
         shift_factor=0.1, rotate_factor=0, scale_factor=(0.6, 1.4)),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='CenterNetFilterInstances',
         category_keypoints=category_keypoints),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
# meta_keys without 'category_id': in bottom-up mode it is the (N,) array of
# the image's GT ids, which mmpose's CocoMetric would copy into every result
# (xtcocotools then fails); predictions carry their own category_id.
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='BottomupResize', input_size=input_size),
    dict(type='PackPoseInputs',
         meta_keys=('id', 'img_id', 'img_path', 'crowd_index', 'ori_shape',
                    'img_shape', 'input_size', 'input_center',
                    'input_scale', 'flip', 'flip_direction',
                    'flip_indices', 'raw_ann_info')),
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader

default_hooks = dict(
    checkpoint=dict(save_best='coco/AP', rule='greater'))

# COCO has one class: the DeepFashion2-style metric equals mmpose's
# CocoMetric here (tests/test_evaluation); CenterNet ranks objects by their
# centre score (the evaluator of configs/_base_/datasets/coco_bottomup.py).

# Grouped CenterNet on DeepFashion2 (13 clothing categories on one list of
# 294 keypoints), ungrouped baseline: 294 regression and 294 heatmap groups,
# so the head has 13 + 2 + 2 + 588 + 294 + 2 = 901 output channels. DLA-34
# (deformable convs replaced by plain 3x3 convs, as the paper trains) +
# DLA-up/IDA-up neck to one stride-4 map of 64 channels, head_conv 256,
# 512x512 input, masked (present-category) keypoint-heatmap loss: the
# paper's DeepFashion2 setting (0.424 mAP with the base loss, 0.434 masked,
# as the paper reports). Not trained here (no DeepFashion2,
# no GPU); the backbone starts from ImageNet DLA-34
# (docs/dla34_imagenet_weights.md; the file loads non-strictly, logging
# only fc.* and the unused level3/level4 projections as unexpected).
#
# Data (DeepFashion2 converted to the COCO layout, per-category OKS
# evaluation): configs/_base_/datasets/deepfashion2_bottomup.py.
#   python tools/train.py configs/centernet_grouping/deepfashion2/cn-pose_dla34_8xb32-140e_deepfashion2-512x512.py
#   python tools/test.py configs/centernet_grouping/deepfashion2/cn-pose_dla34_8xb32-140e_deepfashion2-512x512.py CKPT
# tests/test_tools/test_centernet_stock_tools.py runs it (shrunk to a tiny
# model at 128x128) on the real two-image fixture.
# Runtime and data: configs/_base_/.
_base_ = [
    '../../_base_/default_runtime.py',
    '../../_base_/datasets/deepfashion2_bottomup.py'
]

max_epochs = 140
train_cfg = dict(max_epochs=max_epochs, val_interval=10)

# CenterNet multi_pose: Adam, lr 1.25e-4 per 32 images (its 5e-4 at batch
# 128), no warm-up, x0.1 at epochs 90 and 120 of 140. auto_scale_lr keeps
# that ratio for other total batch sizes (--auto-scale-lr).
batch_size = 32  # per GPU; 8 GPUs
base_batch_size = 8 * batch_size
optim_wrapper = dict(
    optimizer=dict(type='Adam', lr=1.25e-4 * base_batch_size / 32))
param_scheduler = [
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        milestones=[90, 120],
        gamma=0.1,
        by_epoch=True),
]
auto_scale_lr = dict(base_batch_size=base_batch_size)

num_keypoints = 294
category_keypoints = 'deepfashion2'
input_size = (512, 512)
# Ungrouped (no grouping_file). Variants set grouping_file (a grouping
# JSON, docs/grouping_json.md) on the codec and the head.
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
codec = dict(
    type='GroupedCenterNetLabel',
    input_size=input_size,
    heatmap_size=(128, 128),
    num_keypoints=num_keypoints,
    category_keypoints=category_keypoints,
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
    neck=dict(
        type='DLAUpNeck',
        in_channels=(16, 32, 64, 128, 256, 512),
        first_level=2,
        out_channels=64),
    head=dict(
        type='CenterNetPoseHead',
        in_channels=64,
        num_keypoints=num_keypoints,
        category_keypoints=category_keypoints,
        head_conv=256,
        masked_keypoint_loss=True,
        decoder=codec),
    test_cfg=dict(flip_test=True))

# No rotation, random scale 0.6-1.4 and shift 0.1, horizontal flip, as
# CenterNet's multi_pose. CenterNetFilterInstances keeps category_id aligned
# with the keypoints and boxes while it drops garments moved out of the
# input (RandomFlip is right for square inputs only, see its module).
train_pipeline = [
    dict(type='LoadImage'),
    dict(
        type='BottomupRandomAffine',
        input_size=input_size,
        shift_factor=0.1,
        rotate_factor=0,
        scale_factor=(0.6, 1.4)),
    dict(type='RandomFlip', direction='horizontal'),
    dict(
        type='CenterNetFilterInstances',
        category_keypoints=category_keypoints),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='BottomupResize', input_size=input_size),
    dict(type='PackPoseInputs'),
]

train_dataloader = dict(
    batch_size=batch_size, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader

default_hooks = dict(
    checkpoint=dict(save_best='df2/AP', rule='greater', max_keep_ckpts=3))

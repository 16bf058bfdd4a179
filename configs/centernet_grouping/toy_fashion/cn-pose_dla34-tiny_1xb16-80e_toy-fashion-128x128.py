# Grouped CenterNet (multi-class keypoint detection, bottom-up) on the
# generated toy fashion dataset (3 garment categories on one 32-keypoint
# list, like DeepFashion2's 13 on 294). A DLA-34 with quarter width
# (channels 8..256) and the DLA-up/IDA-up neck to one stride-4 map, so it
# trains on a CPU in minutes; ungrouped (32 regression and 32 heatmap
# groups). Used by the tests and by `make demo-centernet`.
#   python tools/dataset_converters/make_toy_dataset.py --kind fashion --out data/toy_fashion
#   python tools/train.py configs/centernet_grouping/toy_fashion/cn-pose_dla34-tiny_1xb16-80e_toy-fashion-128x128.py
# Runtime (seed 0, CPU DDP wrapper) and data: configs/_base_/.
_base_ = [
    '../../_base_/cpu_runtime.py',
    '../../_base_/datasets/toy_fashion_bottomup.py'
]

max_epochs = 80
train_cfg = dict(max_epochs=max_epochs, val_interval=20)

# From scratch on a CPU: a high Adam lr and no rotation learn fastest here
# (measured: docs/benchmarks.md).
optim_wrapper = dict(optimizer=dict(type='Adam', lr=5e-3))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=50, start_factor=0.01,
         by_epoch=False),
    dict(type='MultiStepLR', begin=0, end=max_epochs, milestones=[65, 75],
         gamma=0.1, by_epoch=True),
]
auto_scale_lr = dict(base_batch_size=16)

num_keypoints = 32
category_keypoints = 'toy_fashion'
input_size = (128, 128)
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
    heatmap_size=(32, 32),
    num_keypoints=num_keypoints,
    category_keypoints=category_keypoints,
    decode_mode='rescore',
    # tools/analysis_tools/sweep_rescore_sigma.py on the 80-epoch model: best of
    # {1, 2, 3, 4, 6, 8, 12} (docs/benchmarks.md)
    rescore_sigma=3.0,
    topk=20)

model = dict(
    type='CenterNetPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(type='DLANet', depth=34,
                  channels=(8, 16, 32, 64, 128, 256)),
    neck=dict(type='DLAUpNeck', in_channels=(8, 16, 32, 64, 128, 256),
              first_level=2, out_channels=32),
    head=dict(
        type='CenterNetPoseHead',
        in_channels=32,
        num_keypoints=num_keypoints,
        category_keypoints=category_keypoints,
        head_conv=32,
        masked_keypoint_loss=True,
        decoder=codec),
    test_cfg=dict(flip_test=False))

train_pipeline = [
    dict(type='LoadImage'),
    dict(type='BottomupRandomAffine', input_size=input_size,
         shift_factor=0.1, rotate_factor=0, scale_factor=(0.8, 1.2)),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='CenterNetFilterInstances',
         category_keypoints=category_keypoints),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='BottomupResize', input_size=input_size),
    dict(type='PackPoseInputs'),
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader

default_hooks = dict(
    checkpoint=dict(interval=20, save_best='toy_fashion/AP', rule='greater'))

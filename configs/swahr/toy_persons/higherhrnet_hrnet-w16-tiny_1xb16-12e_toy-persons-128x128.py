# Plain HigherHRNet (no SWAHR) on the generated toy persons dataset: a small
# mmpose HRNet (width 16, one block per branch) and HigherHRNetHead with
# outputs at 1/4 (32x32 heatmaps + tags) and 1/2 (64x64), bottom-up with
# associative embedding, 128x128 input, so it trains on a CPU in minutes.
# swahr_hrnet-w16-tiny_1xb16-12e_toy-persons-128x128.py differs only in the
# scale branches and SWAHRLoss (same data, schedule, seed). Used by the
# tests and by `make demo-swahr`.
#   python tools/dataset_converters/make_toy_dataset.py --kind persons --out data/toy_persons \
#       --image-size 128
#   python tools/train.py configs/swahr/toy_persons/higherhrnet_hrnet-w16-tiny_1xb16-12e_toy-persons-128x128.py
# Runtime (seed 0, CPU DDP wrapper) and data: configs/_base_/.
_base_ = [
    '../../_base_/cpu_runtime.py',
    '../../_base_/datasets/toy_persons_bottomup.py'
]

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=6)

# From scratch on a CPU: higher Adam lr than COCO's, short warm-up, linear
# decay to 0 like the official schedule.
optim_wrapper = dict(optimizer=dict(type='Adam', lr=5e-3))
param_scheduler = [
    # warm-up from 0.1 x lr, as the authors' trainer
    dict(type='LinearLR', start_factor=0.1, begin=0, end=50,
         by_epoch=False),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, begin=0,
         end=max_epochs, by_epoch=True, convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=16)

input_size = (128, 128)
keypoint_order = [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16]
codec = dict(
    type='MultiResolutionAELabel',
    input_size=input_size,
    heatmap_sizes=[(32, 32), (64, 64)],
    sigma=2,
    decode_keypoint_order=keypoint_order,
    decode_keypoint_thr=0.1,
    decode_topk=20,
    decode_max_instances=20)

hrnet_extra = dict(
    stage1=dict(
        num_modules=1,
        num_branches=1,
        block='BOTTLENECK',
        num_blocks=(1, ),
        num_channels=(32, )),
    stage2=dict(
        num_modules=1,
        num_branches=2,
        block='BASIC',
        num_blocks=(1, 1),
        num_channels=(16, 32)),
    stage3=dict(
        num_modules=1,
        num_branches=3,
        block='BASIC',
        num_blocks=(1, 1, 1),
        num_channels=(16, 32, 64)),
    stage4=dict(
        num_modules=1,
        num_branches=4,
        block='BASIC',
        num_blocks=(1, 1, 1, 1),
        num_channels=(16, 32, 64, 128)))

model = dict(
    type='BottomupPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(type='HRNet', in_channels=3, extra=hrnet_extra),
    head=dict(
        type='HigherHRNetHead',
        in_channels=16,
        num_keypoints=17,
        num_deconv_layers=1,
        deconv_channels=16,
        num_basic_blocks=1,
        with_scale_branch=False,
        heatmap_loss=dict(
            type='SWAHRLoss', scale_adaptive=False, weight_adaptive=False),
        tag_loss=dict(type='HigherHRNetAELoss'),
        decoder=codec),
    test_cfg=dict(flip_test=False, align_corners=False))

train_pipeline = [
    dict(type='LoadImage'),
    dict(
        type='BottomupRandomAffine',
        input_size=input_size,
        shift_factor=10 / 128,
        scale_factor=(0.75, 1.5),
        rotate_factor=30,
        distribution='uniform'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='BottomupIgnoreMask'),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(
        type='BottomupResize',
        input_size=input_size,
        size_factor=32,
        resize_mode='fit'),
    # no 'category_id': bottom-up samples would carry one per annotation
    # and CocoMetric would use that list as the category of every result
    dict(
        type='PackPoseInputs',
        meta_keys=('id', 'img_id', 'img_path', 'crowd_index', 'ori_shape',
                   'img_shape', 'input_size', 'input_center', 'input_scale',
                   'flip', 'flip_direction', 'flip_indices', 'raw_ann_info',
                   'skeleton_links')),
]

train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader

default_hooks = dict(
    checkpoint=dict(interval=6, save_best='coco/AP', rule='greater'))

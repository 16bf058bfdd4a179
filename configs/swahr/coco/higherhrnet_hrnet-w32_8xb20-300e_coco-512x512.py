# HigherHRNet-W32 (plain, no SWAHR) on COCO, bottom-up with associative
# embedding, 512x512 input; trained with the SWAHR authors' schedule so that
# swahr_hrnet-w32_8xb20-300e_coco-512x512.py differs only in the head's
# scale branches and the loss (the paper's baseline row).
#   Adam, lr 0.00025 per GPU (x 8 GPUs x 20 images), 3 warm-up epochs,
#   linear decay to 0 at epoch 300 (greatlog/SWAHR-HumanPose
#   experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml).
# Augmentation as in the official HigherHRNet: rotation +-30 deg, scale
# 0.75-1.5, translation ~40 px, horizontal flip. Crowd regions and people
# without keypoints are ignored by the loss (BottomupIgnoreMask).
# Test: single scale, flip, heatmaps of both resolutions averaged at the
# input size; BottomupResize in 'fit' mode (the image fitted into the padded
# 512x512 input; the official test resizes the short side to 512 instead,
# which the head's fixed decode size does not support).
_base_ = ['mmpose::_base_/default_runtime.py']
custom_imports = dict(imports=['mmkp_ext'], allow_failed_imports=False)

max_epochs = 300
warmup_epochs = 3
train_cfg = dict(max_epochs=max_epochs, val_interval=10)

optim_wrapper = dict(optimizer=dict(type='Adam', lr=0.00025 * 8))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.001,
        begin=0,
        end=warmup_epochs,
        by_epoch=True,
        convert_to_iter_based=True),
    dict(
        type='LinearLR',
        start_factor=1.0,
        end_factor=0.0,
        begin=warmup_epochs,
        end=max_epochs,
        by_epoch=True,
        convert_to_iter_based=True),
]
auto_scale_lr = dict(base_batch_size=160)

default_hooks = dict(
    checkpoint=dict(save_best='coco/AP', rule='greater', interval=50))

input_size = (512, 512)
# COCO grouping order of the HigherHRNet parser: head, shoulders, hips,
# then the limbs outwards.
keypoint_order = [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16]
codec = dict(
    type='MultiResolutionAELabel',
    input_size=input_size,
    heatmap_sizes=[(128, 128), (256, 256)],
    sigma=2,
    decode_keypoint_order=keypoint_order,
    decode_nms_kernel=5,
    decode_keypoint_thr=0.1,
    decode_tag_thr=1.0,
    decode_topk=30,
    decode_max_instances=30)

hrnet_w32 = dict(
    stage1=dict(
        num_modules=1,
        num_branches=1,
        block='BOTTLENECK',
        num_blocks=(4, ),
        num_channels=(64, )),
    stage2=dict(
        num_modules=1,
        num_branches=2,
        block='BASIC',
        num_blocks=(4, 4),
        num_channels=(32, 64)),
    stage3=dict(
        num_modules=4,
        num_branches=3,
        block='BASIC',
        num_blocks=(4, 4, 4),
        num_channels=(32, 64, 128)),
    stage4=dict(
        num_modules=3,
        num_branches=4,
        block='BASIC',
        num_blocks=(4, 4, 4, 4),
        num_channels=(32, 64, 128, 256)))

model = dict(
    type='BottomupPoseEstimator',
    data_preprocessor=dict(
        type='PoseDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='HRNet',
        in_channels=3,
        extra=hrnet_w32,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmpose/'
            'pretrain_models/hrnet_w32-36af842e.pth')),
    head=dict(
        type='HigherHRNetHead',
        in_channels=32,
        num_keypoints=17,
        tag_per_keypoint=True,
        num_deconv_layers=1,
        deconv_channels=32,
        num_basic_blocks=4,
        cat_output=True,
        with_scale_branch=False,
        # plain HigherHRNet: masked MSE at both resolutions
        heatmap_loss=dict(
            type='SWAHRLoss', scale_adaptive=False, weight_adaptive=False),
        tag_loss=dict(
            type='HigherHRNetAELoss',
            pull_loss_weight=0.001,
            push_loss_weight=0.001),
        decoder=codec),
    test_cfg=dict(flip_test=True, shift_heatmap=False, align_corners=False))

dataset_type = 'CocoDataset'
data_mode = 'bottomup'
data_root = 'data/coco/'

train_pipeline = [
    dict(type='LoadImage'),
    # mmpose shifts by a fraction of the image size: 40 px of a 512 input
    dict(
        type='BottomupRandomAffine',
        input_size=input_size,
        shift_factor=40 / 512,
        scale_factor=(0.75, 1.5),
        scale_type='short',
        rotate_factor=30,
        distribution='uniform'),
    # square input: mmpose's RandomFlip reads input_size as (h, w)
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

train_dataloader = dict(
    batch_size=20,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/person_keypoints_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline=train_pipeline,
    ))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/person_keypoints_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=val_pipeline,
    ))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/person_keypoints_val2017.json',
    nms_mode='none',
    score_mode='bbox')
test_evaluator = val_evaluator

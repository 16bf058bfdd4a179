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
# Extends mmpose's associative-embedding HRNet-W32 config (its backbone,
# data preprocessor, COCO bottom-up dataloaders and CocoMetric); the head,
# codec, pipelines and schedule are replaced.
_base_ = [
    'mmpose::body_2d_keypoint/associative_embedding/coco/'
    'ae_hrnet-w32_8xb24-300e_coco-512x512.py'
]
custom_imports = dict(imports=['mmkp_ext'], allow_failed_imports=False)
# Runtime and data come from the mmpose config above; the checkpoint hook
# and metric types are restated so that every config names them
# (configs/_base_/README.md).
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='RNGStateHook')]
val_evaluator = dict(type='GuardedCocoMetric')
test_evaluator = val_evaluator

max_epochs = 300
warmup_epochs = 3
train_cfg = dict(max_epochs=max_epochs, val_interval=10)

optim_wrapper = dict(optimizer=dict(type='Adam', lr=0.00025 * 8))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,  # the authors' warm-up starts at 0.1 x lr
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

model = dict(
    # backbone: mmpose's HRNet-W32 (1/4 branch out), ImageNet weights
    head=dict(
        _delete_=True,
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
    test_cfg=dict(
        _delete_=True,
        flip_test=True,
        shift_heatmap=False,
        align_corners=False))

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
    dataset=dict(type='CheckedCocoDataset', pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(type='CheckedCocoDataset', pipeline=val_pipeline))
test_dataloader = val_dataloader

# The top-level `codec` replaces mmpose's AE codec instead of merging into it
# (no stray AE keys); the head and the pipeline hold the dict above, without
# the marker.
codec = dict(codec, _delete_=True)

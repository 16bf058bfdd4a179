# SWAHR on HigherHRNet-W48, CrowdPose 640x640 (14 keypoints), the authors'
# settings (greatlog/SWAHR-HumanPose experiments/crowd_pose/higher_hrnet/
# w48_640_adam_lr1e-3.yaml): trainval for training, test for evaluation,
# 10 images x 8 GPUs, Adam lr 0.00012 per GPU. Paper: 71.6 AP on the
# CrowdPose test set (HigherHRNet-W48: 65.9), single scale.
# CrowdPose has no segmentations: people without labelled keypoints are
# ignored through their boxes (BottomupIgnoreMask's box fallback).
_base_ = ['../coco/swahr_hrnet-w48_8xb10-300e_coco-640x640.py']

input_size = (640, 640)
# The authors' parser takes the first 14 entries of its COCO order.
keypoint_order = [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13]
codec = dict(
    type='MultiResolutionAELabel',
    input_size=input_size,
    heatmap_sizes=[(160, 160), (320, 320)],
    sigma=2,
    decode_keypoint_order=keypoint_order,
    decode_nms_kernel=5,
    decode_keypoint_thr=0.1,
    decode_tag_thr=1.0,
    decode_topk=30,
    decode_max_instances=30)

model = dict(head=dict(num_keypoints=14, decoder=dict(codec, _delete_=True)))

dataset_type = 'CheckedCrowdPoseDataset'
data_root = 'data/crowdpose/'

train_pipeline = [
    dict(type='LoadImage'),
    dict(
        type='BottomupRandomAffine',
        input_size=input_size,
        shift_factor=40 / 640,
        scale_factor=(0.75, 1.5),
        scale_type='short',
        rotate_factor=30,
        distribution='uniform'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='BottomupIgnoreMask'),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/mmpose_crowdpose_trainval.json',
        data_prefix=dict(img='images/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/mmpose_crowdpose_test.json',
        data_prefix=dict(img='images/')))
test_dataloader = val_dataloader

default_hooks = dict(checkpoint=dict(save_best='crowdpose/AP'))
val_evaluator = dict(
    ann_file=data_root + 'annotations/mmpose_crowdpose_test.json',
    nms_mode='none',
    score_mode='bbox',
    use_area=False,
    iou_type='keypoints_crowd',
    prefix='crowdpose')
test_evaluator = val_evaluator

# HRNet++-W48 pre-training on AI Challenger (14 keypoints, mmpose's
# AicDataset; data paths and metric as in mmpose's
# topdown_heatmap/aic/td-hm_hrnet-w32_8xb64-210e_aic-256x192.py). Model and
# schedule are those of the COCO heatmap model
# (../coco/td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py); the report gives
# no separate AI Challenger schedule, so the COCO one is reused.
# ../coco/td-hm_hrnetpp-w48_aic-pre-8xb32-150e_coco-384x288.py initialises
# the COCO model's backbone and neck from this one.
_base_ = ['../coco/td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py']

codec = dict(
    type='MSRAHeatmap', input_size=(288, 384), heatmap_size=(72, 96), sigma=3)
model = dict(head=dict(out_channels=14, decoder=codec))
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
dataset_type = 'CheckedAicDataset'
data_root = 'data/aic/'
train_dataloader = dict(
    batch_size=32,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/aic_train.json',
        data_prefix=dict(img='ai_challenger_keypoint_train_20170902/'
                         'keypoint_train_images_20170902/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/aic_val.json',
        bbox_file=None,
        data_prefix=dict(img='ai_challenger_keypoint_validation_20170911/'
                         'keypoint_validation_images_20170911/'),
        pipeline=val_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    ann_file=data_root + 'annotations/aic_val.json',
    use_area=False)
test_evaluator = val_evaluator

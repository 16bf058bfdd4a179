# COCO person keypoints (data/coco/annotations/person_keypoints_*2017.json,
# images in data/coco/{train,val}2017/), bottom-up: whole images, one per
# batch at test time; OKS AP ranked by the instance (box / centre) score,
# no OKS-NMS. Method configs set the training batch size.
dataset_type = 'CheckedCocoDataset'
data_mode = 'bottomup'
data_root = 'data/coco/'

train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/person_keypoints_train2017.json',
        data_prefix=dict(img='train2017/'),
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
    ))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='GuardedCocoMetric',
    ann_file=data_root + 'annotations/person_keypoints_val2017.json',
    score_mode='bbox',
    nms_mode='none')
test_evaluator = val_evaluator

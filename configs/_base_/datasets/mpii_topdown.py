# MPII (mmpose's conversion: data/mpii/annotations/mpii_{train,val}.json,
# images in data/mpii/images/), top-down on the annotated person boxes;
# PCKh@0.5 with mmpose's MpiiPCKAccuracy (needs the head boxes
# annotations/mpii_gt_val.mat), logged as 'PCK'.
dataset_type = 'CheckedMpiiDataset'
data_mode = 'topdown'
data_root = 'data/mpii/'

train_dataloader = dict(
    batch_size=24,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/mpii_train.json',
        data_prefix=dict(img='images/'),
    ))
val_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/mpii_val.json',
        headbox_file=data_root + 'annotations/mpii_gt_val.mat',
        data_prefix=dict(img='images/'),
        test_mode=True,
    ))
test_dataloader = val_dataloader

val_evaluator = dict(type='MpiiPCKAccuracy')
test_evaluator = val_evaluator

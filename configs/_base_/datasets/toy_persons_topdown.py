# Generated toy persons (python tools/dataset_converters/make_toy_dataset.py --kind persons
# --out data/toy_persons), COCO keypoint layout, top-down on the ground-truth
# boxes; COCO OKS AP on the val split. Pipelines come from the method config.
dataset_type = 'CheckedCocoDataset'
data_mode = 'topdown'
data_root = 'data/toy_persons/'
metainfo = dict(from_file='configs/_base_/datasets/coco.py')

train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        metainfo=metainfo,
        ann_file='annotations/train.json',
        data_prefix=dict(img='images/train/'),
    ))
val_dataloader = dict(
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        metainfo=metainfo,
        ann_file='annotations/val.json',
        data_prefix=dict(img='images/val/'),
        test_mode=True,
    ))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='GuardedCocoMetric', ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator

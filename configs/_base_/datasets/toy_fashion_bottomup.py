# Generated toy fashion (python tools/dataset_converters/make_toy_dataset.py --kind fashion
# --out data/toy_fashion): 3 garment categories on one 32-keypoint list,
# bottom-up; AP per category over its own keypoint range
# (MultiCategoryCocoMetric), logged under toy_fashion/.
dataset_type = 'ToyFashionDataset'
data_mode = 'bottomup'
data_root = 'data/toy_fashion/'

train_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/train.json',
        data_prefix=dict(img='images/train/'),
    ))
val_dataloader = dict(
    batch_size=16,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/val.json',
        data_prefix=dict(img='images/val/'),
        test_mode=True,
    ))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='MultiCategoryCocoMetric',
    ann_file=data_root + 'annotations/val.json',
    category_keypoints='toy_fashion',
    prefix='toy_fashion')
test_evaluator = val_evaluator

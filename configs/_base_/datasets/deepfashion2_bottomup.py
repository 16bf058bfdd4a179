# DeepFashion2 (13 clothing categories on one list of 294 keypoints),
# bottom-up. The official release converted to the COCO keypoint layout with
# its deepfashion2_to_coco.py (one annotation per garment, all 294
# keypoints, zeros outside its category's range), laid out as
#   data/deepfashion2/train/deepfashion2_train.json
#   data/deepfashion2/train/image/*.jpg
#   data/deepfashion2/validation/deepfashion2_validation.json
#   data/deepfashion2/validation/image/*.jpg
# DeepFashion2FullDataset adds the 294 official OKS sigmas (mmpose's own
# DeepFashion2 metainfo has none) and checks category ids and keypoint
# counts while loading. Evaluation follows the official protocol: OKS per
# category over that category's keypoint range, maxDets 20
# (MultiCategoryCocoMetric), overall and per-category AP under df2/.
# Method configs set the training batch size.
dataset_type = 'DeepFashion2FullDataset'
data_mode = 'bottomup'
data_root = 'data/deepfashion2/'

train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='train/deepfashion2_train.json',
        data_prefix=dict(img='train/image/'),
    ))
val_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='validation/deepfashion2_validation.json',
        data_prefix=dict(img='validation/image/'),
        test_mode=True,
    ))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='MultiCategoryCocoMetric',
    ann_file=data_root + 'validation/deepfashion2_validation.json',
    category_keypoints='deepfashion2',
    prefix='df2')
test_evaluator = val_evaluator

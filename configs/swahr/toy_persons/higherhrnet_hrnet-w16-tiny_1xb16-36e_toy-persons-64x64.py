# The toy HigherHRNet at a quarter of the pixels: 64x64 input (16x16 and
# 32x32 outputs), toy persons generated at 64 px, 36 epochs. On the shared
# CPU this fits 3x the iterations of the 128x128 config into less time; the
# learning comparison of docs/benchmarks.md uses it.
#   python tools/dataset_converters/make_toy_dataset.py --kind persons --out data/toy_persons_64 \
#       --image-size 64
_base_ = ['./higherhrnet_hrnet-w16-tiny_1xb16-12e_toy-persons-128x128.py']

max_epochs = 36
train_cfg = dict(max_epochs=max_epochs, val_interval=18)
param_scheduler = [
    # warm-up from 0.1 x lr, as the authors' trainer
    dict(type='LinearLR', start_factor=0.1, begin=0, end=50,
         by_epoch=False),
    dict(type='LinearLR', start_factor=1.0, end_factor=0.0, begin=0,
         end=max_epochs, by_epoch=True, convert_to_iter_based=True),
]

input_size = (64, 64)
keypoint_order = [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16]
codec = dict(
    type='MultiResolutionAELabel',
    input_size=input_size,
    heatmap_sizes=[(16, 16), (32, 32)],
    sigma=2,
    decode_keypoint_order=keypoint_order,
    decode_keypoint_thr=0.1,
    decode_topk=20,
    decode_max_instances=20)
model = dict(head=dict(decoder=dict(codec, _delete_=True)))

data_root = 'data/toy_persons_64/'
train_pipeline = [
    dict(type='LoadImage'),
    dict(
        type='BottomupRandomAffine',
        input_size=input_size,
        shift_factor=5 / 64,
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
    dict(
        type='PackPoseInputs',
        meta_keys=('id', 'img_id', 'img_path', 'crowd_index', 'ori_shape',
                   'img_shape', 'input_size', 'input_center', 'input_scale',
                   'flip', 'flip_direction', 'flip_indices', 'raw_ann_info',
                   'skeleton_links')),
]
train_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(data_root=data_root, pipeline=val_pipeline))
test_dataloader = val_dataloader
default_hooks = dict(checkpoint=dict(interval=18))
val_evaluator = dict(ann_file=data_root + 'annotations/val.json')
test_evaluator = val_evaluator

# Grouped CenterNet on toy fashion with a grouping COMPUTED from a trained
# ungrouped model (the grouping toolkit's end-to-end recipe): rows of the
# last convolutions of the keypoint branches of the `make demo-centernet`
# model (80 epochs, work_dirs/demo_centernet/epoch_80.pth), average linkage,
# with restrictions (no two keypoints of one category share a group), cut at
# the smallest clean count (14 / 14).
# Fine-tuning schedule: 5 epochs at Adam 5e-4 (5e-5 in the last), starting
# from the ungrouped checkpoint converted by tools/model_converters/init_grouped_head.py:
#   make demo-centernet
#   python tools/analysis_tools/group_keypoints.py configs/centernet_grouping/groupings/toy-fashion_conv-reg14-hm14.json \
#       --checkpoint work_dirs/demo_centernet/epoch_80.pth --layout toy_fashion --reg-clusters 14 --hm-clusters 14
#   python tools/model_converters/init_grouped_head.py work_dirs/demo_centernet/epoch_80.pth \
#       configs/centernet_grouping/groupings/toy-fashion_conv-reg14-hm14.json work_dirs/conv_g14_init.pth
#   python tools/train.py THIS_CONFIG --cfg-options load_from=work_dirs/conv_g14_init.pth
# Measured: docs/benchmarks.md ("Grouping toolkit end to end").
_base_ = ['./cn-pose-g14_dla34-tiny_1xb16-80e_toy-fashion-128x128.py']

grouping_file = ('configs/centernet_grouping/groupings/'
                 'toy-fashion_conv-reg14-hm14.json')
codec = dict(
    type='GroupedCenterNetLabel',
    input_size=(128, 128),
    heatmap_size=(32, 32),
    num_keypoints=32,
    category_keypoints='toy_fashion',
    grouping_file=grouping_file,
    allow_inconsistent=False,
    decode_mode='rescore',
    rescore_sigma=3.0,
    topk=20)
model = dict(head=dict(grouping_file=grouping_file, decoder=codec))
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImage'),
    dict(type='BottomupRandomAffine', input_size=(128, 128),
         shift_factor=0.1, rotate_factor=0, scale_factor=(0.8, 1.2)),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='CenterNetFilterInstances', category_keypoints='toy_fashion'),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]))

max_epochs = 5
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(type='Adam', lr=5e-4))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=15, start_factor=0.1,
         by_epoch=False),
    dict(type='MultiStepLR', begin=0, end=max_epochs, milestones=[4],
         gamma=0.1, by_epoch=True),
]
default_hooks = dict(
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1, save_best=None))
# The converted ungrouped checkpoint (tools/model_converters/init_grouped_head.py).
load_from = None

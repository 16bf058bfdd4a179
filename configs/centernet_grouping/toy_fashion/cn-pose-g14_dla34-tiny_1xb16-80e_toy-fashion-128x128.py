# Grouped CenterNet on toy fashion, grouped across categories: keypoint i of
# every category shares regression group i and heatmap channel i (14/14
# groups instead of 32/32: 3 + 2 + 2 + 28 + 14 + 2 = 51 output channels
# instead of 105). No two keypoints of one category share a group.
_base_ = ['./cn-pose_dla34-tiny_1xb16-80e_toy-fashion-128x128.py']

grouping_file = ('configs/centernet_grouping/groupings/'
                 'toy-fashion_index-in-category-14.json')
codec = dict(
    type='GroupedCenterNetLabel',
    input_size=(128, 128),
    heatmap_size=(32, 32),
    num_keypoints=32,
    category_keypoints='toy_fashion',
    grouping_file=grouping_file,
    allow_inconsistent=False,
    decode_mode='rescore',
    rescore_sigma=2.0,
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

# Grouped CenterNet on toy fashion with a grouping computed from the
# training ANNOTATIONS by the grouping toolkit: mean keypoint offsets from
# the box centre, average linkage for the 14 regression groups,
# anti-offsets (complete linkage on negated distances) for the 14 heatmap
# groups, both with restrictions (no two keypoints of one category share a
# group); same channel count as cn-pose-g14 (data-free "index in category").
#   python tools/analysis_tools/group_keypoints.py configs/centernet_grouping/groupings/toy-fashion_offsets-reg14_anti-offsets-hm14.json \
#       --ann-file data/toy_fashion/annotations/train.json --layout toy_fashion
# Not flip-consistent: flip_test stays False (as in the base).
_base_ = ['./cn-pose-g14_dla34-tiny_1xb16-80e_toy-fashion-128x128.py']

grouping_file = ('configs/centernet_grouping/groupings/'
                 'toy-fashion_offsets-reg14_anti-offsets-hm14.json')
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

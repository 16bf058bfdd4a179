# Grouped CenterNet on toy fashion with regression groups that merge
# keypoints of different categories AND neighbouring keypoints of the same
# category (7 regression groups, 14 heatmap groups; allow_inconsistent=True:
# per group the lowest keypoint index keeps the regression target). The
# other keypoints take the coarse position of their group's owner and are
# refined on their own heatmap channel: rescored decoding should beat
# nearest on such a model (the paper's argument; measured in
# docs/benchmarks.md).
_base_ = ['./cn-pose_dla34-tiny_1xb16-80e_toy-fashion-128x128.py']

grouping_file = ('configs/centernet_grouping/groupings/'
                 'toy-fashion_reg7-merged_hm14.json')
codec = dict(
    type='GroupedCenterNetLabel',
    input_size=(128, 128),
    heatmap_size=(32, 32),
    num_keypoints=32,
    category_keypoints='toy_fashion',
    grouping_file=grouping_file,
    allow_inconsistent=True,
    decode_mode='rescore',
    # swept: 6-16 within 0.001 AP; coarse points of merged keypoints are
    # one neighbour away, so a wider mask than the ungrouped model's
    rescore_sigma=8.0,
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

# Grouped CenterNet on DeepFashion2 fed by a grouping JSON: keypoint i of
# every category shares regression group i and heatmap channel i (39 / 39
# groups: 13 + 2 + 2 + 78 + 39 + 2 = 136 output channels instead of 901).
# No two keypoints of one category share a group, so every garment keeps one
# target per cell. This data-free grouping is NOT the paper's manual 62-group
# table (not public); compute data-driven groupings with the grouping
# toolkit and point grouping_file at them. The grouping is not
# flip-consistent, so flip test is off.
_base_ = ['./cn-pose_dla34_8xb32-140e_deepfashion2-512x512.py']

grouping_file = ('configs/centernet_grouping/groupings/'
                 'deepfashion2_index-in-category-39.json')
codec = dict(
    type='GroupedCenterNetLabel',
    input_size=(512, 512),
    heatmap_size=(128, 128),
    num_keypoints=294,
    category_keypoints='deepfashion2',
    grouping_file=grouping_file,
    decode_mode='rescore',
    rescore_sigma=2.0,
    topk=100)
model = dict(
    head=dict(grouping_file=grouping_file, decoder=codec),
    test_cfg=dict(flip_test=False))
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImage'),
    dict(type='BottomupRandomAffine', input_size=(512, 512),
         shift_factor=0.1, rotate_factor=0, scale_factor=(0.6, 1.4)),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='CenterNetFilterInstances', category_keypoints='deepfashion2'),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]))

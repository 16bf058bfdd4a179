# Grouped CenterNet on COCO: 14 regression groups from mean
# keypoint offsets (average linkage; merges keypoints of one person, so
# allow_inconsistent=True: per group the lowest index keeps the regression
# target, the others are refined on their own heatmap channel), 17 heatmap
# groups.
# Grouping computed by the grouping toolkit from the mean keypoint offsets
# of the shared 4-image COCO fixture (14 person annotations); see
# configs/centernet_grouping/groupings/README.md for the command and caveats.
# The grouping is not flip-consistent, so flip_test=False.
_base_ = ['./cn-pose_dla34_8xb32-140e_coco-256x256.py']

grouping_file = ('configs/centernet_grouping/groupings/'
                 'coco_reg14-offsets_hm17.json')
codec = dict(
    type='GroupedCenterNetLabel',
    input_size=(256, 256),
    heatmap_size=(64, 64),
    num_keypoints=17,
    category_keypoints='coco',
    grouping_file=grouping_file,
    allow_inconsistent=True,
    decode_mode='rescore',
    rescore_sigma=2.0,
    topk=100)
model = dict(
    head=dict(grouping_file=grouping_file, decoder=codec),
    test_cfg=dict(flip_test=False))
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImage'),
    dict(type='BottomupRandomAffine', input_size=(256, 256),
         shift_factor=0.1, rotate_factor=0, scale_factor=(0.6, 1.4)),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='CenterNetFilterInstances', category_keypoints='coco'),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]))

# Grouped CenterNet on COCO: 17 regression groups, 14 heatmap
# groups by anti-offsets (complete linkage on negated offset distances: far
# apart keypoints share a heatmap channel; regression tells them apart).
# Grouping computed by the grouping toolkit from the mean keypoint offsets
# of the shared 4-image COCO fixture (14 person annotations); see
# configs/centernet_grouping/groupings/README.md for the command and caveats.
# The grouping is not flip-consistent, so flip_test=False.
_base_ = ['./cn-pose_dla34_8xb32-140e_coco-256x256.py']

grouping_file = ('configs/centernet_grouping/groupings/'
                 'coco_reg17_hm14-anti-offsets.json')
codec = dict(
    type='GroupedCenterNetLabel',
    input_size=(256, 256),
    heatmap_size=(64, 64),
    num_keypoints=17,
    category_keypoints='coco',
    grouping_file=grouping_file,
    allow_inconsistent=False,
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

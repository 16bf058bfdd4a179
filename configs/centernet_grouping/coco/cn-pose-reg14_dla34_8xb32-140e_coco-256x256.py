# Grouped CenterNet on COCO with 14 regression groups ({nose, eyes},
# {ears}, the rest alone) and 17 heatmap groups. Merged keypoints belong to the same person,
# so allow_inconsistent=True: per group the lowest keypoint index keeps the
# regression target, the others take their coarse position from it and are
# refined on their own heatmap channel (decode_mode='rescore', the paper's
# point). The paper's groupings come from data (grouping toolkit); this one
# is anatomical (configs/centernet_grouping/groupings/README.md).
_base_ = ['./cn-pose_dla34_8xb32-140e_coco-256x256.py']

grouping_file = ('configs/centernet_grouping/groupings/'
                 'coco_reg14-manual_hm17.json')
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
model = dict(head=dict(grouping_file=grouping_file, decoder=codec))
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImage'),
    dict(type='BottomupRandomAffine', input_size=(256, 256),
         shift_factor=0.1, rotate_factor=0, scale_factor=(0.6, 1.4)),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='CenterNetFilterInstances', category_keypoints='coco'),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]))

# The authors' CenterNet human-pose model (xingyizhou/CenterNet,
# multi_pose_dla_3x: DLA-34 with deformable convolutions in the up-path, 320
# epochs) evaluated in mmpose with the authors' test settings: 512x512 input,
# flip test, top-100 centres, `nearest` keypoint decoding (their
# multi_pose_decode: regressed joints snapped to the nearest joint-heatmap
# peak above 0.1 inside the person's box), their flip fusion
# (flip_mode='official').
# Published AP on COCO val2017 (flip test): 58.9 (not re-measured here).
# Convert the published file, then test:
#   python tools/model_converters/convert_centernet_checkpoint.py multi_pose_dla_3x.pth \
#       work_dirs/multi_pose_dla_3x_mmkp.pth
#   python tools/test.py configs/centernet_grouping/coco/cn-pose_dla34-dcn_authors-3x_coco-512x512.py \
#       work_dirs/multi_pose_dla_3x_mmkp.pth
# The same network with our Gaussian-rescored decoding:
# cn-pose_dla34-dcn-rescore_authors-3x_coco-512x512.py.
_base_ = ['./cn-pose_dla34_8xb32-140e_coco-256x256.py']

input_size = (512, 512)
codec = dict(
    input_size=input_size,
    heatmap_size=(128, 128),
    decode_mode='nearest',
    nearest_score_thr=0.1,
    topk=100)

model = dict(
    backbone=dict(init_cfg=None),
    neck=dict(conv_type='dcn'),
    head=dict(decoder=codec),
    # the authors' flip fusion: index mirror of the stride-4 maps
    # (flip_mode='exact', our default, corrects its ~2 input px shift)
    test_cfg=dict(flip_test=True, flip_mode='official'))

val_pipeline = [
    dict(type='LoadImage'),
    dict(type='BottomupResize', input_size=input_size),
    dict(type='PackPoseInputs',
         meta_keys=('id', 'img_id', 'img_path', 'crowd_index', 'ori_shape',
                    'img_shape', 'input_size', 'input_center',
                    'input_scale', 'flip', 'flip_direction',
                    'flip_indices', 'raw_ann_info')),
]
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader

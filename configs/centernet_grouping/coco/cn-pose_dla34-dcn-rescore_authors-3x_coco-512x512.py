# The authors' multi_pose_dla_3x network (see
# cn-pose_dla34-dcn_authors-3x_coco-512x512.py) decoded with Gaussian
# rescoring instead of the authors' nearest-peak snapping and with the exact
# flip fusion (flip_mode='exact'); input size and thresholds as the authors
# test. No published AP for this setting; tune the sigma
# with tools/analysis_tools/sweep_rescore_sigma.py CONFIG CKPT.
_base_ = ['./cn-pose_dla34-dcn_authors-3x_coco-512x512.py']

codec = dict(
    input_size=(512, 512),
    heatmap_size=(128, 128),
    decode_mode='rescore',
    rescore_sigma=2.0,
    topk=100)
model = dict(
    head=dict(decoder=codec), test_cfg=dict(flip_test=True,
                                           flip_mode='exact'))

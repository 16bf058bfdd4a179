# SWAHR on HigherHRNet-W48, COCO 640x640 (outputs 160 and 320): the W32
# SWAHR config with the W48 backbone / head widths and the authors' W48
# settings (10 images x 8 GPUs, Adam lr 0.00012 per GPU, keypoint threshold
# 0.1; greatlog/SWAHR-HumanPose experiments/coco/higher_hrnet/
# w48_640_adam_lr1e-3.yaml). Paper: 70.2 AP on COCO test-dev.
_base_ = ['./swahr_hrnet-w32_8xb20-300e_coco-512x512.py']

optim_wrapper = dict(optimizer=dict(lr=0.00012 * 8))
auto_scale_lr = dict(base_batch_size=80)

input_size = (640, 640)
keypoint_order = [0, 1, 2, 3, 4, 5, 6, 11, 12, 7, 8, 9, 10, 13, 14, 15, 16]
codec = dict(
    type='MultiResolutionAELabel',
    input_size=input_size,
    heatmap_sizes=[(160, 160), (320, 320)],
    sigma=2,
    decode_keypoint_order=keypoint_order,
    decode_nms_kernel=5,
    decode_keypoint_thr=0.1,
    decode_tag_thr=1.0,
    decode_topk=30,
    decode_max_instances=30)

model = dict(
    backbone=dict(
        extra=dict(
            stage2=dict(num_channels=(48, 96)),
            stage3=dict(num_channels=(48, 96, 192)),
            stage4=dict(num_channels=(48, 96, 192, 384))),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmpose/'
            'pretrain_models/hrnet_w48-8ef0771d.pth')),
    head=dict(
        in_channels=48, deconv_channels=48, decoder=dict(codec, _delete_=True)))

train_pipeline = [
    dict(type='LoadImage'),
    dict(
        type='BottomupRandomAffine',
        input_size=input_size,
        shift_factor=40 / 640,
        scale_factor=(0.75, 1.5),
        scale_type='short',
        rotate_factor=30,
        distribution='uniform'),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='BottomupIgnoreMask'),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImage'),
    dict(
        type='BottomupResize',
        input_size=input_size,
        size_factor=32,
        resize_mode='fit'),
    # no 'category_id': bottom-up samples would carry one per annotation
    # and CocoMetric would use that list as the category of every result
    dict(
        type='PackPoseInputs',
        meta_keys=('id', 'img_id', 'img_path', 'crowd_index', 'ori_shape',
                   'img_shape', 'input_size', 'input_center', 'input_scale',
                   'flip', 'flip_direction', 'flip_indices', 'raw_ann_info',
                   'skeleton_links')),
]
train_dataloader = dict(batch_size=10, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader

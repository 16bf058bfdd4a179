# Plain-HRNet baseline of the HRNet++ toy comparison: a small mmpose HRNet
# (width 16, one exchange module per stage except two in stage 3) with
# mmpose's HeatmapHead on the 1/4-resolution branch, trained like the
# soft-argmax toy recipe's stage 1 (same data, pipeline, schedule, seed).
# The HRNet++ counterpart td-hm_hrnetpp-w16-tiny_1xb16-20e_toy-persons-128x96.py
# differs only in the backbone switches and the sub-pixel fusion neck.
#   python tools/dataset_converters/make_toy_dataset.py --kind persons --out data/toy_persons
#   python tools/train.py configs/hrnetpp/toy_persons/td-hm_hrnet-w16-tiny_1xb16-20e_toy-persons-128x96.py
_base_ = [
    '../../soft_argmax/toy_persons/'
    'td-hm_res18-s8_1xb16-20e_toy-persons-128x96.py'
]
custom_imports = dict(imports=['mmkp_ext'], allow_failed_imports=False)

# The backbone's stage layout, shared by the HRNet++ toy configs.
hrnet_extra = dict(
    stage1=dict(
        num_modules=1,
        num_branches=1,
        block='BOTTLENECK',
        num_blocks=(2, ),
        num_channels=(32, )),
    stage2=dict(
        num_modules=1,
        num_branches=2,
        block='BASIC',
        num_blocks=(2, 2),
        num_channels=(16, 32)),
    stage3=dict(
        num_modules=2,
        num_branches=3,
        block='BASIC',
        num_blocks=(2, 2, 2),
        num_channels=(16, 32, 64)),
    stage4=dict(
        num_modules=1,
        num_branches=4,
        block='BASIC',
        num_blocks=(2, 2, 2, 2),
        num_channels=(16, 32, 64, 128)))

model = dict(
    backbone=dict(_delete_=True, type='HRNet', in_channels=3,
                  extra=hrnet_extra),
    head=dict(
        in_channels=16,
        deconv_out_channels=None,
        deconv_kernel_sizes=None))

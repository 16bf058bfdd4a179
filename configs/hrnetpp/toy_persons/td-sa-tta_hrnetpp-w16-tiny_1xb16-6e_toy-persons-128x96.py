# The HRNet++ soft-argmax model with the report's test-time augmentation
# (flip x scales {0.8, 1.0, 1.2} and rotations {-10, +10} degrees): same
# modules and checkpoint as td-sa_hrnetpp-w16-tiny_1xb16-6e_toy-persons-128x96.py,
# only the estimator type and test_cfg differ.
#   python tools/test.py configs/hrnetpp/toy_persons/td-sa-tta_hrnetpp-w16-tiny_1xb16-6e_toy-persons-128x96.py <soft-argmax run>.pth
_base_ = ['./td-sa_hrnetpp-w16-tiny_1xb16-6e_toy-persons-128x96.py']

model = dict(
    type='TopdownTTAPoseEstimator',
    test_cfg=dict(
        tta=dict(scales=(0.8, 1.0, 1.2), rotations=(-10.0, 10.0))))

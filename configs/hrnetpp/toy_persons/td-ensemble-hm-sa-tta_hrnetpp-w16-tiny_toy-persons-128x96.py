# The HRNet++ ensemble (td-ensemble-hm-sa_...) with the report's test-time
# augmentation on top of flip: scales {0.8, 1.0, 1.2} and rotations
# {-10, +10} degrees, 5 crops x flip in one batched forward per member,
# keypoints mapped back to the original crop and averaged. Test only; same
# merged checkpoint as the ensemble config:
#   python tools/test.py configs/hrnetpp/toy_persons/td-ensemble-hm-sa-tta_hrnetpp-w16-tiny_toy-persons-128x96.py work_dirs/ens.pth
_base_ = ['./td-ensemble-hm-sa_hrnetpp-w16-tiny_toy-persons-128x96.py']

model = dict(
    test_cfg=dict(
        tta=dict(scales=(0.8, 1.0, 1.2), rotations=(-10.0, 10.0))))

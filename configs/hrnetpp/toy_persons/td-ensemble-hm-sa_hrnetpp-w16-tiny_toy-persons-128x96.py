# HRNet++ ensemble on toy persons (test only): the mean of the keypoints of
# the heatmap model and of its soft-argmax fine-tune, as in the report. Each
# member is built from its own config and flip-tested by its own head.
# stock test.py needs one checkpoint: merge the two trained ones first,
#   python tools/model_converters/merge_ensemble_checkpoint.py configs/hrnetpp/toy_persons/td-ensemble-hm-sa_hrnetpp-w16-tiny_toy-persons-128x96.py \
#       work_dirs/ens.pth --checkpoints <heatmap run>.pth <soft-argmax run>.pth
#   python tools/test.py configs/hrnetpp/toy_persons/td-ensemble-hm-sa_hrnetpp-w16-tiny_toy-persons-128x96.py work_dirs/ens.pth
# (or fill in the members' `checkpoint` entries below and leave out
# --checkpoints).
# Data, pipelines and evaluator: those of the heatmap model's config.
_base_ = ['./td-hm_hrnetpp-w16-tiny_1xb16-20e_toy-persons-128x96.py']

model = dict(
    _delete_=True,
    type='EnsemblePoseEstimator',
    members=[
        dict(
            config='{{fileDirname}}/'
            'td-hm_hrnetpp-w16-tiny_1xb16-20e_toy-persons-128x96.py',
            checkpoint=None,
            weight=1.0),
        dict(
            config='{{fileDirname}}/'
            'td-sa_hrnetpp-w16-tiny_1xb16-6e_toy-persons-128x96.py',
            checkpoint=None,
            weight=1.0),
    ],
    test_cfg=dict(flip_test=True))

# HRNet++-W48 final test setting of the COCO 2019 challenge report
# ("ensemble + TTA", 77.0 AP on COCO val): the mean of the keypoints of the
# heatmap model (td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py) and of its
# soft-argmax fine-tune (td-sa_hrnetpp-w48_8xb32-20e_coco-384x288.py), each
# flip-tested, on 5 crops per person (scales 0.8 / 1.0 / 1.2, rotations
# -10 / +10 degrees), mapped back and averaged. Test only. There are no
# public HRNet++ checkpoints: train both models, then
#   python tools/model_converters/merge_ensemble_checkpoint.py configs/hrnetpp/coco/td-ensemble-hm-sa-tta_hrnetpp-w48_coco-384x288.py \
#       work_dirs/hrnetpp-w48_ensemble.pth   # uses the `checkpoint` entries below
#   python tools/test.py configs/hrnetpp/coco/td-ensemble-hm-sa-tta_hrnetpp-w48_coco-384x288.py \
#       work_dirs/hrnetpp-w48_ensemble.pth
# Cost: 2 models x 5 crops x flip = 20 crop forwards per person (each model
# runs its 10 crops in one batched forward); lower test_dataloader.batch_size
# if GPU memory runs out. Data, person boxes, pipeline and evaluator: those
# of the heatmap model's config.
_base_ = ['./td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py']

model = dict(
    _delete_=True,
    type='EnsemblePoseEstimator',
    members=[
        dict(
            config='{{fileDirname}}/'
            'td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py',
            checkpoint='work_dirs/td-hm_hrnetpp-w48_8xb32-150e_coco-384x288/'
            'epoch_150.pth',
            weight=1.0),
        dict(
            config='{{fileDirname}}/'
            'td-sa_hrnetpp-w48_8xb32-20e_coco-384x288.py',
            checkpoint='work_dirs/td-sa_hrnetpp-w48_8xb32-20e_coco-384x288/'
            'epoch_20.pth',
            weight=1.0),
    ],
    test_cfg=dict(
        flip_test=True,
        tta=dict(scales=(0.8, 1.0, 1.2), rotations=(-10.0, 10.0))))

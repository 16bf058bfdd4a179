"""Poseur learns: a tiny ResNet-18 (widths 16-128) with a ChannelMapper to
32 channels and PoseurHead (2 decoder layers, EMSDA cross-attention, RLE
losses on the coarse and decoded coordinates, noisy query groups as in
training) on RegressionLabel fits the people of 8 generated 64 px
toy-persons images (top-down, 64x48 crops of the ground-truth boxes).

The RLE loss is a negative log-likelihood and goes below zero as the model
fits, so the loss criterion is a fall in nats (first 3 steps' mean minus
the last 3 steps'), not a fraction.

Measured with ``OMP_NUM_THREADS=1 python benchmarks/learning_seeds.py
--tests poseur --seeds 0 1 2 3 4 5 6 7`` (100 steps, AdamW 2e-2 after a
10-step warm-up, gradient norm clipped at 1, full batch of the people of 8
images; CPU seconds of the run: data preparation, training and
evaluation; two runs at a time on the 2-core machine, as the suite's two
workers run; one run alone takes about 14 s):

=============  ===============  =======  =======
run            loss fall (nats) coco/AP  CPU
=============  ===============  =======  =======
seed 0         1478             0.468    20.2 s
seed 1         1682             0.410    18.6 s
seed 2         1444             0.582    20.4 s
seed 3         1613             0.640    17.9 s
seed 4         1517             0.580    19.5 s
seed 5         1326             0.508    18.7 s
seed 6         1441             0.583    20.4 s
seed 7         1793             0.598    17.5 s
seed 0, lr=0   -2.5             0.000    4.7 s
=============  ===============  =======  =======

(The lr=0 loss moves a little because the noisy query groups are drawn
anew at every step.) Thresholds: a fall of >= 500 nats and AP >= 0.2, i.e.
about a third of the smallest fall and half the worst seed's AP, and 0.2
above the control.

The recipe before (150 steps, AdamW 5e-3, no clipping) took half as long
again and was fragile: AP 0.081 / 0.581 / 0.348 / 0.120 / 0.000 at seeds
0-4 (seed 4 fitted nothing; lr 1e-2 without clipping: 0.527 / 0.118 /
0.280 / 0.319 / 0.000 at 100 steps; 1e-2 with clipping: 0.325 / 0.615 /
0.349 / 0.153 / 0.032). Clipping the gradient norm at 1 lets the still
larger rate fit every seed measured.
"""
from _learning import (PREPROCESSOR, coco_ap, fit, learning_tests,
                       topdown_batches)

STEPS, LR = 100, 2e-2
#: The summed RLE losses (3 terms) must fall by at least this many nats.
MIN_LOSS_FALL = 500.0
#: coco/AP on the fitted images that the trained model must reach and the
#: lr=0 control must stay below.
MIN_AP = 0.2

#: fit() options: a short warm-up (transformer decoder) and the gradient
#: norm clipped at 1.
FIT_KW = dict(warmup=10, grad_clip=1.0)

CODEC = dict(type='RegressionLabel', input_size=(48, 64))
EMBED = 32
MODEL = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=PREPROCESSOR,
    backbone=dict(type='ResNet', depth=18, stem_channels=16,
                  base_channels=16, out_indices=(0, 1, 2, 3)),
    neck=dict(type='ChannelMapper', in_channels=[16, 32, 64, 128],
              out_channels=EMBED, kernel_size=1, act_cfg=None,
              norm_cfg=dict(type='GN', num_groups=8)),
    head=dict(type='PoseurHead', num_joints=17, in_channels=EMBED,
              num_feature_levels=4, num_decoder_layers=2, num_heads=4,
              feedforward_channels=64, dropout=0.0,
              cross_attention='EMSDA',
              loss_coarse=dict(type='PoseurRLELoss'),
              loss_decoder=dict(type='PoseurRLELoss'), decoder=CODEC),
    test_cfg=dict(flip_test=False))


def prepare(info):
    """(metainfo, training batches, prediction batches) of the fitted
    people (top-down crops with the codec's targets)."""
    meta, batches = topdown_batches(info, CODEC)
    return meta, batches, batches


def score(model, batches, info, meta):
    """coco/AP of ``model`` on the fitted images."""
    return coco_ap(model, batches, info, meta)


def run(info, seed=0, lr=LR, steps=STEPS):
    """Train with ``seed`` / ``lr``; return (FitResult, coco/AP on the
    training images)."""
    meta, train, test = prepare(info)
    result = fit(MODEL, train, steps, lr, seed=seed, **FIT_KW)
    return result, score(result.model, test, info, meta)


# DATA (8 toy-persons images of 64 px), the module fixture ``info`` and
# the two tests (trained run passes both thresholds; the lr=0 control stays
# below them)
learning_tests(globals(), 'poseur', ('persons', 64, 8), run, MIN_LOSS_FALL,
               MIN_AP, loss_measure='loss_fall')

# The paper's wide model: td-hm_softgated-hg4-c144_1xb24-200e_mpii-256x256.py
# at width 256 (25.9M parameters, 27.8 GFLOPs at 256x256 here).
_base_ = ['./td-hm_softgated-hg4-c144_1xb24-200e_mpii-256x256.py']

model = dict(backbone=dict(channels=256))

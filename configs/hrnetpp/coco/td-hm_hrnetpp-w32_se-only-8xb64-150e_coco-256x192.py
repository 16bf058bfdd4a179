# Ablation: the baseline (td-hm_hrnetpp-w32_all-off-...) + SE residual units
# (squeeze-excitation on every residual branch before the addition, r = 8).
_base_ = ['./td-hm_hrnetpp-w32_all-off-8xb64-150e_coco-256x192.py']

model = dict(backbone=dict(se_ratio=8))

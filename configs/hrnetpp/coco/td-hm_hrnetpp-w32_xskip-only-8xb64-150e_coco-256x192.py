# Ablation: the baseline (td-hm_hrnetpp-w32_all-off-...) + cross-module skip
# connections (each exchange block's output also feeds every later exchange
# block at the same resolution through a 1x1 conv, summed).
_base_ = ['./td-hm_hrnetpp-w32_all-off-8xb64-150e_coco-256x192.py']

model = dict(backbone=dict(cross_module_skips=True))

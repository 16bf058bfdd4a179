# Ablation: the baseline (td-hm_hrnetpp-w32_all-off-...) + average-pool
# downsampling (every strided 3x3 conv but the stem's -> AvgPool(2) + 1x1).
_base_ = ['./td-hm_hrnetpp-w32_all-off-8xb64-150e_coco-256x192.py']

model = dict(backbone=dict(avg_pool_downsample=True))

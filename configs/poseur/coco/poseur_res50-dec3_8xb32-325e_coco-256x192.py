# Poseur ResNet-50 with 3 decoder layers (paper table: 28.8M parameters,
# 4.48 GFLOPs, 74.7 AP); otherwise poseur_res50_8xb32-325e_coco-256x192.py.
#   python tools/analysis_tools/get_complexity.py configs/poseur/coco/poseur_res50-dec3_8xb32-325e_coco-256x192.py
_base_ = ['./poseur_res50_8xb32-325e_coco-256x192.py']

model = dict(head=dict(num_decoder_layers=3))

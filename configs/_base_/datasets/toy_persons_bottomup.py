# Generated toy persons (python tools/dataset_converters/make_toy_dataset.py --kind persons
# --out data/toy_persons --image-size 128), bottom-up: whole images, 16 per
# test batch; COCO OKS AP with the detector's instance scores and no
# OKS-NMS (the grouping already yields one instance per person).
_base_ = ['./toy_persons_topdown.py']

data_mode = 'bottomup'
train_dataloader = dict(dataset=dict(data_mode=data_mode))
val_dataloader = dict(batch_size=16, dataset=dict(data_mode=data_mode))
test_dataloader = val_dataloader

val_evaluator = dict(nms_mode='none', score_mode='bbox')
test_evaluator = val_evaluator

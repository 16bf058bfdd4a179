# mmpose dataset_info of the synthetic "toy fashion" dataset
# (mmkp_ext.datasets.toy.fashion): 3 garment categories sharing one global
# list of 32 keypoints, each category owning a contiguous slice. Usable as
# `metainfo=dict(from_file=...)` in configs (mmkp_ext.datasets.
# FASHION_METAINFO_FILE is this file's absolute path). It holds no data of
# its own: names, swaps, skeleton, colours and sigmas come from the
# generator's layout (toy_fashion.FASHION_CATEGORIES), their one source.
#
# `_base_` must be assigned before the import: mmengine (>= 0.8) parses a
# config whose first non-builtin import comes before any `_base_` as a
# "lazy import" config, where imported names are placeholders that cannot be
# called. With `_base_` first this is a plain config, run as Python.
_base_ = []
from mmkp_ext.datasets.toy.fashion import fashion_dataset_info  # noqa: E402

dataset_info = fashion_dataset_info()

"""mmpose dataset class of the synthetic multi-class fashion dataset."""
from mmpose.datasets.datasets.base import BaseCocoStyleDataset
from mmpose.registry import DATASETS

from .checked_coco_datasets import CheckedAnnotationsMixin
from .toy.fashion import fashion_dataset_info


@DATASETS.register_module()
class ToyFashionDataset(CheckedAnnotationsMixin, BaseCocoStyleDataset):
    """COCO-style dataset of :mod:`mmkp_ext.datasets.toy.fashion` output.

    Like mmpose's ``DeepFashion2Dataset``: every instance carries the full
    global keypoint vector (32 keypoints over 3 categories, see
    :data:`~mmkp_ext.datasets.toy.fashion.FASHION_CATEGORIES`), with zeros
    outside its category's slice, so its ``keypoints`` are (1, 32, 2) and
    ``keypoints_visible`` (1, 32); ``category_id`` says which slice is live.
    The metainfo (names, flip pairs within each category, per-category
    outline skeletons, sigmas) is
    :func:`~mmkp_ext.datasets.toy.fashion.fashion_dataset_info`, derived
    from the generator's layout, so no config needs to name it.

    The annotation file is checked when loaded
    (``CheckedAnnotationsMixin`` of
    :mod:`mmkp_ext.datasets.checked_coco_datasets`):
    e.g. an annotation with 31 keypoints fails there, naming the file, the
    annotation id and both counts.
    """

    METAINFO: dict = fashion_dataset_info()

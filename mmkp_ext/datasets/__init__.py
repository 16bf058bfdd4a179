"""Datasets of mmkp_ext: dataset classes (DeepFashion2 with the official
294 sigmas, the toy fashion layout, mmpose's datasets with annotation checks
at load), transforms, metainfo, and the synthetic ("toy") COCO-format
generators in :mod:`.toy` (numpy and OpenCV only; :func:`make_toy_dataset`
writes a dataset to disk).
"""
from ..grouping.layout import (DEEPFASHION2_CATEGORY_RANGES, KNOWN_LAYOUTS,
                               get_category_keypoint_ranges,
                               keypoint_category_matrix)
from . import transforms  # noqa: F401
from .annotation_checks import (AnnotationError,
                                check_coco_keypoint_annotations)
from .checked_coco_datasets import (CheckedAicDataset, CheckedCocoDataset,
                                    CheckedCrowdPoseDataset)
from .checked_mpii_dataset import CheckedMpiiDataset
from .deepfashion2_full_dataset import (DEEPFASHION2_FULL_METAINFO_FILE,
                                        DeepFashion2FullDataset)
from .toy import (COCO_KEYPOINT_NAMES, COCO_SKELETON, FASHION_CATEGORIES,
                  FASHION_FLIP_INDICES, FASHION_KEYPOINT_NAMES,
                  FASHION_METAINFO_FILE, FASHION_NUM_KEYPOINTS, TOY_KINDS,
                  category_slice, make_toy_dataset)
from .toy_fashion_dataset import ToyFashionDataset

__all__ = [
    'DEEPFASHION2_CATEGORY_RANGES', 'KNOWN_LAYOUTS',
    'get_category_keypoint_ranges', 'keypoint_category_matrix',
    'make_toy_dataset', 'TOY_KINDS', 'ToyFashionDataset',
    'DeepFashion2FullDataset', 'DEEPFASHION2_FULL_METAINFO_FILE',
    'FASHION_CATEGORIES', 'FASHION_KEYPOINT_NAMES', 'FASHION_FLIP_INDICES',
    'FASHION_NUM_KEYPOINTS', 'FASHION_METAINFO_FILE', 'category_slice',
    'COCO_KEYPOINT_NAMES', 'COCO_SKELETON'
]
__all__ += [
    'AnnotationError', 'check_coco_keypoint_annotations',
    'CheckedCocoDataset', 'CheckedCrowdPoseDataset', 'CheckedAicDataset',
    'CheckedMpiiDataset'
]

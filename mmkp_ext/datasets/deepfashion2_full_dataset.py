"""DeepFashion2 with the official OKS sigmas (mmpose's metainfo has none)."""
import os.path as osp
from typing import Optional

from mmpose.datasets.datasets.base import BaseCocoStyleDataset
from mmpose.registry import DATASETS
from ..grouping.layout import DEEPFASHION2_CATEGORY_RANGES
from .checked_coco_datasets import CheckedAnnotationsMixin

__all__ = ['DeepFashion2FullDataset', 'DEEPFASHION2_FULL_METAINFO_FILE']

#: Absolute path of the package's DeepFashion2 metainfo: mmpose's keypoint
#: names, swaps and skeleton (inherited through ``_base_``) plus the 294
#: official sigmas. Usable as ``metainfo=dict(from_file=...)`` with any
#: mmpose COCO-style dataset class.
DEEPFASHION2_FULL_METAINFO_FILE = osp.join(
    osp.dirname(osp.abspath(__file__)), 'metainfo', 'deepfashion2_full.py')


@DATASETS.register_module()
class DeepFashion2FullDataset(CheckedAnnotationsMixin, BaseCocoStyleDataset):
    """DeepFashion2 in the 294-keypoint COCO layout of the official
    ``deepfashion2_to_coco.py`` conversion, with OKS sigmas.

    The same loader as mmpose's ``DeepFashion2Dataset`` (every annotation
    carries all 294 keypoints, zeros outside its category's range) with two
    differences: the metainfo is :data:`DEEPFASHION2_FULL_METAINFO_FILE`
    (official sigmas, so ``CocoMetric`` / ``MultiCategoryCocoMetric`` and
    OKS-NMS work), and annotations are checked while loading: a
    ``category_id`` outside ``1..13`` or a keypoint list that is not
    ``294 * 3`` long raises ``ValueError`` naming the annotation and image;
    before that, the whole file is checked when loaded (missing ``bbox`` /
    ``category_id`` / ``keypoints``, wrong keypoint counts, ...; see
    :class:`~mmkp_ext.datasets.checked_coco_datasets.CheckedAnnotationsMixin`).
    For CenterNet training use ``data_mode='bottomup'``; the per-instance
    ``category_id`` then reaches the pipeline as an ``(N,)`` int array.
    """

    METAINFO: dict = dict(from_file=DEEPFASHION2_FULL_METAINFO_FILE)

    def parse_data_info(self, raw_data_info: dict) -> Optional[dict]:
        """Parse one annotation as ``BaseCocoStyleDataset`` does, after
        checking its category id and keypoint count."""
        ann = raw_data_info['raw_ann_info']
        img = raw_data_info['raw_img_info']
        where = (f'annotation {ann.get("id", "?")} of image '
                 f'{ann.get("image_id", "?")} '
                 f'({img.get("file_name", "unknown file")})')
        num_classes = len(DEEPFASHION2_CATEGORY_RANGES)
        cat = ann.get('category_id')
        if not isinstance(cat, int) or not 1 <= cat <= num_classes:
            raise ValueError(f'unknown category_id {cat!r} in {where}: '
                             f'DeepFashion2 has ids 1..{num_classes}')
        if 'keypoints' in ann:
            expected = 3 * self.metainfo['num_keypoints']
            if len(ann['keypoints']) != expected:
                raise ValueError(
                    f'{where} has {len(ann["keypoints"])} keypoint values, '
                    f'expected {expected} (x, y, v for each of '
                    f'{self.metainfo["num_keypoints"]} keypoints)')
        return super().parse_data_info(raw_data_info)

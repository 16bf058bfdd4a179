"""COCO-style datasets that check their annotation file when it is loaded.

:class:`CheckedAnnotationsMixin` replaces ``BaseCocoStyleDataset``'s
annotation loading by one that runs
:func:`~mmkp_ext.datasets.annotation_checks.check_coco_keypoint_annotations`
(with the dataset metainfo's keypoint count) on the json before anything is
parsed, so a faulty file fails at dataset construction with an error naming
the file, the problem and the first offending annotation ids. mmkp_ext's own
dataset classes use it; for mmpose's classes the registered subclasses
``CheckedCocoDataset``, ``CheckedCrowdPoseDataset`` and ``CheckedAicDataset``
behave exactly like ``CocoDataset``, ``CrowdPoseDataset`` and ``AicDataset``
on valid files.
"""
import os.path as osp
from typing import List, Tuple

from xtcocotools.coco import COCO

from mmpose.datasets.datasets.body import (AicDataset, CocoDataset,
                                           CrowdPoseDataset)
from mmpose.registry import DATASETS
from .annotation_checks import load_checked_coco_json

__all__ = [
    'CheckedAnnotationsMixin', 'CheckedCocoDataset', 'CheckedCrowdPoseDataset',
    'CheckedAicDataset'
]


class CheckedAnnotationsMixin:
    """Mixin for ``BaseCocoStyleDataset`` subclasses (put it first in the
    bases): the annotation file is read once, checked against the
    metainfo's ``num_keypoints`` (annotations without ``area`` get the
    documented default, with a logged count) and then indexed and parsed as
    mmpose does."""

    def _load_annotations(self) -> Tuple[List[dict], List[dict]]:
        """Load, check and parse the annotation file; returns
        ``(instance_list, image_list)`` as ``BaseCocoStyleDataset``."""
        dataset = load_checked_coco_json(
            self.ann_file, num_keypoints=self.metainfo['num_keypoints'])
        # ann_data: xtcocotools indexes the checked dict, no second read
        self.coco = COCO(self.ann_file, ann_data=dataset)
        if 'categories' in self.coco.dataset:
            self._metainfo['CLASSES'] = self.coco.loadCats(
                self.coco.getCatIds())

        interval = getattr(self, 'sample_interval', 1)
        instance_list, image_list = [], []
        for img_id in self.coco.getImgIds():
            if img_id % interval != 0:
                continue
            img = self.coco.loadImgs(img_id)[0]
            img.update(img_id=img_id,
                       img_path=osp.join(self.data_prefix['img'],
                                         img['file_name']))
            image_list.append(img)
            for ann in self.coco.loadAnns(self.coco.getAnnIds(imgIds=img_id)):
                info = self.parse_data_info(
                    dict(raw_ann_info=ann, raw_img_info=img))
                if info:
                    instance_list.append(info)
        return instance_list, image_list


@DATASETS.register_module()
class CheckedCocoDataset(CheckedAnnotationsMixin, CocoDataset):
    """mmpose's ``CocoDataset`` with the annotation file checked at load
    (see :class:`CheckedAnnotationsMixin`)."""


@DATASETS.register_module()
class CheckedCrowdPoseDataset(CheckedAnnotationsMixin, CrowdPoseDataset):
    """mmpose's ``CrowdPoseDataset`` with the annotation file checked at
    load (see :class:`CheckedAnnotationsMixin`)."""


@DATASETS.register_module()
class CheckedAicDataset(CheckedAnnotationsMixin, AicDataset):
    """mmpose's ``AicDataset`` with the annotation file checked at load (see
    :class:`CheckedAnnotationsMixin`)."""

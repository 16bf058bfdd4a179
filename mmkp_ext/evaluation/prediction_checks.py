"""Shared guards of the COCO metrics: non-finite predictions, empty result
sets and checked ground-truth files.

Non-finite predictions (the choice, for every metric of mmkp_ext): a
predicted instance with a NaN or infinite keypoint coordinate or keypoint
score (among the keypoints it is evaluated on), or a non-finite box score
or box, is **dropped** before scoring and OKS-NMS. It then detects nothing:
the GT it would have matched counts as missed, exactly as if the model had
not output it. (Left in, xtcocotools' OKS of such an instance is NaN and
``NaN < threshold`` is false, so it matched every GT it was compared with.)
The number dropped is logged once per evaluation.
"""
import json
import logging
from typing import Optional

import numpy as np
from mmengine.logging import print_log
from xtcocotools.coco import COCO

from ..datasets.annotation_checks import load_checked_coco_json

__all__ = [
    'finite_instances', 'log_dropped_instances', 'load_results',
    'load_checked_gt'
]


def finite_instances(keypoints: np.ndarray,
                     keypoint_scores: np.ndarray,
                     keypoint_mask: Optional[np.ndarray] = None,
                     bbox_scores: Optional[np.ndarray] = None,
                     bboxes: Optional[np.ndarray] = None) -> np.ndarray:
    """Which predicted instances are entirely finite.

    Args:
        keypoints: (N, K, 2) coordinates.
        keypoint_scores: (N, K).
        keypoint_mask: (N, K) or (K,) bool, the keypoints each instance is
            evaluated on (others may hold anything); None: all.
        bbox_scores: (N,) or None.
        bboxes: (N, 4) or None.

    Returns:
        (N,) bool, True where every checked value is finite.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    num = len(keypoints)
    bad = ~np.isfinite(keypoints).all(axis=-1)  # (N, K)
    bad |= ~np.isfinite(np.asarray(keypoint_scores, dtype=np.float64))
    if keypoint_mask is not None:
        bad &= np.broadcast_to(np.asarray(keypoint_mask, bool), bad.shape)
    ok = ~bad.any(axis=-1) if bad.ndim == 2 else np.ones(num, bool)
    if bbox_scores is not None:
        ok &= np.isfinite(
            np.asarray(bbox_scores, dtype=np.float64).reshape(num))
    if bboxes is not None:
        ok &= np.isfinite(
            np.asarray(bboxes, dtype=np.float64).reshape(num, -1)).all(axis=1)
    return ok


def log_dropped_instances(metric: str, dropped: int, total: int,
                          images: int) -> None:
    """One warning per evaluation when instances were dropped."""
    if dropped:
        print_log(
            f'{metric}: {dropped} of {total} predicted instances (in '
            f'{images} images) had non-finite keypoints or scores and were '
            'dropped: they count as not detected',
            logger='current',
            level=logging.WARNING)


def load_results(coco_gt: COCO, res_file: str) -> COCO:
    """``coco_gt.loadRes(res_file)``, also for a file with no detections
    (xtcocotools' ``loadRes`` fails with IndexError on an empty list; no
    detections give AP 0 for every category with GT)."""
    with open(res_file) as f:
        detections = json.load(f)
    if detections:
        return coco_gt.loadRes(res_file)
    # what loadRes does to the GT besides: COCOeval('keypoints_crowd')
    # reads the (GT, result) file pair from it
    if len(coco_gt.anno_file) == 1:
        coco_gt.anno_file.append(res_file)
    res = COCO()
    res.dataset['images'] = list(coco_gt.dataset['images'])
    res.dataset['categories'] = list(coco_gt.dataset.get('categories', []))
    res.dataset['annotations'] = []
    res.createIndex()
    return res


def load_checked_gt(ann_file: str,
                    num_keypoints: Optional[int] = None,
                    require_annotations: bool = True) -> COCO:
    """Read a GT json, check it
    (:func:`~mmkp_ext.datasets.annotation_checks.load_checked_coco_json`;
    annotations without ``area`` get the documented default) and index it
    with xtcocotools, reading the file once.

    Raises:
        AnnotationError: the file is missing, not UTF-8 json, or invalid.
    """
    dataset = load_checked_coco_json(ann_file,
                                     num_keypoints=num_keypoints,
                                     require_annotations=require_annotations)
    return COCO(ann_file, ann_data=dataset)

"""mmpose's ``CocoMetric`` that non-finite predictions and faulty GT files
cannot fool."""
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.logging import MessageHub, print_log
from xtcocotools.cocoeval import COCOeval

from mmpose.evaluation.metrics import CocoMetric
from mmpose.registry import METRICS
from ..datasets.annotation_checks import check_coco_keypoint_annotations
from .prediction_checks import (finite_instances, load_checked_gt,
                                load_results, log_dropped_instances)

__all__ = ['GuardedCocoMetric']

#: per-instance fields of the prediction dicts that ``CocoMetric.process``
#: stores (first axis = instance)
_INSTANCE_FIELDS = ('keypoints', 'keypoint_scores', 'bbox_scores', 'bbox',
                    'areas')


@METRICS.register_module()
class GuardedCocoMetric(CocoMetric):
    """mmpose's ``CocoMetric`` (same arguments, same figures on finite
    predictions and valid files) with three guards:

    * a predicted instance with a non-finite keypoint coordinate, keypoint
      score, box score or box is dropped before scoring and OKS-NMS, so it
      counts as not detected (stock: its OKS is NaN, which passes every
      threshold, so it matches -- AP rises); the count is logged once per
      evaluation (see :mod:`mmkp_ext.evaluation.prediction_checks`). With a
      ``pred_converter`` all predicted keypoints are checked;
    * the GT file (``ann_file``, the dataset's file announced through
      mmengine's MessageHub, or the samples' ``raw_ann_info``) is checked
      when it is loaded by
      ``check_coco_keypoint_annotations`` of
      :mod:`mmkp_ext.datasets.annotation_checks`,
      including its keypoint count against the dataset metainfo once that
      is known (skipped with a ``gt_converter``); a missing ``area`` gets
      ``0.53 * w * h`` of the box with a logged count;
    * no surviving detection at all gives AP 0 instead of an IndexError.

    Args: as mmpose's ``CocoMetric``.
    """

    def __init__(self, ann_file: Optional[str] = None, **kwargs) -> None:
        # the stock constructor would index ann_file unchecked
        super().__init__(ann_file=None, **kwargs)
        self.ann_file = ann_file
        if ann_file is not None:
            self.coco = load_checked_gt(
                ann_file, require_annotations=not self.format_only)

    @property
    def dataset_meta(self) -> Optional[dict]:
        """Meta info of the dataset (as ``CocoMetric``)."""
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict) -> None:
        """Set the meta info; load the dataset's GT file (checked) when no
        ``ann_file`` was given, then check the GT keypoint count."""
        if self.coco is None:
            ann_file = MessageHub.get_current_instance().get_info(
                f"{dataset_meta['dataset_name']}_ann_file", None)
            if ann_file is not None:
                self.coco = load_checked_gt(
                    ann_file, require_annotations=not self.format_only)
                self.ann_file = ann_file
                print_log(
                    f'{self.__class__.__name__} loaded (and checked) the '
                    f'annotation file {ann_file}', 'current')
        CocoMetric.dataset_meta.fset(self, dataset_meta)
        self._check_gt_keypoint_count()

    def _check_gt_keypoint_count(self) -> None:
        """The GT's keypoint count against the metainfo (no converter)."""
        if (self.coco is None or self.gt_converter is not None
                or self._dataset_meta is None
                or 'annotations' not in self.coco.dataset):
            return
        check_coco_keypoint_annotations(
            self.coco.dataset,
            self.ann_file or 'the ground truth',
            num_keypoints=int(self._dataset_meta['num_keypoints']))

    def gt_to_coco_json(self, gt_dicts: Sequence[dict],
                        outfile_prefix: str) -> str:
        """Check the samples' ``raw_ann_info`` (missing ``area`` completed)
        and convert it as ``CocoMetric`` does."""
        check_raw_annotations(
            gt_dicts, self._dataset_meta,
            f'the raw_ann_info of the evaluated samples '
            f'({self.__class__.__name__})', self.gt_converter is None)
        return super().gt_to_coco_json(gt_dicts, outfile_prefix)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Drop non-finite predicted instances (logged), then evaluate as
        ``CocoMetric``."""
        kept, dropped, total, images = [], 0, 0, set()
        for pred, gt in results:
            num = len(pred['keypoints'])
            ok = finite_instances(pred['keypoints'],
                                  pred['keypoint_scores'],
                                  bbox_scores=pred.get('bbox_scores'),
                                  bboxes=pred.get('bbox'))
            total += num
            if not ok.all():
                dropped += int((~ok).sum())
                images.add(pred['img_id'])
                pred = dict(pred)
                for key in _INSTANCE_FIELDS:
                    if key in pred:
                        pred[key] = np.asarray(pred[key])[ok]
            kept.append((pred, gt))
        log_dropped_instances(self.__class__.__name__, dropped, total,
                              len(images))
        return super().compute_metrics(kept)

    def _do_python_keypoint_eval(self, outfile_prefix: str) -> list:
        """``CocoMetric``'s evaluation, which also accepts a result file
        without detections (AP 0)."""
        res_file = f'{outfile_prefix}.keypoints.json'
        coco_det = load_results(self.coco, res_file)
        sigmas = self.dataset_meta['sigmas']
        coco_eval = COCOeval(self.coco, coco_det, self.iou_type, sigmas,
                             self.use_area)
        coco_eval.params.useSegm = None
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        if self.iou_type == 'keypoints_crowd':
            stats_names = [
                'AP', 'AP .5', 'AP .75', 'AR', 'AR .5', 'AR .75', 'AP(E)',
                'AP(M)', 'AP(H)'
            ]
        else:
            stats_names = [
                'AP', 'AP .5', 'AP .75', 'AP (M)', 'AP (L)', 'AR', 'AR .5',
                'AR .75', 'AR (M)', 'AR (L)'
            ]
        return list(zip(stats_names, coco_eval.stats))


def check_raw_annotations(gt_dicts: Sequence[dict],
                          dataset_meta: dict,
                          source: str,
                          check_count: bool = True) -> None:
    """Check the GT that samples carry in ``raw_ann_info`` (annotations
    repeated across samples counted once; ``None`` entries of images without
    instances skipped), completing a missing ``area`` in place.

    Raises:
        AnnotationError: as
            ``check_coco_keypoint_annotations``
            (:mod:`mmkp_ext.datasets.annotation_checks`).
    """
    anns: List[dict] = []
    seen = set()
    for gt in gt_dicts:
        for ann in gt.get('raw_ann_info') or []:
            if ann is None:
                continue
            key = ann.get('id', id(ann)) if isinstance(ann, dict) else id(ann)
            if key in seen:
                continue
            seen.add(key)
            anns.append(ann)
    dataset = dict(images=[dict(id=gt['img_id']) for gt in gt_dicts],
                   annotations=anns)
    if dataset_meta and dataset_meta.get('CLASSES'):
        dataset['categories'] = dataset_meta['CLASSES']
    check_coco_keypoint_annotations(
        dataset,
        source,
        num_keypoints=(int(dataset_meta['num_keypoints'])
                       if check_count and dataset_meta else None))

"""COCO keypoint AP for multi-class keypoint detection, the DeepFashion2 way.

The official DeepFashion2 keypoint evaluation is the COCO one (OKS with
per-keypoint sigmas, ``vars = (2 * sigma)**2``, OKS averaged over the GT
keypoints with ``v > 0``, category-aware matching) with all 294 sigmas and
``maxDets = 20``. Because a DeepFashion2 annotation labels only its own
category's keypoint range and detections are matched only to GTs of their
own category (``useCats = 1``), the OKS of a detection of category ``c``
compares exactly the keypoints of ``c``'s range.
:class:`MultiCategoryCocoMetric` does that with xtcocotools' ``COCOeval``
and, given the layout
(``category_keypoints``), also enforces it: GT keypoints outside their
category's range are unlabelled, predicted keypoints outside the predicted
category's range are zeroed (so garbage there never matters), and keypoint
scores, areas and OKS-NMS use the category's range only.

On a single-category dataset (COCO persons) it computes what mmpose's
``CocoMetric`` computes with the same ``score_mode`` / ``nms_mode``
(tested), plus a per-category AP.

It is a :class:`~mmkp_ext.evaluation.GuardedCocoMetric`: a predicted
instance with a non-finite coordinate or score among its category's
keypoints (or a non-finite box score or box) is dropped and counts as not
detected (logged once per evaluation), and the GT file is checked when it
is loaded (:mod:`mmkp_ext.datasets.annotation_checks`).
"""
import os.path as osp
import tempfile
from collections import OrderedDict, defaultdict
from numbers import Integral
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.fileio import dump
from mmengine.logging import MMLogger
from xtcocotools.coco import COCO
from xtcocotools.cocoeval import COCOeval

from mmpose.evaluation.functional import oks_nms, soft_oks_nms
from mmpose.registry import METRICS
from mmpose.structures.bbox import bbox_xyxy2xywh
from ..grouping.layout import get_category_keypoint_ranges
from .guarded_coco_metric import GuardedCocoMetric
from .prediction_checks import (finite_instances, load_results,
                                log_dropped_instances)

__all__ = ['MultiCategoryCocoMetric', 'SUMMARY_NAMES']

#: Names of the overall figures, as mmpose's ``CocoMetric`` reports them.
SUMMARY_NAMES = ('AP', 'AP .5', 'AP .75', 'AP (M)', 'AP (L)', 'AR', 'AR .5',
                 'AR .75', 'AR (M)', 'AR (L)')


def _as_numpy(value) -> np.ndarray:
    if hasattr(value, 'detach'):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


@METRICS.register_module()
class MultiCategoryCocoMetric(GuardedCocoMetric):
    """COCO-style keypoint AP/AR over several categories with per-category
    keypoint ranges (DeepFashion2 protocol), plus per-category AP.

    Predictions come from a bottom-up model: each data sample's
    ``pred_instances`` holds ``keypoints`` (N, K, 2) in image pixels,
    ``keypoint_scores`` (N, K), ``category_id`` (N,) (1-based; optional only
    when the dataset has a single category), and optionally ``bboxes``
    (N, 4, xyxy) and ``bbox_scores`` (N,). The ground truth is read from
    ``ann_file`` (or the dataset's annotation file, or the samples'
    ``raw_ann_info``), as in ``CocoMetric``; the GT ``category_id`` of the
    samples is not used.

    Per detection, over the keypoint range ``R`` of its category (all
    keypoints when ``category_keypoints`` is None):

    * score: ``'bbox'`` the box score; ``'bbox_keypoint'`` the box score
      times the mean of the keypoint scores in ``R`` above
      ``keypoint_score_thr`` (0 if none); ``'keypoint'`` the mean keypoint
      score in ``R``; ``'bbox_rle'`` box score + mean + max keypoint score
      in ``R``;
    * area (used by OKS-NMS; and the box written to the result file when
      no ``bboxes`` are predicted): extent of its keypoints in ``R``;
    * OKS-NMS (``nms_mode='oks_nms'`` / ``'soft_oks_nms'``) runs per image
      and category with the keypoints and sigmas of ``R``;
    * a NaN or infinite coordinate or keypoint score in ``R`` (or a
      non-finite box score or box) drops the detection: it counts as not
      detected; values outside ``R`` are ignored (written as 0).

    Then xtcocotools' ``COCOeval(iouType='keypoints')`` with the dataset's
    ``sigmas`` (``vars = (2 * sigma)**2``), ``useCats = 1`` and
    ``maxDets = [max_dets]`` (per image and category). Reported (under the
    metric's ``prefix``): :data:`SUMMARY_NAMES` (the mean over categories
    with GT, as COCO summarises) and ``AP_<category name>`` for every
    category with GT in the evaluated images.

    Args:
        ann_file (str, optional): COCO-format GT file. Defaults to None (the
            dataset's, announced through mmengine's MessageHub).
        category_keypoints (str | list, optional): layout name or
            ``(first, last)`` pairs (class ``c`` = category id ``c + 1``),
            resolved by ``mmkp_ext.datasets.get_category_keypoint_ranges``.
            None: every category uses all keypoints (COCO behaviour).
        max_dets (int): detections per image and category. Defaults to 20
            (DeepFashion2 and COCO keypoints).
        use_area (bool): OKS scale from the GT ``area`` (else 0.53 * box
            area). Defaults to True.
        score_mode (str): ``'bbox'`` (default: the centre-peak score of a
            CenterNet detection), ``'bbox_keypoint'``, ``'keypoint'``,
            ``'bbox_rle'``.
        keypoint_score_thr (float): threshold of ``'bbox_keypoint'``.
        nms_mode (str): ``'none'`` (default; CenterNet's peak NMS already
            ran), ``'oks_nms'``, ``'soft_oks_nms'``.
        nms_thr (float): OKS threshold of the NMS.
        format_only (bool): only write the result json.
        outfile_prefix (str, optional): prefix of the json files written.
        collect_device (str): ``'cpu'`` or ``'gpu'``.
        prefix (str, optional): prefix of the metric names (e.g. ``'df2'``).
    """

    def __init__(self,
                 ann_file: Optional[str] = None,
                 category_keypoints: Union[str, Sequence[Sequence[int]],
                                           None] = None,
                 max_dets: int = 20,
                 use_area: bool = True,
                 score_mode: str = 'bbox',
                 keypoint_score_thr: float = 0.2,
                 nms_mode: str = 'none',
                 nms_thr: float = 0.9,
                 format_only: bool = False,
                 outfile_prefix: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(
            ann_file=ann_file,
            use_area=use_area,
            iou_type='keypoints',
            score_mode=score_mode,
            keypoint_score_thr=keypoint_score_thr,
            nms_mode=nms_mode,
            nms_thr=nms_thr,
            format_only=format_only,
            outfile_prefix=outfile_prefix,
            collect_device=collect_device,
            prefix=prefix)
        if not isinstance(max_dets, Integral) or max_dets < 1:
            raise ValueError(f'max_dets must be an int >= 1, got {max_dets!r}')
        self.max_dets = int(max_dets)
        self.category_keypoints = category_keypoints
        self.category_ranges = (None if category_keypoints is None else
                                get_category_keypoint_ranges(
                                    category_keypoints))

    # ------------------------------------------------------------------
    # per-batch collection
    # ------------------------------------------------------------------
    def process(self, data_batch: Sequence[dict],
                data_samples: Sequence[dict]) -> None:
        """Store, per image, the predictions (numpy) and, when no GT file is
        known, the GT needed to build one."""
        for data_sample in data_samples:
            if 'pred_instances' not in data_sample:
                raise ValueError(f'{self.__class__.__name__} needs '
                                 '`pred_instances` in every data sample')
            inst = data_sample['pred_instances']
            keypoints = _as_numpy(inst['keypoints']).astype(np.float64)
            if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
                raise ValueError('pred_instances.keypoints must be (N, K, 2),'
                                 f' got {keypoints.shape} for image '
                                 f'{data_sample.get("img_id")}')
            num = len(keypoints)
            scores = _as_numpy(inst['keypoint_scores']).astype(np.float64)
            if scores.shape != keypoints.shape[:2]:
                raise ValueError(
                    f'pred_instances.keypoint_scores has shape {scores.shape}'
                    f', expected {keypoints.shape[:2]} for image '
                    f'{data_sample.get("img_id")}')
            pred = dict(
                img_id=data_sample['img_id'],
                keypoints=keypoints,
                keypoint_scores=scores,
                category_id=self._pred_categories(inst, num, data_sample),
                bbox_scores=(_as_numpy(inst['bbox_scores']).astype(
                    np.float64).reshape(num) if 'bbox_scores' in inst else
                             np.ones(num)))
            if 'bboxes' in inst:
                pred['bboxes'] = bbox_xyxy2xywh(
                    _as_numpy(inst['bboxes']).astype(np.float64).reshape(
                        num, 4))

            gt = dict()
            if self.coco is None:
                gt['width'] = data_sample['ori_shape'][1]
                gt['height'] = data_sample['ori_shape'][0]
                gt['img_id'] = data_sample['img_id']
                if 'raw_ann_info' not in data_sample:
                    raise ValueError(
                        'without an ann_file the samples must carry '
                        '`raw_ann_info` (PackPoseInputs meta_keys)')
                anns = data_sample['raw_ann_info']
                gt['raw_ann_info'] = anns if isinstance(anns, list) else [
                    anns
                ]
            self.results.append((pred, gt))

    def _pred_categories(self, inst, num: int, data_sample) -> np.ndarray:
        """(N,) int64 predicted category ids."""
        if 'category_id' in inst:
            ids = _as_numpy(inst['category_id']).reshape(-1)
            if ids.shape != (num, ):
                raise ValueError(
                    f'pred_instances.category_id has {ids.size} entries for '
                    f'{num} instances in image {data_sample.get("img_id")}')
            if ids.dtype.kind == 'f' and np.any(ids != np.round(ids)):
                raise ValueError('pred_instances.category_id must hold '
                                 f'integers, got {ids.tolist()}')
            return ids.astype(np.int64)
        classes = (self.dataset_meta or {}).get('CLASSES') or []
        if len(classes) == 1:
            return np.full(num, int(classes[0]['id']), dtype=np.int64)
        raise ValueError(
            'pred_instances.category_id is missing (image '
            f'{data_sample.get("img_id")}) and the dataset has '
            f'{len(classes)} categories, so it cannot be implied')

    # ------------------------------------------------------------------
    # evaluation
    # ------------------------------------------------------------------
    def _keypoint_mask(self, category_id: int, num_keypoints: int,
                       what: str) -> np.ndarray:
        """(K,) bool: keypoints compared for ``category_id``."""
        mask = np.zeros(num_keypoints, dtype=bool)
        if self.category_ranges is None:
            mask[:] = True
            return mask
        if not 1 <= category_id <= len(self.category_ranges):
            raise ValueError(
                f'unknown category_id {category_id} ({what}): the layout '
                f'{self.category_keypoints!r} has '
                f'{len(self.category_ranges)} categories, ids '
                f'1..{len(self.category_ranges)}')
        first, last = self.category_ranges[category_id - 1]
        if last >= num_keypoints:
            raise ValueError(
                f'category {category_id} owns keypoints {first}..{last} but '
                f'the dataset has {num_keypoints} keypoints')
        mask[first:last + 1] = True
        return mask

    def _instance_score(self, bbox_score: float,
                        scores: np.ndarray) -> float:
        """Detection score from the box score and the keypoint scores of the
        category's range (see the class docstring)."""
        if self.score_mode == 'bbox':
            return float(bbox_score)
        if self.score_mode == 'keypoint':
            return float(np.mean(scores))
        if self.score_mode == 'bbox_rle':
            return float(bbox_score + np.mean(scores) + np.max(scores))
        above = scores[scores > self.keypoint_score_thr]
        return float(bbox_score * (above.mean() if above.size else 0.))

    def _collect_detections(self, preds: Sequence[dict],
                            num_keypoints: int) -> List[dict]:
        """Score, NMS and format the detections as COCO result dicts
        (non-finite detections dropped, their count logged)."""
        sigmas = np.asarray(self.dataset_meta['sigmas'], dtype=np.float64)
        groups: Dict[Tuple, List[dict]] = defaultdict(list)
        seen_images = set()
        dropped, total, dropped_images = 0, 0, 0
        for pred in preds:
            img_id = pred['img_id']
            if img_id in seen_images:
                continue  # the same image evaluated twice counts once
            seen_images.add(img_id)
            if pred['keypoints'].shape[1] != num_keypoints:
                raise ValueError(
                    f'predictions of image {img_id} have '
                    f'{pred["keypoints"].shape[1]} keypoints, the dataset '
                    f'{num_keypoints}')
            cats = pred['category_id'].tolist()
            masks = np.array([
                self._keypoint_mask(cat, num_keypoints,
                                    f'prediction {i} of image {img_id}')
                for i, cat in enumerate(cats)
            ], dtype=bool).reshape(len(cats), num_keypoints)
            finite = finite_instances(pred['keypoints'],
                                      pred['keypoint_scores'], masks,
                                      pred['bbox_scores'], pred.get('bboxes'))
            total += len(cats)
            if not finite.all():
                dropped += int((~finite).sum())
                dropped_images += 1
            for i in np.flatnonzero(finite).tolist():
                cat, mask = cats[i], masks[i]
                # where, not multiply: values outside R may be NaN
                kpts = np.where(mask[:, None], pred['keypoints'][i], 0.)
                scores = np.where(mask, pred['keypoint_scores'][i], 0.)
                xy = kpts[mask]
                x0, y0 = xy.min(axis=0)
                x1, y1 = xy.max(axis=0)
                det = dict(
                    img_id=img_id,
                    category_id=cat,
                    keypoints=np.concatenate([kpts, scores[:, None]], axis=1),
                    mask=mask,
                    score=self._instance_score(pred['bbox_scores'][i],
                                               scores[mask]),
                    area=(x1 - x0) * (y1 - y0),
                    bbox=(pred['bboxes'][i] if 'bboxes' in pred else
                          np.array([x0, y0, x1 - x0, y1 - y0])))
                groups[img_id, cat].append(det)
        log_dropped_instances(self.__class__.__name__, dropped, total,
                              dropped_images)

        detections = []
        for (img_id, cat), dets in groups.items():
            if self.nms_mode != 'none':
                mask = dets[0]['mask']
                nms = oks_nms if self.nms_mode == 'oks_nms' else soft_oks_nms
                # the NMS sees only the category's keypoints and sigmas
                keep = nms([
                    dict(
                        keypoints=d['keypoints'][mask],
                        score=d['score'],
                        area=d['area']) for d in dets
                ],
                           self.nms_thr,
                           sigmas=sigmas[mask])
                dets = [dets[k] for k in keep]
            for d in dets:
                detections.append(
                    dict(
                        image_id=img_id,
                        category_id=int(d['category_id']),
                        keypoints=d['keypoints'].reshape(-1).tolist(),
                        score=float(d['score']),
                        bbox=[float(v) for v in d['bbox']]))
        return detections

    def _restrict_gt_to_ranges(self, coco: COCO, num_keypoints: int) -> int:
        """Unlabel GT keypoints outside their category's range (in place,
        idempotent); return how many were unlabelled."""
        changed = 0
        for ann in coco.anns.values():
            if 'keypoints' not in ann:
                continue
            kpts = np.asarray(ann['keypoints'], dtype=np.float64).reshape(
                -1, 3)
            mask = self._keypoint_mask(
                int(ann['category_id']), num_keypoints,
                f'GT annotation {ann.get("id")} of image '
                f'{ann.get("image_id")}')
            stray = (kpts[:, 2] > 0) & ~mask
            if stray.any():
                changed += int(stray.sum())
                kpts[stray] = 0
                ann['keypoints'] = kpts.reshape(-1).tolist()
        return changed

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Evaluate the collected predictions; see the class docstring."""
        logger: MMLogger = MMLogger.get_current_instance()
        preds, gts = zip(*results)
        num_keypoints = int(self.dataset_meta['num_keypoints'])
        sigmas = np.asarray(self.dataset_meta['sigmas'], dtype=np.float64)
        if sigmas.shape != (num_keypoints, ):
            raise ValueError(
                f'dataset_meta has {sigmas.size} sigmas for {num_keypoints} '
                'keypoints; OKS needs one per keypoint (for DeepFashion2 use '
                'mmkp_ext\'s DeepFashion2FullDataset / '
                'DEEPFASHION2_FULL_METAINFO_FILE)')

        tmp_dir = None
        if self.outfile_prefix is None:
            tmp_dir = tempfile.TemporaryDirectory()
            outfile_prefix = osp.join(tmp_dir.name, 'results')
        else:
            outfile_prefix = self.outfile_prefix
        try:
            if self.coco is None:
                logger.info('Converting ground truth to coco format...')
                self.coco = COCO(
                    self.gt_to_coco_json(
                        gt_dicts=gts, outfile_prefix=outfile_prefix))
            detections = self._collect_detections(preds, num_keypoints)
            res_file = f'{outfile_prefix}.keypoints.json'
            dump(detections, res_file, sort_keys=True, indent=4)
            if self.format_only:
                logger.info(f'results are saved in {res_file}')
                return {}
            if self.category_ranges is not None:
                changed = self._restrict_gt_to_ranges(self.coco,
                                                      num_keypoints)
                if changed:
                    logger.warning(
                        f'{changed} GT keypoints lay outside their '
                        'category\'s keypoint range and were ignored')
            return self._evaluate(res_file, sigmas, logger)
        finally:
            if tmp_dir is not None:
                tmp_dir.cleanup()

    def _evaluate(self, res_file: str, sigmas: np.ndarray,
                  logger: MMLogger) -> Dict[str, float]:
        """COCOeval on ``res_file``; summary and per-category AP."""
        coco_det = load_results(self.coco, res_file)
        coco_eval = COCOeval(self.coco, coco_det, 'keypoints', sigmas,
                             self.use_area)
        coco_eval.params.useSegm = None
        coco_eval.params.maxDets = [self.max_dets]
        coco_eval.evaluate()
        coco_eval.accumulate()

        params = coco_eval.params
        precision = coco_eval.eval['precision']  # (T, R, K, A, M)
        recall = coco_eval.eval['recall']  # (T, K, A, M)
        area_index = {label: i for i, label in enumerate(params.areaRngLbl)}

        def mean_valid(values: np.ndarray) -> float:
            valid = values[values > -1]
            return float(valid.mean()) if valid.size else -1.

        def summary(ap: bool, iou=None, area='all') -> float:
            values = precision if ap else recall
            if iou is not None:
                values = values[np.flatnonzero(params.iouThrs == iou)]
            a = area_index[area]
            return mean_valid(values[..., a, -1])

        stats = [
            summary(True),
            summary(True, iou=.5),
            summary(True, iou=.75),
            summary(True, area='medium'),
            summary(True, area='large'),
            summary(False),
            summary(False, iou=.5),
            summary(False, iou=.75),
            summary(False, area='medium'),
            summary(False, area='large')
        ]
        metrics = OrderedDict(zip(SUMMARY_NAMES, stats))
        for k, cat_id in enumerate(params.catIds):
            ap = mean_valid(precision[:, :, k, area_index['all'], -1])
            if ap < 0:
                continue  # no GT of this category in the evaluated images
            name = str(self.coco.cats[cat_id]['name']).replace(' ', '_')
            metrics[f'AP_{name}'] = ap
        logger.info(f'{self.__class__.__name__} (maxDets={self.max_dets}): '
                    + ', '.join(f'{k}: {v:.4f}' for k, v in metrics.items()))
        return metrics

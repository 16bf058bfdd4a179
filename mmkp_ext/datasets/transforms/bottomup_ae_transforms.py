"""Bottom-up (associative embedding) training transforms.

:class:`BottomupIgnoreMask` replaces mmpose's ``BottomupGetHeatmapMask`` in
HigherHRNet / SWAHR training pipelines. Facts about mmpose 1.3.2 that make it
necessary (checked on this stack):

- ``BottomupGetHeatmapMask`` only rasterises segmentations given as lists
  (polygons): a crowd annotation's RLE dict is skipped, so crowd regions
  become negatives of the heatmap loss;
- annotations without any segmentation (CrowdPose; people without keypoints
  there) add nothing to the mask;
- it decodes with ``xtcocotools.mask.decode``, which raises
  ``AttributeError: module 'numpy' has no attribute 'NPY_OWNDATA'`` under
  numpy 2 (the xtcocotools build here), i.e. it fails on any image that has
  an invalid instance.

This transform rasterises with OpenCV / numpy only and ignores, per instance
of ``raw_ann_info``: crowd annotations (``iscrowd``) and people without
labelled keypoints (``num_keypoints == 0``), through their polygons, their
RLE (compressed or not), or, without a segmentation, their box.
"""
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
from mmcv.image import imflip
from mmcv.transforms import BaseTransform

from mmpose.registry import TRANSFORMS

__all__ = ['BottomupIgnoreMask', 'rle_to_mask', 'polygons_to_mask']

#: sub-pixel bits of cv2.fillPoly (coordinates in 1/16 pixel)
_SHIFT = 4


def _rle_counts_from_string(s: str) -> List[int]:
    """Counts of a COCO compressed RLE string (the LEB128-like code of the
    COCO API: 5 data bits per char offset by 48, bit 0x20 = more chars,
    bit 0x10 of the last char = negative; counts after the second are
    stored as differences to the count two places before)."""
    counts: List[int] = []
    p = 0
    data = s.encode() if isinstance(s, str) else bytes(s)
    while p < len(data):
        x, k, more = 0, 0, True
        while more:
            c = data[p] - 48
            x |= (c & 0x1f) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_to_mask(rle: Dict) -> np.ndarray:
    """Decode a COCO RLE dict (``size`` = [h, w], ``counts`` = list of run
    lengths starting with zeros, or the compressed string) to uint8 (h, w).

    Raises:
        ValueError: if the run lengths do not add up to ``h * w``.
    """
    h, w = (int(v) for v in rle['size'])
    counts = rle['counts']
    if isinstance(counts, (str, bytes)):
        counts = _rle_counts_from_string(counts)
    counts = np.asarray(counts, dtype=np.int64)
    if counts.sum() != h * w or (counts < 0).any():
        raise ValueError(f'RLE counts sum to {int(counts.sum())}, expected '
                         f'h * w = {h * w} for size {[h, w]}')
    values = (np.arange(len(counts)) % 2).astype(np.uint8)
    # COCO RLE runs go down the columns (Fortran order)
    return np.repeat(values, counts).reshape((h, w), order='F')


def polygons_to_mask(polygons: Sequence[Sequence[float]],
                     shape) -> np.ndarray:
    """Fill COCO polygons ``[[x1, y1, x2, y2, ...], ...]`` into uint8
    ``shape = (h, w)`` (sub-pixel vertices, 1/16 px)."""
    mask = np.zeros(shape, dtype=np.uint8)
    pts = [
        np.round(np.asarray(p, dtype=np.float64).reshape(-1, 2) *
                 (1 << _SHIFT)).astype(np.int32) for p in polygons
        if len(p) >= 6
    ]
    if pts:
        cv2.fillPoly(mask, pts, 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return mask


def _box_polygon(bbox_xywh) -> List[List[float]]:
    x, y, w, h = (float(v) for v in bbox_xywh)
    return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _is_ignored(ann: Dict) -> bool:
    """Crowd, or a person with no labelled keypoint."""
    if ann.get('iscrowd', 0):
        return True
    if 'num_keypoints' in ann:
        return int(ann['num_keypoints']) == 0
    kpts = np.asarray(ann.get('keypoints', []), dtype=np.float64)
    return kpts.size == 0 or not (kpts.reshape(-1, 3)[:, 2] > 0).any()


@TRANSFORMS.register_module()
class BottomupIgnoreMask(BaseTransform):
    """Valid-pixel mask of bottom-up training (1 = use the pixel).

    Put it where mmpose's ``BottomupGetHeatmapMask`` goes: after
    ``BottomupRandomAffine`` and ``RandomFlip``, before ``GenerateTarget``.
    Ignore regions are drawn at the original image size (``img_shape`` is
    still the original size after ``BottomupRandomAffine``), warped with
    ``warp_mat`` to ``input_size`` (border = ignored, as in HigherHRNet:
    padding is not background), flipped like the image, and thresholded at
    0.5.

    Required keys: ``img_shape``; optional ``raw_ann_info`` (list of the
    image's COCO annotations, which mmpose's bottom-up datasets keep; without
    it ``invalid_segs`` is used), ``warp_mat``, ``input_size``, ``flip``,
    ``flip_direction``. Added key: ``heatmap_mask``, bool ``(h_in, w_in)``.

    Args:
        box_fallback (bool): ignore the box of an ignored annotation that has
            no segmentation. Defaults to True.
    """

    def __init__(self, box_fallback: bool = True) -> None:
        super().__init__()
        self.box_fallback = box_fallback

    def ignore_regions(self, results: Dict) -> np.ndarray:
        """uint8 (h, w) map of the ignored regions in original pixels."""
        h, w = (int(v) for v in results['img_shape'][:2])
        ignore = np.zeros((h, w), dtype=np.uint8)
        anns = results.get('raw_ann_info')
        if isinstance(anns, dict):
            anns = [anns]
        if anns:
            segs = []
            for ann in anns:
                if not _is_ignored(ann):
                    continue
                seg = ann.get('segmentation')
                if not seg and self.box_fallback and 'bbox' in ann:
                    seg = _box_polygon(ann['bbox'])
                segs.append(seg)
        else:
            segs = list(results.get('invalid_segs') or [])
        for seg in segs:
            if not seg:
                continue
            if isinstance(seg, dict):
                part = rle_to_mask(seg)
                if part.shape != (h, w):
                    raise ValueError(
                        f'RLE of size {part.shape} on an image of size '
                        f'{(h, w)}')
            else:
                part = polygons_to_mask(seg, (h, w))
            ignore |= part
        return ignore

    def transform(self, results: Dict) -> Optional[Dict]:
        valid = (1 - self.ignore_regions(results)).astype(np.float32)
        if 'warp_mat' in results:
            w_in, h_in = (int(v) for v in results['input_size'])
            valid = cv2.warpAffine(
                valid,
                results['warp_mat'], (w_in, h_in),
                flags=cv2.INTER_LINEAR,
                borderValue=0)
        elif 'input_size' in results and tuple(
                results['input_size']) != valid.shape[::-1]:
            raise ValueError(
                'BottomupIgnoreMask needs warp_mat (BottomupRandomAffine '
                'before it) when input_size differs from the image size')
        if results.get('flip', False) and results.get('flip_direction'):
            valid = imflip(valid, direction=results['flip_direction'])
        results['heatmap_mask'] = valid > 0.5
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(box_fallback={self.box_fallback})'

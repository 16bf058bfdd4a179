"""Instance validation for multi-class bottom-up training (CenterNet).

mmpose's bottom-up data flow keeps every per-instance field of an image in
parallel containers: numpy arrays whose first axis is the instance
(``bbox``, ``bbox_score``, ``keypoints``, ``keypoints_visible``,
``category_id``, ``area``) and Python lists (``id``, ``iscrowd``,
``num_keypoints``, ``raw_ann_info``). Findings in mmpose 1.3.2 that this
module addresses:

* ``BaseCocoStyleDataset`` in bottom-up mode DOES carry ``category_id``
  (one 0-d array per annotation, stacked to an ``(N,)`` int array), but it
  keeps invalid instances (crowd, no keypoints, zero-area box) in those
  arrays; only their segmentations are collected in ``invalid_segs``.
* ``BottomupRandomAffine`` moves objects out of the image without removing
  them, and with its default ``bbox_keep_corner=True`` leaves ``bbox`` as
  ``(N, 4, 2)`` corners, not ``xyxy``. It does not update ``img_shape``.
* ``FilterAnnotations`` filters ``bbox``, ``bbox_score``, ``category_id``,
  ``keypoints``, ``keypoints_visible`` and ``area``, but not ``id``,
  ``iscrowd``, ``num_keypoints`` or ``raw_ann_info``, which then no longer
  line up with the arrays.
* ``BottomupRandomCrop`` tests ``if results.get(key)`` on the per-instance
  arrays, which raises for arrays of more than one element.
* ``RandomFlip`` reads ``input_size`` (``(w, h)``) as ``(h, w)``, so
  horizontal flips after ``BottomupRandomAffine`` are only right for square
  input sizes.

:class:`CenterNetFilterInstances` validates and filters all per-instance
fields together, so ``category_id`` stays aligned with ``keypoints`` and
``bbox`` whatever is dropped. Use it after the geometric transforms and
instead of ``FilterAnnotations``.
"""
from numbers import Integral, Real
from typing import Optional, Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform

from mmpose.registry import TRANSFORMS
from ...grouping.layout import (get_category_keypoint_ranges,
                                keypoint_category_matrix)

__all__ = ['CenterNetFilterInstances', 'INSTANCE_KEYS']

#: Per-instance fields of mmpose's bottom-up data flow, filtered together.
#: Arrays are indexed along axis 0, lists element-wise. ``segmentation`` is
#: not among them: mmpose flattens the polygons of all instances of an image
#: into one list, so it is not per-instance.
INSTANCE_KEYS = ('bbox', 'bbox_score', 'category_id', 'keypoints',
                 'keypoints_visible', 'keypoints_visible_weights', 'area',
                 'bbox_center', 'bbox_scale', 'id', 'iscrowd',
                 'num_keypoints', 'raw_ann_info')

_OUTSIDE_IMAGE_MODES = ('unlabel', 'keep')
_OUTSIDE_CATEGORY_MODES = ('error', 'unlabel')


def _describe_image(results: dict) -> str:
    """``image <img_id> (<img_path>)`` for error messages."""
    return (f'image {results.get("img_id", "?")} '
            f'({results.get("img_path", "unknown path")})')


@TRANSFORMS.register_module()
class CenterNetFilterInstances(BaseTransform):
    """Validate the instances of one image and drop the unusable ones,
    keeping every per-instance field aligned.

    Runs after the geometric transforms (``BottomupRandomAffine``,
    ``RandomFlip``), right before ``GenerateTarget``. Coordinates are in
    input-image pixels; the image is ``W x H`` with ``(W, H)`` taken from
    ``results['img']`` (or ``input_size``, or ``img_shape``). Per image, in
    this order:

    1. ``category_id`` must hold ``N`` integers (array or list, as
       mmpose's bottom-up datasets give it); every id must lie in
       ``1..C`` with ``C`` the number of classes of ``category_keypoints``,
       otherwise ``ValueError`` naming the id, the instance and the image.
    2. Every field of :data:`INSTANCE_KEYS` (plus ``extra_instance_keys``)
       that is present must hold exactly ``N`` entries (``N`` = number of
       keypoint rows); a misaligned field (e.g. after mmpose's
       ``FilterAnnotations``) raises ``ValueError`` naming it.
    3. Keypoints with a non-finite coordinate (NaN, inf) become unlabelled
       (visibility 0, coordinates 0); non-finite visibilities become 0.
    4. ``outside_image='unlabel'`` (default): labelled keypoints outside
       ``[0, W) x [0, H)`` become unlabelled (their coordinates are kept),
       as CenterNet drops keypoints outside the output map. ``'keep'``
       leaves them.
    5. Labelled keypoints outside the instance's category slice:
       ``outside_category='error'`` (default) raises ``ValueError`` (they
       mean a wrong layout, wrong ``category_id`` or a flip table that swaps
       across categories); ``'unlabel'`` sets them unlabelled.
    6. ``bbox``: ``(N, 4)`` xyxy or ``(N, 4, 2)`` corners (converted to the
       enclosing xyxy box). With ``clip_bbox`` it is clipped to
       ``[0, W] x [0, H]``. Instances whose box is non-finite or has width
       or height ``<= min_bbox_size`` are dropped (zero-area boxes, objects
       moved out of the image).
    7. ``drop_crowd``: instances with a true ``iscrowd`` are dropped.
    8. Instances with fewer than ``min_keypoints`` labelled keypoints are
       dropped (default 0 keeps them: they still train the centre, size
       and offset outputs).
    9. ``num_keypoints`` is recomputed as the labelled count.

    An image left without instances keeps empty arrays of the right shapes
    (``keypoints`` ``(0, K, 2)``, ``bbox`` ``(0, 4)``, ``category_id``
    ``(0,)``), or, with ``drop_empty_images=True``, the transform returns
    ``None`` so that the dataset draws another image.

    Required keys: ``keypoints`` (N, K, 2), ``keypoints_visible`` (N, K) or
    (N, K, 2), ``bbox``, ``category_id``. Modified keys: those and every
    other per-instance key present.

    Args:
        category_keypoints (str | list): layout name (``'deepfashion2'``,
            ``'toy_fashion'``, ``'coco'``) or ``(first, last)`` pairs, class
            ``c`` = ``category_id - 1``; resolved by
            ``mmkp_ext.datasets.get_category_keypoint_ranges``.
        min_bbox_size (float): keep boxes whose width and height are both
            larger than this (input pixels). Defaults to 0.
        clip_bbox (bool): clip boxes to the image first. Defaults to True.
        outside_image (str): ``'unlabel'`` or ``'keep'``.
        outside_category (str): ``'error'`` or ``'unlabel'``.
        drop_crowd (bool): drop crowd instances. Defaults to True.
        min_keypoints (int): minimum labelled keypoints. Defaults to 0.
        drop_empty_images (bool): return ``None`` for an image left without
            instances. Defaults to False.
        extra_instance_keys (Sequence[str]): further per-instance keys to
            check and filter.
    """

    def __init__(self,
                 category_keypoints: Union[str, Sequence[Sequence[int]]],
                 min_bbox_size: float = 0.,
                 clip_bbox: bool = True,
                 outside_image: str = 'unlabel',
                 outside_category: str = 'error',
                 drop_crowd: bool = True,
                 min_keypoints: int = 0,
                 drop_empty_images: bool = False,
                 extra_instance_keys: Sequence[str] = ()) -> None:
        super().__init__()
        # Resolve now so that a bad layout fails when the pipeline is built.
        self.category_ranges = get_category_keypoint_ranges(category_keypoints)
        self.category_keypoints = category_keypoints
        if not isinstance(min_bbox_size, Real) or min_bbox_size < 0:
            raise ValueError('min_bbox_size must be a number >= 0, got '
                             f'{min_bbox_size!r}')
        if outside_image not in _OUTSIDE_IMAGE_MODES:
            raise ValueError(f'outside_image must be one of '
                             f'{_OUTSIDE_IMAGE_MODES}, got {outside_image!r}')
        if outside_category not in _OUTSIDE_CATEGORY_MODES:
            raise ValueError(f'outside_category must be one of '
                             f'{_OUTSIDE_CATEGORY_MODES}, got '
                             f'{outside_category!r}')
        if not isinstance(min_keypoints, Integral) or min_keypoints < 0:
            raise ValueError('min_keypoints must be an int >= 0, got '
                             f'{min_keypoints!r}')
        if isinstance(extra_instance_keys, str):
            raise TypeError('extra_instance_keys must be a sequence of key '
                            f'names, got the string {extra_instance_keys!r}')
        self.min_bbox_size = float(min_bbox_size)
        self.clip_bbox = bool(clip_bbox)
        self.outside_image = outside_image
        self.outside_category = outside_category
        self.drop_crowd = bool(drop_crowd)
        self.min_keypoints = int(min_keypoints)
        self.drop_empty_images = bool(drop_empty_images)
        self.instance_keys = tuple(INSTANCE_KEYS) + tuple(
            k for k in extra_instance_keys if k not in INSTANCE_KEYS)
        self._membership = {}  # num_keypoints -> (C, K) bool matrix

    @property
    def num_classes(self) -> int:
        """Number of categories C (valid ids are ``1..C``)."""
        return len(self.category_ranges)

    def _category_membership(self, num_keypoints: int) -> np.ndarray:
        """(C, K) bool: keypoint k belongs to class c (cached per K)."""
        if num_keypoints not in self._membership:
            get_category_keypoint_ranges(self.category_ranges, num_keypoints)
            self._membership[num_keypoints] = keypoint_category_matrix(
                self.category_ranges, num_keypoints)
        return self._membership[num_keypoints]

    @staticmethod
    def _image_size(results: dict) -> Tuple[int, int]:
        """(W, H) of the current input image in pixels."""
        img = results.get('img')
        if isinstance(img, np.ndarray) and img.ndim >= 2:
            return int(img.shape[1]), int(img.shape[0])
        if results.get('input_size') is not None:
            w, h = results['input_size']
            return int(w), int(h)
        if results.get('img_shape') is not None:
            h, w = results['img_shape'][:2]
            return int(w), int(h)
        raise ValueError('CenterNetFilterInstances needs the image size: '
                         'none of img, input_size, img_shape is in the '
                         f'results of {_describe_image(results)}')

    def _category_ids(self, results: dict, num: int) -> np.ndarray:
        """Validated (N,) int64 category ids."""
        where = _describe_image(results)
        if 'category_id' not in results:
            raise ValueError(
                f'{where} has no "category_id": multi-class training needs '
                'one per instance (mmpose\'s BaseCocoStyleDataset provides '
                'it in data_mode="bottomup")')
        raw = np.asarray(results['category_id'])
        if raw.shape != (num, ):
            raise ValueError(f'{where}: category_id has shape {raw.shape}, '
                             f'expected ({num},), one per instance (load '
                             'the dataset with data_mode="bottomup")')
        if raw.dtype.kind in 'iu':
            ids = raw.astype(np.int64)
        elif raw.dtype.kind == 'f' and np.all(np.isfinite(raw)) and np.all(
                raw == np.round(raw)):
            ids = raw.astype(np.int64)
        else:
            raise ValueError(f'{where}: category_id must hold integers, got '
                             f'{raw.tolist()}')
        bad = np.flatnonzero((ids < 1) | (ids > self.num_classes))
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f'unknown category_id {int(ids[i])} (instance {i}) in '
                f'{where}: the keypoint layout '
                f'{self.category_keypoints!r} has {self.num_classes} '
                f'categories, ids 1..{self.num_classes}')
        return ids

    def _check_lengths(self, results: dict, num: int) -> None:
        for key in self.instance_keys:
            value = results.get(key)
            if value is None or key == 'category_id':
                continue
            length = (value.shape[0] if isinstance(value, np.ndarray)
                      and value.ndim > 0 else
                      len(value) if isinstance(value, (list, tuple)) else
                      None)
            if length is None:
                raise ValueError(
                    f'{_describe_image(results)}: per-instance field '
                    f'"{key}" is a {type(value).__name__}, not one entry '
                    'per instance (load the dataset with '
                    'data_mode="bottomup")')
            if length != num:
                raise ValueError(
                    f'{_describe_image(results)}: per-instance field '
                    f'"{key}" has {length} entries but there are {num} '
                    'instances; an earlier transform filtered instances '
                    'without it (mmpose\'s FilterAnnotations does this to '
                    'id/iscrowd/num_keypoints/raw_ann_info; use '
                    'CenterNetFilterInstances instead)')

    @staticmethod
    def _xyxy(bbox, num: int, where: str) -> np.ndarray:
        """(N, 4) xyxy float32 from xyxy boxes or (N, 4, 2) corners."""
        bbox = np.asarray(bbox, dtype=np.float32)
        if bbox.shape == (num, 4):
            return bbox.copy()
        if bbox.shape == (num, 4, 2):
            return np.concatenate([bbox.min(axis=1), bbox.max(axis=1)],
                                  axis=1)
        raise ValueError(f'{where}: bbox has shape {bbox.shape}, expected '
                         f'({num}, 4) xyxy or ({num}, 4, 2) corners')

    def transform(self, results: dict) -> Optional[dict]:
        """Validate and filter the instances of ``results`` (see the class
        docstring); returns ``results`` or ``None``."""
        where = _describe_image(results)
        if results.get('keypoints') is None:
            raise ValueError(f'{where} has no "keypoints"')
        keypoints = np.array(results['keypoints'], dtype=np.float32)
        if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
            raise ValueError(f'{where}: keypoints must be (N, K, 2), got '
                             f'{keypoints.shape}')
        num, num_kpts = keypoints.shape[:2]
        if results.get('keypoints_visible') is None:
            raise ValueError(f'{where} has no "keypoints_visible"')
        visible_all = np.array(results['keypoints_visible'], dtype=np.float32)
        if visible_all.shape not in ((num, num_kpts), (num, num_kpts, 2)):
            raise ValueError(
                f'{where}: keypoints_visible has shape {visible_all.shape}, '
                f'expected ({num}, {num_kpts}) or ({num}, {num_kpts}, 2)')
        # (N, K, 2) packs (visibility, weight); only the visibility is
        # edited, through this view.
        visible = (
            visible_all[..., 0] if visible_all.ndim == 3 else visible_all)
        if results.get('bbox') is None:
            raise ValueError(f'{where} has no "bbox"')
        category_id = self._category_ids(results, num)
        self._check_lengths(results, num)
        membership = self._category_membership(num_kpts)
        img_w, img_h = self._image_size(results)

        # 3. non-finite coordinates / visibilities -> unlabelled
        finite = np.isfinite(keypoints).all(axis=-1)
        keypoints[~finite] = 0.
        visible[~(finite & np.isfinite(visible))] = 0.

        # 4. keypoints outside the image
        if self.outside_image == 'unlabel':
            x, y = keypoints[..., 0], keypoints[..., 1]
            inside = (x >= 0) & (x < img_w) & (y >= 0) & (y < img_h)
            visible[~inside] = 0.

        # 5. labelled keypoints outside the instance's category slice
        stray = (visible > 0) & ~membership[category_id - 1]
        if stray.any():
            if self.outside_category == 'error':
                i, k = (int(v[0]) for v in np.nonzero(stray))
                first, last = self.category_ranges[category_id[i] - 1]
                raise ValueError(
                    f'{where}: instance {i} (category_id {category_id[i]}) '
                    f'labels keypoint {k}, outside its category\'s keypoint '
                    f'range [{first}, {last}] of layout '
                    f'{self.category_keypoints!r} ({int(stray.sum())} such '
                    'keypoints in this image); check the layout, the '
                    'category ids and the flip indices, or set '
                    'outside_category="unlabel"')
            visible[stray] = 0.

        # 6.-8. which instances to keep
        bbox = self._xyxy(results['bbox'], num, where)
        keep = np.isfinite(bbox).all(axis=1)
        bbox[~keep] = 0.
        if self.clip_bbox:
            np.clip(bbox[:, 0::2], 0, img_w, out=bbox[:, 0::2])
            np.clip(bbox[:, 1::2], 0, img_h, out=bbox[:, 1::2])
        keep &= (bbox[:, 2] - bbox[:, 0] > self.min_bbox_size) & (
            bbox[:, 3] - bbox[:, 1] > self.min_bbox_size)
        if self.drop_crowd and results.get('iscrowd') is not None:
            keep &= ~np.asarray(results['iscrowd']).astype(bool)
        labelled_count = (visible > 0).sum(axis=1)
        keep &= labelled_count >= self.min_keypoints

        results['keypoints'] = keypoints
        results['keypoints_visible'] = visible_all
        results['bbox'] = bbox
        results['category_id'] = category_id
        if 'num_keypoints' in results:
            results['num_keypoints'] = [int(c) for c in labelled_count]
        self._select(results, keep)

        if not keep.any() and self.drop_empty_images:
            return None
        return results

    def _select(self, results: dict, keep: np.ndarray) -> None:
        """Keep the instances where ``keep`` is True in every per-instance
        field, in their original order."""
        index = np.flatnonzero(keep)
        for key in self.instance_keys:
            value = results.get(key)
            if value is None:
                continue
            if isinstance(value, np.ndarray) and value.ndim > 0:
                results[key] = value[index]
            elif isinstance(value, (list, tuple)):
                results[key] = type(value)(value[i] for i in index)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'category_keypoints={self.category_keypoints!r}, '
                f'min_bbox_size={self.min_bbox_size}, '
                f'clip_bbox={self.clip_bbox}, '
                f'outside_image={self.outside_image!r}, '
                f'outside_category={self.outside_category!r}, '
                f'drop_crowd={self.drop_crowd}, '
                f'min_keypoints={self.min_keypoints}, '
                f'drop_empty_images={self.drop_empty_images})')

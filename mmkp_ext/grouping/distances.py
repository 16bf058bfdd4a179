"""Distances between keypoint types for the automatic grouping.

Two sources (``shared/specs/centernet_grouping.md``, "Automatic grouping"):

* annotations: the mean offset of each keypoint type from its object's box
  centre, normalised by the box size (:func:`mean_keypoint_offsets`);
* a trained checkpoint: the rows of the last convolution of the keypoint
  regression branch (x and y rows of a keypoint concatenated) or of the
  keypoint heatmap branch (:func:`head_row_features`).

Either gives one feature vector per keypoint type; the distance between two
types is the Euclidean distance between their vectors
(:func:`euclidean_distances`). numpy / scipy only.
"""
import json
import os
from operator import itemgetter
from typing import Mapping, Optional, Tuple, Union

import numpy as np
from scipy.spatial.distance import pdist, squareform

__all__ = [
    'load_coco_annotations', 'mean_keypoint_offsets', 'head_row_features',
    'euclidean_distances'
]

#: Annotations per block while accumulating offsets: bounds the memory of a
#: large file (DeepFashion2 train: ~190k objects x 294 keypoints).
_CHUNK = 8192


def load_coco_annotations(source: Union[str, os.PathLike, Mapping]) -> dict:
    """Read a COCO-style keypoint annotation file (or take a parsed dict).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the object has no ``annotations`` list.
    """
    if isinstance(source, Mapping):
        coco = source
    else:
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f'annotation file {path!r} does not exist')
        with open(path) as f:
            coco = json.load(f)
    if not isinstance(coco.get('annotations'), list):
        raise ValueError('a COCO-style annotation object needs an '
                         '"annotations" list')
    return coco


def _annotation_arrays(anns: list) -> Tuple[np.ndarray, np.ndarray]:
    """Keypoints ``(N, K, 3)`` and boxes ``(N, 4)`` of a block of COCO
    annotations (fields pulled with ``map``; arithmetic stays in numpy)."""
    try:
        kpts = np.asarray(list(map(itemgetter('keypoints'), anns)),
                          dtype=np.float64)
        boxes = np.asarray(list(map(itemgetter('bbox'), anns)),
                           dtype=np.float64)
    except KeyError as e:
        raise ValueError(f'an annotation lacks the field {e}; every '
                         'annotation needs "keypoints" and "bbox"') from None
    except ValueError:
        lengths = sorted({len(a.get('keypoints', ())) for a in anns})
        raise ValueError(
            'annotations have keypoint lists of different lengths '
            f'{lengths} (need 3 * K values each)') from None
    if kpts.ndim != 2 or kpts.shape[1] % 3:
        raise ValueError('annotation "keypoints" must hold 3 * K numbers '
                         f'(x, y, v per keypoint), got shape {kpts.shape}')
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError('annotation "bbox" must be [x, y, w, h], got shape '
                         f'{boxes.shape}')
    return kpts.reshape(len(anns), -1, 3), boxes


def mean_keypoint_offsets(
        source: Union[str, os.PathLike, Mapping],
        num_keypoints: Optional[int] = None,
        missing: str = 'zero') -> Tuple[np.ndarray, np.ndarray]:
    """Mean normalised offset of every keypoint type from its box centre.

    For an object with box ``(x, y, w, h)`` (COCO ``bbox``) and a labelled
    keypoint ``(px, py, v > 0)`` the offset is
    ``((px - x - w/2) / w, (py - y - h/2) / h)``, i.e. in box units (the
    box spans ``[-0.5, 0.5]`` on both axes). Crowd annotations and boxes
    with ``w <= 0`` or ``h <= 0`` are skipped.

    Args:
        source: COCO-style annotation file or parsed dict.
        num_keypoints (int, optional): expected ``K``; an error names the
            mismatch.
        missing (str): what a keypoint type never labelled in the file gets:
            ``'zero'`` (the box centre, the uninformed guess; its count is 0
            so callers can report it) or ``'error'``.

    Returns:
        tuple: ``offsets`` ``(K, 2)`` float64 (box units) and ``counts``
        ``(K,)`` int64 (labelled instances per keypoint type).
    """
    if missing not in ('zero', 'error'):
        raise ValueError(f"missing must be 'zero' or 'error', got {missing!r}")
    anns = load_coco_annotations(source)['annotations']
    anns = [a for a in anns if not a.get('iscrowd', 0)]
    if not anns:
        raise ValueError('the annotation file has no (non-crowd) annotations')
    sums = counts = None
    for start in range(0, len(anns), _CHUNK):
        kpts, boxes = _annotation_arrays(anns[start:start + _CHUNK])
        if sums is None:
            k = kpts.shape[1]
            if num_keypoints is not None and k != num_keypoints:
                raise ValueError(
                    f'the annotations have {k} keypoints per object but '
                    f'{num_keypoints} keypoints are expected')
            sums = np.zeros((k, 2))
            counts = np.zeros(k, dtype=np.int64)
        elif kpts.shape[1] != sums.shape[0]:
            raise ValueError('annotations have different keypoint counts '
                             f'({sums.shape[0]} and {kpts.shape[1]})')
        size = boxes[:, 2:]  # (N, 2): w, h
        centre = boxes[:, :2] + size / 2
        ok = (size > 0).all(1)[:, None] & (kpts[..., 2] > 0)  # (N, K)
        safe = np.where(size > 0, size, 1.0)
        offset = (kpts[..., :2] - centre[:, None]) / safe[:, None]  # (N,K,2)
        sums += np.where(ok[..., None], offset, 0.0).sum(0)
        counts += ok.sum(0)
    seen = counts > 0
    if not seen.all() and missing == 'error':
        raise ValueError(
            f'{int((~seen).sum())} keypoint types are never labelled in the '
            f'annotations (first: {np.flatnonzero(~seen)[:10].tolist()})')
    offsets = np.zeros_like(sums)
    offsets[seen] = sums[seen] / counts[seen, None]
    return offsets, counts


def head_row_features(weight: np.ndarray, kind: str,
                      num_keypoints: int) -> np.ndarray:
    """Per-keypoint feature vectors from the last convolution of an
    ungrouped head branch.

    Args:
        weight: ``(out, in)`` or ``(out, in, 1, 1)`` array of the branch's
            last (1x1) convolution.
        kind (str): ``'reg'`` (keypoint regression: ``out = 2K``, rows
            ``2k`` / ``2k + 1`` are x / y of keypoint ``k``) or ``'hm'``
            (keypoint heatmap: ``out = K``).
        num_keypoints (int): ``K``.

    Returns:
        ``(K, 2 * in)`` for ``'reg'`` (x row then y row) or ``(K, in)`` for
        ``'hm'``, float64.

    Raises:
        ValueError: unknown ``kind`` or a row count that does not fit ``K``
            (e.g. the weights of an already grouped head).
    """
    weight = np.asarray(weight, dtype=np.float64)
    if weight.ndim == 4:
        weight = weight.reshape(weight.shape[0], -1)
    if weight.ndim != 2:
        raise ValueError('expected a (out, in) or (out, in, kh, kw) weight, '
                         f'got shape {weight.shape}')
    rows = {'reg': 2 * num_keypoints, 'hm': num_keypoints}
    if kind not in rows:
        raise ValueError(f"kind must be 'reg' or 'hm', got {kind!r}")
    if weight.shape[0] != rows[kind]:
        raise ValueError(
            f'the {kind} weight has {weight.shape[0]} output rows but '
            f'{rows[kind]} are expected for {num_keypoints} ungrouped '
            'keypoints (is the checkpoint already grouped, or for another '
            'keypoint count?)')
    # (2K, in) -> (K, 2 * in): x row of keypoint k, then its y row.
    return weight.reshape(num_keypoints, -1)


def euclidean_distances(features: np.ndarray) -> np.ndarray:
    """Square ``(K, K)`` Euclidean distance matrix of ``(K, D)`` features
    (zero diagonal, symmetric)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError('features must be (K, D) with K >= 2, got shape '
                         f'{features.shape}')
    if not np.isfinite(features).all():
        raise ValueError('features contain NaN or inf')
    return squareform(pdist(features))

"""Validation of COCO-style keypoint annotation files at load time.

One function, :func:`check_coco_keypoint_annotations`, checks what the
dataset classes and the COCO metrics of mmkp_ext need from every
annotation, before anything is parsed, so a faulty file fails at once with
one error that names the file and, per problem, how many annotations have
it and the first offending annotation ids -- instead of an ``IndexError``
deep in a transform, a ``KeyError`` inside xtcocotools after the whole
inference pass, or an annotation that is silently dropped.

Checked, per annotation (``K`` = the dataset's ``num_keypoints``):

* it is a dict with ``id`` and ``image_id``; ``image_id`` names an entry of
  ``images``; ids are unique;
* ``category_id`` is present and, when the file lists ``categories``, one
  of them;
* ``bbox`` is present: 4 finite numbers, width and height >= 0;
* ``keypoints`` is present: ``3 * K`` finite numbers (the error gives the
  annotation's keypoint count and ``K``);
* ``area``, when present, is a finite number >= 0.

Default (not an error): an annotation without ``area`` gets
``area = 0.53 * w * h`` of its box -- the OKS scale that xtcocotools itself
uses for GT without an area (``COCOeval(..., use_area=False)``) and the
value mmpose's ``BaseCocoStyleDataset`` gives such an instance -- written
into the annotation dict in memory; how many were filled is returned and
logged once per file.
"""
import json
import logging
import os.path as osp
from itertools import chain
from typing import Dict, List, Optional

import numpy as np
from mmengine.fileio import get_local_path
from mmengine.logging import print_log

__all__ = [
    'AnnotationError', 'check_coco_keypoint_annotations',
    'load_checked_coco_json', 'check_mpii_annotations', 'DEFAULT_AREA_FACTOR'
]

#: ``area = DEFAULT_AREA_FACTOR * w * h`` for annotations without ``area``
#: (xtcocotools' OKS scale for GT without an area).
DEFAULT_AREA_FACTOR = 0.53

#: How many offending annotation ids an error lists per problem.
MAX_LISTED_IDS = 5


class AnnotationError(ValueError):
    """An annotation file that the datasets or metrics cannot use."""


def _is_number(value) -> bool:
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, bool))


def _finite_numbers(values, length: Optional[int] = None) -> bool:
    """Whether ``values`` is a list/tuple of finite numbers (of
    ``length``)."""
    if not isinstance(values, (list, tuple)):
        return False
    if length is not None and len(values) != length:
        return False
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return arr.ndim == 1 and bool(np.isfinite(arr).all())


def _as_rows(anns: list, positions: List[int], key: str, width: int):
    """``anns[p][key]`` for ``p`` in ``positions`` (each of length
    ``width``; a scalar counts as width 1) as one (N, width) float array
    (None if some value is not a number) and the (N,) bool rows that are
    not all finite. One conversion for all rows; row by row only when some
    value is not a number. (Positions, not per-row tuples: allocating those
    for every annotation triggers full garbage collections over the whole
    json.)"""
    if not positions:
        return None, np.zeros(0, dtype=bool)
    if width == 1:
        values = (anns[p][key] for p in positions)
    else:
        values = chain.from_iterable(anns[p][key] for p in positions)
    try:
        arr = np.fromiter(values,
                          dtype=np.float64,
                          count=len(positions) * width).reshape(-1, width)
    except (TypeError, ValueError):
        return None, np.array([
            not _finite_numbers(np.atleast_1d(anns[p][key]).tolist(), width)
            for p in positions
        ])
    return arr, ~np.isfinite(arr).all(axis=1)


def check_coco_keypoint_annotations(dataset: dict,
                                    source: str,
                                    num_keypoints: Optional[int] = None,
                                    fill_area: bool = True,
                                    logger: str = 'current') -> Dict[str, int]:
    """Check a loaded COCO keypoint json (see the module docstring).

    Args:
        dataset: the parsed json (``images``, ``annotations``, optionally
            ``categories``). Annotations without ``area`` are completed in
            place when ``fill_area``.
        source: what to call the file in messages (its path).
        num_keypoints: the dataset metainfo's keypoint count ``K``; None
            skips the keypoint-count check (the keypoint lists must then
            still be whole ``(x, y, v)`` triplets of one common length).
        fill_area: give annotations without ``area`` the default area
            (else that is an error).
        logger: mmengine logger for the filled-area count.

    Returns:
        dict with ``num_annotations`` and ``num_filled_area``.

    Raises:
        AnnotationError: one error for the whole file, one line per problem
            with its count and the first :data:`MAX_LISTED_IDS` annotation
            ids (or list positions where the id itself is missing).
    """
    if not isinstance(dataset, dict):
        raise AnnotationError(
            f'{source}: a COCO annotation file must hold a json object, got '
            f'{type(dataset).__name__}')
    for key in ('images', 'annotations'):
        if not isinstance(dataset.get(key), list):
            raise AnnotationError(
                f'{source}: the COCO json has no `{key}` list')
    images = dataset['images']
    anns = dataset['annotations']
    image_ids = {img.get('id') for img in images if isinstance(img, dict)}
    categories = dataset.get('categories')
    cat_ids = (None if not isinstance(categories, list) else
               {c.get('id')
                for c in categories if isinstance(c, dict)})

    problems: Dict[str, List] = {}
    expected_len = None if num_keypoints is None else 3 * int(num_keypoints)
    seen_lengths: Dict[int, int] = {}

    def add(problem: str, ident) -> None:
        problems.setdefault(problem, []).append(ident)

    seen_ids = set()
    missing_area = []
    # numeric checks run vectorised after the loop, per field (and per
    # keypoint-list length); the loop only looks at keys and lengths
    boxes: List[int] = []
    keypoints: Dict[int, List[int]] = {}
    areas: List[int] = []
    bad_box = ('has a `bbox` that is not [x, y, w, h] of finite numbers '
               'with w, h >= 0')
    for pos, ann in enumerate(anns):
        if not isinstance(ann, dict):
            add('is not a json object', f'#{pos}')
            continue
        if 'id' not in ann:
            add('has no `id` (list positions given)', f'#{pos}')
            ident = f'#{pos}'
        else:
            ident = ann['id']
            if ident in seen_ids:
                add('repeats an annotation id', ident)
            seen_ids.add(ident)
        if 'image_id' not in ann:
            add('has no `image_id`', ident)
        elif ann['image_id'] not in image_ids:
            add('refers to an `image_id` missing from `images`', ident)
        if 'category_id' not in ann:
            add('has no `category_id`', ident)
        elif cat_ids is not None and ann['category_id'] not in cat_ids:
            add(
                f'has a `category_id` not in `categories` '
                f'{sorted(cat_ids, key=str)}', ident)
        if 'bbox' not in ann:
            add('has no `bbox`', ident)
        elif isinstance(ann['bbox'], (list, tuple)) and len(ann['bbox']) == 4:
            boxes.append(pos)
        else:
            add(bad_box, ident)
        if 'keypoints' not in ann:
            add('has no `keypoints`', ident)
        else:
            kpts = ann['keypoints']
            if not isinstance(kpts, (list, tuple)):
                add('has `keypoints` that are not a list', ident)
            else:
                n = len(kpts)
                if expected_len is not None and n != expected_len:
                    add(
                        f'has a keypoint count other than the dataset '
                        f"metainfo's {num_keypoints} ({expected_len} values)",
                        f'{ident} ({n / 3:g} keypoints, {n} values)')
                elif n % 3:
                    add(
                        'has a `keypoints` list whose length is not a '
                        'multiple of 3 (x, y, v)', f'{ident} ({n} values)')
                else:
                    keypoints.setdefault(n, []).append(pos)
                seen_lengths.setdefault(n, ident)
        if 'area' not in ann:
            missing_area.append(ann)
        elif _is_number(ann['area']):
            areas.append(pos)
        else:
            add('has an `area` that is not a finite number >= 0', ident)

    def ident_of(pos: int):
        return anns[pos].get('id', f'#{pos}')

    arr, bad = _as_rows(anns, boxes, 'bbox', 4)
    if arr is not None:
        bad |= np.nan_to_num(arr[:, 2:], nan=-1.).min(axis=1) < 0
    for i in np.flatnonzero(bad).tolist():
        add(bad_box, ident_of(boxes[i]))
    for n, positions in keypoints.items():
        _, bad = _as_rows(anns, positions, 'keypoints', n)
        for i in np.flatnonzero(bad).tolist():
            add('has `keypoints` that are not finite numbers',
                ident_of(positions[i]))
    arr, bad = _as_rows(anns, areas, 'area', 1)
    if arr is not None:
        bad |= np.nan_to_num(arr[:, 0], nan=-1.) < 0
    for i in np.flatnonzero(bad).tolist():
        add('has an `area` that is not a finite number >= 0',
            ident_of(areas[i]))

    if expected_len is None and len(seen_lengths) > 1:
        add(
            'disagree on the keypoint count (first annotation per count)',
            ', '.join(f'{ident} ({n / 3:g} keypoints)'
                      for n, ident in seen_lengths.items()))
    if missing_area and not fill_area:
        for ann in missing_area:
            add('has no `area`', ann.get('id', '?'))
    if problems:
        lines = []
        for problem, idents in problems.items():
            shown = ', '.join(str(i) for i in idents[:MAX_LISTED_IDS])
            more = (f' and {len(idents) - MAX_LISTED_IDS} more'
                    if len(idents) > MAX_LISTED_IDS else '')
            lines.append(f'  {len(idents)} annotation(s) {problem}: '
                         f'ids {shown}{more}')
        raise AnnotationError(f'invalid annotation file {source}:\n' +
                              '\n'.join(lines))

    if missing_area and fill_area:
        boxes = np.asarray([ann['bbox'] for ann in missing_area],
                           dtype=np.float64).reshape(-1, 4)
        areas = DEFAULT_AREA_FACTOR * boxes[:, 2] * boxes[:, 3]
        for ann, area in zip(missing_area, areas.tolist()):
            ann['area'] = area
        print_log(
            f'{source}: {len(missing_area)} of {len(anns)} annotations have '
            f'no `area`; using {DEFAULT_AREA_FACTOR} * box width * height '
            f'(first id: {missing_area[0].get("id")})',
            logger=logger,
            level=logging.WARNING)
    return dict(num_annotations=len(anns), num_filled_area=len(missing_area))


def load_checked_coco_json(path: str,
                           num_keypoints: Optional[int] = None,
                           fill_area: bool = True,
                           require_annotations: bool = True) -> dict:
    """Read a COCO json (local or through mmengine's file backends) and
    check it with :func:`check_coco_keypoint_annotations`.

    Args:
        path: the json file.
        num_keypoints, fill_area: see :func:`check_coco_keypoint_annotations`.
        require_annotations: False accepts a file without ``annotations``
            (an image-info file, for ``format_only`` metrics) unchecked.

    Returns:
        the parsed json (annotations completed as documented).

    Raises:
        AnnotationError: the file is missing, not UTF-8 json, or invalid.
    """
    try:
        with get_local_path(path) as local_path:
            if not osp.isfile(local_path):
                raise AnnotationError(f'annotation file {path} does not exist')
            with open(local_path, encoding='utf-8') as f:
                dataset = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AnnotationError(
            f'annotation file {path} is not UTF-8 json: {exc}') from None
    if (require_annotations or not isinstance(dataset, dict)
            or 'annotations' in dataset):
        check_coco_keypoint_annotations(dataset,
                                        path,
                                        num_keypoints=num_keypoints,
                                        fill_area=fill_area)
    return dataset


def _format_problems(source: str, problems: Dict[str, List]) -> str:
    lines = []
    for problem, idents in problems.items():
        shown = ', '.join(str(i) for i in idents[:MAX_LISTED_IDS])
        more = (f' and {len(idents) - MAX_LISTED_IDS} more'
                if len(idents) > MAX_LISTED_IDS else '')
        lines.append(f'  {len(idents)} annotation(s) {problem}: {shown}{more}')
    return f'invalid annotation file {source}:\n' + '\n'.join(lines)


def check_mpii_annotations(anns, source: str, num_keypoints: int) -> None:
    """Check an MPII-format annotation list (mmpose's ``MpiiDataset``: one
    dict per person with ``image``, ``center`` (2), ``scale``, ``joints``
    (K x 2) and ``joints_vis`` (K)). MPII annotations have no ids: problems
    name the list position and the image.

    Raises:
        AnnotationError: one error for the file, one line per problem.
    """
    if not isinstance(anns, list):
        raise AnnotationError(f'{source}: an MPII annotation file must hold '
                              f'a json list, got {type(anns).__name__}')
    problems: Dict[str, List] = {}

    def add(problem: str, pos: int, ann) -> None:
        image = ann.get('image', '?') if isinstance(ann, dict) else '?'
        problems.setdefault(problem, []).append(f'#{pos} ({image})')

    for pos, ann in enumerate(anns):
        if not isinstance(ann, dict):
            add('is not a json object', pos, ann)
            continue
        if not isinstance(ann.get('image'), str):
            add('has no `image` file name', pos, ann)
        if not _finite_numbers(ann.get('center'), 2):
            add('has no `center` of 2 finite numbers', pos, ann)
        scale = ann.get('scale')
        if not _is_number(scale) or not np.isfinite(scale) or scale <= 0:
            add('has no `scale` > 0', pos, ann)
        joints = ann.get('joints')
        try:
            arr = np.asarray(joints, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.ndim != 2 or arr.shape[1] != 2:
            add('has no `joints` list of [x, y] pairs', pos, ann)
        elif len(arr) != num_keypoints:
            add(
                f"has a joint count other than the dataset metainfo's "
                f'{num_keypoints} (joint count in brackets)', pos,
                dict(image=f'{ann.get("image", "?")}, {len(arr)} joints'))
        elif not np.isfinite(arr).all():
            add('has `joints` that are not finite numbers', pos, ann)
        vis = ann.get('joints_vis')
        if not _finite_numbers(vis, num_keypoints):
            add(f'has no `joints_vis` list of {num_keypoints} numbers', pos,
                ann)
    if problems:
        raise AnnotationError(_format_problems(source, problems))

"""Keypoint layouts of multi-class keypoint datasets.

In a multi-class layout (DeepFashion2, toy fashion) every instance carries
the full global keypoint vector and each category owns one contiguous,
inclusive range ``[first, last]`` of it (0-based keypoint indices). Class
index ``c`` (0-based, the channel of the centre heatmap) is
``category_id - 1``: category ids must be ``1..C`` in order.

Codecs, heads and metrics take ``category_keypoints`` as either a layout name
(:data:`KNOWN_LAYOUTS`) or an explicit list of ``(first, last)`` pairs and
resolve it with :func:`get_category_keypoint_ranges`.
"""
from typing import List, Sequence, Tuple, Union

import numpy as np

#: DeepFashion2's 13 categories: (first, last) keypoint index, inclusive,
#: in category-id order (figures from the official DeepFashion2 COCO
#: conversion; 294 keypoints in all).
DEEPFASHION2_CATEGORY_RANGES: Tuple[Tuple[int, int], ...] = (
    (0, 24), (25, 57), (58, 88), (89, 127), (128, 142), (143, 157),
    (158, 167), (168, 181), (182, 189), (190, 218), (219, 255), (256, 274),
    (275, 293))

#: Names accepted by :func:`get_category_keypoint_ranges`.
KNOWN_LAYOUTS = ('deepfashion2', 'toy_fashion', 'coco')


def _toy_fashion_ranges() -> List[Tuple[int, int]]:
    from .toy_fashion import FASHION_CATEGORIES
    cats = sorted(FASHION_CATEGORIES, key=lambda c: c['id'])
    return [(c['start'], c['start'] + c['num_keypoints'] - 1) for c in cats]


def get_category_keypoint_ranges(
        layout: Union[str, Sequence[Sequence[int]]],
        num_keypoints: int = None) -> List[Tuple[int, int]]:
    """Resolve ``layout`` to a list of inclusive ``(first, last)`` keypoint
    index ranges, one per class (class ``c`` = category id ``c + 1``).

    Args:
        layout: a name in :data:`KNOWN_LAYOUTS` (``'coco'`` is one class
            owning keypoints 0-16) or a sequence of ``(first, last)`` pairs.
        num_keypoints: if given, the ranges must lie in
            ``[0, num_keypoints)``.

    Returns:
        list of ``(first, last)`` int tuples.

    Raises:
        ValueError: unknown name, malformed pair, ``first > last``,
            overlapping ranges, or a range outside ``[0, num_keypoints)``.
    """
    if isinstance(layout, str):
        if layout == 'deepfashion2':
            ranges = list(DEEPFASHION2_CATEGORY_RANGES)
        elif layout == 'toy_fashion':
            ranges = _toy_fashion_ranges()
        elif layout == 'coco':
            ranges = [(0, 16)]
        else:
            raise ValueError(f'unknown keypoint layout {layout!r}; known: '
                             f'{KNOWN_LAYOUTS} (or give (first, last) pairs)')
    else:
        ranges = []
        for i, pair in enumerate(layout):
            if len(pair) != 2:
                raise ValueError(f'category_keypoints[{i}] = {pair!r} is not '
                                 'a (first, last) pair')
            first, last = (int(v) for v in pair)
            if first > last or first < 0:
                raise ValueError(f'category_keypoints[{i}] = {pair!r}: need '
                                 '0 <= first <= last')
            ranges.append((first, last))
        if not ranges:
            raise ValueError('category_keypoints is empty')
    order = sorted(ranges)
    for (_, last_a), (first_b, _) in zip(order, order[1:]):
        if first_b <= last_a:
            raise ValueError(f'category keypoint ranges overlap: {ranges}')
    if num_keypoints is not None and ranges[-1][1] >= num_keypoints:
        bad = [r for r in ranges if r[1] >= num_keypoints]
        raise ValueError(f'category keypoint ranges {bad} lie outside the '
                         f'{num_keypoints} keypoints')
    return ranges


def keypoint_category_matrix(ranges: Sequence[Tuple[int, int]],
                             num_keypoints: int) -> np.ndarray:
    """Boolean (C, K) matrix: ``[c, k]`` is True where keypoint ``k``
    belongs to class ``c``. Keypoints outside every range belong to none."""
    ks = np.arange(num_keypoints)
    firsts = np.array([r[0] for r in ranges])[:, None]
    lasts = np.array([r[1] for r in ranges])[:, None]
    return (ks[None] >= firsts) & (ks[None] <= lasts)

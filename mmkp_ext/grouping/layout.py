"""Keypoint layouts of multi-class keypoint models: which keypoints each
class owns and how keypoints share output channels (grouping). Shared by the
grouped-CenterNet codec and head, the metrics, the transforms and the rest
of :mod:`mmkp_ext.grouping`; numpy only.

In a multi-class layout (DeepFashion2, toy fashion) every instance carries
the full global keypoint vector and each category owns one contiguous,
inclusive range ``[first, last]`` of it (0-based keypoint indices). Class
index ``c`` (0-based, the channel of the centre heatmap) is
``category_id - 1``: category ids must be ``1..C`` in order.

Codecs, heads and metrics take ``category_keypoints`` as either a layout name
(:data:`KNOWN_LAYOUTS`) or an explicit list of ``(first, last)`` pairs and
resolve it with :func:`get_category_keypoint_ranges`; the grouping
arguments (a grouping JSON or ``reg_group`` / ``hm_group`` lists) resolve
with :func:`resolve_grouping`.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from .grouping_file import load_grouping, validate_group

#: DeepFashion2's 13 categories: (first, last) keypoint index, inclusive,
#: in category-id order (figures from the official DeepFashion2 COCO
#: conversion; 294 keypoints in all).
DEEPFASHION2_CATEGORY_RANGES: Tuple[Tuple[int, int], ...] = (
    (0, 24), (25, 57), (58, 88), (89, 127), (128, 142), (143, 157),
    (158, 167), (168, 181), (182, 189), (190, 218), (219, 255), (256, 274),
    (275, 293))

#: Names accepted by :func:`get_category_keypoint_ranges`.
KNOWN_LAYOUTS = ('deepfashion2', 'toy_fashion', 'coco')


#: The toy fashion dataset's categories (short_sleeved_top, trousers,
#: skirt; ``mmkp_ext.datasets.toy.fashion.FASHION_CATEGORIES``, kept equal
#: by tests/test_grouping/test_layout.py).
TOY_FASHION_CATEGORY_RANGES: Tuple[Tuple[int, int], ...] = ((0, 13),
                                                            (14, 23),
                                                            (24, 31))


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
            ranges = list(TOY_FASHION_CATEGORY_RANGES)
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


def resolve_grouping(num_keypoints: int,
                     reg_group: Optional[Sequence[int]] = None,
                     hm_group: Optional[Sequence[int]] = None,
                     grouping_file=None) -> Tuple[List[int], List[int]]:
    """Turn the grouping arguments shared by the codec and the head into two
    validated lists.

    Either ``grouping_file`` (a grouping JSON path or dict, see
    ``docs/grouping_json.md``) or ``reg_group`` / ``hm_group`` (each
    optional, identity when ``None``); not both.

    Raises:
        ValueError: both a file and lists, or a map that breaks the rules of
            :func:`mmkp_ext.grouping.validate_group` (e.g. a length different
            from ``num_keypoints``).
    """
    if grouping_file is not None:
        if reg_group is not None or hm_group is not None:
            raise ValueError('give either grouping_file or reg_group/hm_group'
                             ', not both')
        g = load_grouping(grouping_file, num_keypoints=num_keypoints)
        return g['reg_group'], g['hm_group']
    ident = list(range(num_keypoints))
    reg = (
        ident if reg_group is None else validate_group(
            reg_group, num_keypoints, 'reg_group'))
    hm = (
        list(ident) if hm_group is None else validate_group(
            hm_group, num_keypoints, 'hm_group'))
    return reg, hm


def resolve_category_ranges(num_keypoints: int,
                            category_keypoints=None) -> List[Tuple[int, int]]:
    """Class keypoint ranges shared by the codec and the head: ``None`` is
    one class owning all ``num_keypoints`` keypoints, anything else goes
    through :func:`get_category_keypoint_ranges`."""
    if category_keypoints is None:
        return [(0, num_keypoints - 1)]
    return get_category_keypoint_ranges(category_keypoints, num_keypoints)


def class_channel_matrix(category_ranges: Sequence[Tuple[int, int]],
                         hm_group: Sequence[int]) -> np.ndarray:
    """``(C, G_h)`` bool: heatmap channel ``g`` holds a keypoint of class
    ``c`` (the basis of the present-class channel mask)."""
    hm = np.asarray(hm_group)
    matrix = np.zeros((len(category_ranges), int(hm.max()) + 1), dtype=bool)
    cc, kk = np.nonzero(keypoint_category_matrix(category_ranges, len(hm)))
    matrix[cc, hm[kk]] = True
    return matrix


def output_channels(num_classes: int, num_reg_groups: int,
                    num_hm_groups: int) -> Dict[str, int]:
    """Channels of each grouped-CenterNet head output (the codec's
    ``OUTPUT_KEYS`` order):
    ``C, 2, 2, 2 G_r, G_h, 2``."""
    return dict(
        center_heatmap=num_classes,
        center_offset=2,
        box_size=2,
        keypoint_reg=2 * num_reg_groups,
        keypoint_heatmap=num_hm_groups,
        keypoint_offset=2)

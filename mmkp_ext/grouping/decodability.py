"""Decodability of a pair of groupings (regression head, heatmap head).

Two keypoints of one category that share a regression group write the same
target cell of one object ("inconsistent pair"); if they also share a
heatmap group, decoding cannot tell them apart. The *matrix of ambiguous
decoding* counts, for every pair of cluster counts ``(n_reg, n_hm)``, the
same-category pairs merged in both heads; a grouping is decodable where
that count is 0.

Everything comes from one dendrogram per head: pair ``(i, j)`` is merged in
every cut with ``n <= L[i, j]`` clusters (:func:`~.clustering.merge_levels`),
so the matrix is a 2-D histogram of ``(L_reg, L_hm)`` over the same-category
pairs, summed from the top (two reversed cumulative sums) -- array
operations, no re-clustering per count.
"""
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .clustering import merge_levels
from .layout import get_category_keypoint_ranges, keypoint_category_matrix

__all__ = [
    'keypoint_categories', 'same_category_pairs', 'inconsistent_counts',
    'ambiguity_matrix', 'decodable_frontier', 'minimal_decodable'
]


def keypoint_categories(layout: Union[str, Sequence],
                        num_keypoints: int) -> np.ndarray:
    """Category index of every keypoint, ``(K,)`` int64, ``-1`` where no
    category owns it.

    Args:
        layout: a layout name (``'deepfashion2'``, ``'toy_fashion'``,
            ``'coco'``) or inclusive ``(first, last)`` ranges, one per
            category (:mod:`mmkp_ext.grouping.layout`).
        num_keypoints (int): ``K``.
    """
    ranges = get_category_keypoint_ranges(layout, num_keypoints)
    owned = keypoint_category_matrix(ranges, num_keypoints)  # (C, K)
    return np.where(owned.any(0), owned.argmax(0), -1).astype(np.int64)


def same_category_pairs(categories: Sequence[int]) -> np.ndarray:
    """``(K, K)`` bool, True at ``[i, j]`` for ``i < j`` of one category
    (keypoints of category ``-1`` pair with nothing)."""
    cat = np.asarray(categories, dtype=np.int64)
    same = (cat[:, None] == cat[None, :]) & (cat >= 0)[:, None]
    return np.triu(same, k=1)


def inconsistent_counts(Z: np.ndarray,
                        categories: Sequence[int]) -> np.ndarray:
    """Number of same-category pairs merged in the cut with ``n`` clusters,
    for every ``n``: ``(K + 1,)`` int64 indexed by ``n`` (entry 0 counts
    all same-category pairs)."""
    levels = merge_levels(Z)
    k = len(levels)
    cat = np.asarray(categories)
    if cat.shape != (k, ):
        raise ValueError(f'categories has {cat.size} entries but the '
                         f'dendrogram has {k} keypoints')
    hist = np.bincount(levels[same_category_pairs(cat)], minlength=k + 1)
    # Pair with level L is merged for every n <= L: sum from the top.
    return np.cumsum(hist[::-1])[::-1].astype(np.int64)


def _counts(counts, k: int, name: str) -> np.ndarray:
    if counts is None:
        return np.arange(1, k + 1)
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    if counts.size == 0 or counts.min() < 1 or counts.max() > k:
        raise ValueError(f'{name} must lie in [1, {k}], got '
                         f'{counts.tolist()[:10]}')
    return counts


def ambiguity_matrix(
        Z_reg: np.ndarray,
        Z_hm: np.ndarray,
        categories: Sequence[int],
        reg_counts: Optional[Sequence[int]] = None,
        hm_counts: Optional[Sequence[int]] = None
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The matrix of ambiguous decoding.

    Args:
        Z_reg, Z_hm: scipy linkages of the regression and heatmap heads
            (same ``K``).
        categories: ``(K,)`` category per keypoint.
        reg_counts, hm_counts: cluster counts to evaluate (default
            ``1..K``).

    Returns:
        tuple: ``A`` ``(len(reg_counts), len(hm_counts))`` int64 with
        ``A[a, b]`` = same-category pairs merged in both the regression cut
        with ``reg_counts[a]`` clusters and the heatmap cut with
        ``hm_counts[b]`` clusters; and the two count arrays.
    """
    lev_r, lev_h = merge_levels(Z_reg), merge_levels(Z_hm)
    k = len(lev_r)
    if len(lev_h) != k:
        raise ValueError(f'the regression dendrogram has {k} keypoints but '
                         f'the heatmap one {len(lev_h)}')
    cat = np.asarray(categories)
    if cat.shape != (k, ):
        raise ValueError(f'categories has {cat.size} entries for {k} '
                         'keypoints')
    reg_counts = _counts(reg_counts, k, 'reg_counts')
    hm_counts = _counts(hm_counts, k, 'hm_counts')
    pairs = same_category_pairs(cat)
    # 2-D histogram of (L_reg, L_hm) over the same-category pairs.
    hist = np.bincount(lev_r[pairs] * (k + 1) + lev_h[pairs],
                       minlength=(k + 1)**2).reshape(k + 1, k + 1)
    # Merged in both at (a, b) iff L_reg >= a and L_hm >= b.
    above = hist[::-1, ::-1].cumsum(0).cumsum(1)[::-1, ::-1]
    return above[np.ix_(reg_counts, hm_counts)], reg_counts, hm_counts


def decodable_frontier(ambiguity: np.ndarray, reg_counts: Sequence[int],
                       hm_counts: Sequence[int]) -> np.ndarray:
    """For every regression count, the smallest heatmap count with a
    decodable (zero) entry; ``-1`` where none is.

    Returns:
        ``(len(reg_counts),)`` int64.
    """
    zero = np.asarray(ambiguity) == 0
    hm_counts = np.asarray(hm_counts)
    # Smallest count among the zero entries of each row.
    masked = np.where(zero, hm_counts[None, :], np.iinfo(np.int64).max)
    best = masked.min(1)
    return np.where(zero.any(1), best, -1).astype(np.int64)


def minimal_decodable(ambiguity: np.ndarray, reg_counts: Sequence[int],
                      hm_counts: Sequence[int]) -> Tuple[int, int]:
    """The decodable ``(n_reg, n_hm)`` with the fewest keypoint output
    channels ``2 n_reg + n_hm`` (regression has an x and a y channel per
    group); ties go to fewer regression groups.

    Raises:
        ValueError: no entry of the matrix is decodable.
    """
    amb = np.asarray(ambiguity)
    reg_counts, hm_counts = np.asarray(reg_counts), np.asarray(hm_counts)
    cost = 2 * reg_counts[:, None] + hm_counts[None, :]
    cost = np.where(amb == 0, cost, np.iinfo(np.int64).max)
    if not (amb == 0).any():
        raise ValueError('no (n_reg, n_hm) in the given ranges is decodable')
    # lexsort: last key is primary -> cost, then n_reg.
    flat = np.lexsort((np.broadcast_to(reg_counts[:, None], amb.shape).ravel(),
                       cost.ravel()))[0]
    a, b = np.unravel_index(flat, amb.shape)
    return int(reg_counts[a]), int(hm_counts[b])

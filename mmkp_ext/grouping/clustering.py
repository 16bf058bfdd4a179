"""Agglomerative clustering of keypoint types on precomputed distances.

One scipy dendrogram (``scipy.cluster.hierarchy.linkage``) per head; every
grouping with ``n`` clusters is a cut of that dendrogram after its first
``K - n`` merges. Cutting by merge *step* rather than by height gives exactly
``n`` clusters even where merge heights tie (``fcluster(..., 'maxclust')``
may return fewer there) and lets one dendrogram be cut at every count at once
(:func:`cut_all`).

Variants (``shared/specs/centernet_grouping.md``):

* plain: linkage ``'average'`` on the distances;
* with restrictions: the distance of two keypoints of the same category is
  replaced by a penalty larger than any linkage value of allowed pairs
  (:func:`restrict_distances`), so they merge only after every allowed
  merge;
* anti-offsets: linkage ``'complete'`` on the *negated* distances, so far
  apart keypoints share a group (:func:`build_linkage` with ``anti=True``).
"""
from typing import Optional, Sequence

import numpy as np
from scipy.cluster.hierarchy import cophenet, linkage
from scipy.spatial.distance import squareform

__all__ = [
    'LINKAGES', 'check_distances', 'restrict_distances', 'build_linkage',
    'merge_levels', 'cut_all', 'cut', 'cluster_keypoints'
]

#: Linkages accepted (those defined on an arbitrary distance matrix).
LINKAGES = ('average', 'complete', 'single', 'weighted')


def check_distances(distances) -> np.ndarray:
    """Validate a square distance matrix; return it as float64.

    Raises:
        ValueError: not square ``(K, K)`` with ``K >= 2``, not symmetric,
            non-zero diagonal, or NaN / inf entries.
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] < 2:
        raise ValueError('distances must be a square (K, K) matrix with '
                         f'K >= 2, got shape {d.shape}')
    if not np.isfinite(d).all():
        raise ValueError('distances contain NaN or inf')
    if not np.allclose(d, d.T, rtol=1e-10, atol=1e-12):
        raise ValueError('distances must be symmetric')
    if np.any(np.diag(d) != 0):
        raise ValueError('distances must have a zero diagonal')
    return d


def restrict_distances(distances, categories: Sequence[int]) -> np.ndarray:
    """Distances with every same-category pair set to a penalty.

    The penalty is ``(max|d| + 1) * K**2``: an average (or complete, single,
    weighted) linkage value between two clusters that contain a
    same-category pair is at least ``penalty / K**2 > max|d|``, above every
    value between clusters without one, so such merges come last.

    Args:
        distances: ``(K, K)`` matrix (may be negative, as for anti-offsets).
        categories: ``(K,)`` category index per keypoint; ``-1`` = no
            category (never restricted).
    """
    d = check_distances(distances)
    cat = _check_categories(categories, len(d))
    same = (cat[:, None] == cat[None, :]) & (cat >= 0)[:, None]
    np.fill_diagonal(same, False)
    penalty = (np.abs(d).max() + 1.0) * len(d)**2
    return np.where(same, penalty, d)


def _check_categories(categories, k: int) -> np.ndarray:
    cat = np.asarray(categories)
    if cat.shape != (k, ) or not np.issubdtype(cat.dtype, np.integer):
        raise ValueError(f'categories must be {k} integers (one per '
                         f'keypoint), got {cat.dtype} array of shape '
                         f'{cat.shape}')
    return cat.astype(np.int64)


def build_linkage(distances,
                  method: str = 'average',
                  categories: Optional[Sequence[int]] = None,
                  anti: bool = False) -> np.ndarray:
    """The scipy linkage matrix ``Z`` (``(K - 1, 4)``) of the keypoints.

    Args:
        distances: ``(K, K)`` distance matrix.
        method (str): one of :data:`LINKAGES`; anti-offsets use
            ``'complete'``.
        categories (sequence of int, optional): per-keypoint category; when
            given, same-category pairs are restricted
            (:func:`restrict_distances`), applied after the negation.
        anti (bool): cluster the negated distances (anti-offsets).
    """
    if method not in LINKAGES:
        raise ValueError(f'linkage must be one of {LINKAGES}, got {method!r}')
    d = check_distances(distances)
    if anti:
        d = -d
    if categories is not None:
        d = restrict_distances(d, categories)
    return linkage(squareform(d, checks=False), method=method)


def merge_levels(Z: np.ndarray) -> np.ndarray:
    """``L[i, j]`` = number of clusters right after keypoints ``i`` and
    ``j`` first share a cluster (``i`` and ``j`` are together in every cut
    with ``n <= L[i, j]`` clusters); ``L[i, i] = K``. ``(K, K)`` int64.

    scipy's ``cophenet`` finds the merge of each pair (lowest common
    ancestor) in C; giving it the merge step ``0..K-2`` as heights turns the
    cophenetic value into that step, and step ``s`` leaves ``K - 1 - s``
    clusters.
    """
    Z = np.asarray(Z, dtype=np.float64)
    k = len(Z) + 1
    steps = Z.copy()
    steps[:, 2] = np.arange(k - 1)
    levels = (k - 1) - squareform(cophenet(steps)).astype(np.int64)
    np.fill_diagonal(levels, k)
    return levels


def cut_all(Z: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Cluster labels of the dendrogram cut at every count.

    Args:
        Z: scipy linkage of ``K`` keypoints.
        counts: cluster counts in ``[1, K]``.

    Returns:
        ``(len(counts), K)`` int64; row ``i`` has exactly ``counts[i]``
        groups numbered ``0..counts[i]-1`` in order of their first keypoint.
    """
    levels = merge_levels(Z)
    k = len(levels)
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    if counts.size == 0 or counts.min() < 1 or counts.max() > k:
        raise ValueError(f'cluster counts must lie in [1, {k}], got '
                         f'{counts.tolist()[:10]}')
    together = levels[None] >= counts[:, None, None]  # (n, K, K)
    # Label of k = the smallest keypoint index in its cluster ...
    first = together.argmax(2)
    # ... renumbered consecutively: the rank of that keypoint among the
    # clusters' first keypoints.
    is_first = first == np.arange(k)
    rank = np.cumsum(is_first, axis=1) - 1
    return np.take_along_axis(rank, first, axis=1)


def cut(Z: np.ndarray, num_clusters: int) -> np.ndarray:
    """Labels ``(K,)`` of the cut with exactly ``num_clusters`` clusters."""
    return cut_all(Z, [num_clusters])[0]


def cluster_keypoints(distances,
                      num_clusters: int,
                      method: str = 'average',
                      categories: Optional[Sequence[int]] = None,
                      anti: bool = False) -> np.ndarray:
    """Group labels ``(K,)`` (``0..num_clusters-1``) of one head.

    With ``categories`` (restrictions) the result never puts two keypoints
    of one category in one group; asking for fewer clusters than the
    restricted dendrogram allows raises.

    Raises:
        ValueError: bad distances / linkage / count, or a count below the
            smallest restricted one (the message gives that minimum).
    """
    Z = build_linkage(distances, method, categories, anti)
    k = len(Z) + 1
    if not 1 <= int(num_clusters) <= k:
        raise ValueError(f'num_clusters must lie in [1, {k}], got '
                         f'{num_clusters}')
    labels = cut(Z, int(num_clusters))
    if categories is not None:
        from .decodability import inconsistent_counts
        counts = inconsistent_counts(Z, categories)
        if counts[int(num_clusters)] > 0:
            minimum = int(np.flatnonzero(counts == 0).min())
            largest = int(np.bincount(
                np.asarray(categories)[np.asarray(categories) >= 0]).max())
            raise ValueError(
                f'with restrictions {num_clusters} clusters would merge '
                f'{int(counts[int(num_clusters)])} same-category pairs; this '
                f'dendrogram needs at least {minimum} clusters (the largest '
                f'category has {largest} keypoints)')
    return labels

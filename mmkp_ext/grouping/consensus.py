"""Consensus between groupings: Adjusted Rand Index (scikit-learn).

Two groupings of the same keypoints (e.g. clustered from the weights of two
checkpoints trained with different seeds) agree when their ARI is near 1;
the paper picks the number of clusters where such independent runs agree
(:func:`ari_curve`, :func:`best_consensus_count`).
"""
from typing import Sequence

import numpy as np
from sklearn.metrics import adjusted_rand_score

from .clustering import cut_all

__all__ = ['adjusted_rand_index', 'ari_curve', 'best_consensus_count']


def adjusted_rand_index(labels_a: Sequence[int],
                        labels_b: Sequence[int]) -> float:
    """ARI of two labelings of the same ``K`` keypoints (1 = identical
    partitions, ~0 = chance agreement)."""
    a, b = np.asarray(labels_a), np.asarray(labels_b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError('the two groupings must be 1-D and of equal length, '
                         f'got shapes {a.shape} and {b.shape}')
    return float(adjusted_rand_score(a, b))


def ari_curve(Z_a: np.ndarray, Z_b: np.ndarray,
              counts: Sequence[int]) -> np.ndarray:
    """ARI between the cuts of two dendrograms at each cluster count.

    Args:
        Z_a, Z_b: scipy linkages of the same ``K`` keypoints.
        counts: cluster counts in ``[1, K]``.

    Returns:
        ``(len(counts),)`` float64.
    """
    if len(Z_a) != len(Z_b):
        raise ValueError(f'the dendrograms have {len(Z_a) + 1} and '
                         f'{len(Z_b) + 1} keypoints')
    cuts_a, cuts_b = cut_all(Z_a, counts), cut_all(Z_b, counts)
    # One sklearn call per count (a few hundred at most).
    return np.array(
        [adjusted_rand_score(a, b) for a, b in zip(cuts_a, cuts_b)])


def best_consensus_count(ari: Sequence[float], counts: Sequence[int]) -> int:
    """The count with the highest ARI (the smallest such count on ties)."""
    ari, counts = np.asarray(ari, dtype=np.float64), np.asarray(counts)
    if ari.shape != counts.shape or ari.size == 0:
        raise ValueError('ari and counts must be non-empty and of equal '
                         'length')
    best = np.flatnonzero(ari == ari.max())
    return int(counts[best].min())

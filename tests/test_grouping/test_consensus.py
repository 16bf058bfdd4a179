"""Adjusted Rand Index between groupings (``mmkp_ext.grouping.consensus``)
against scikit-learn and a hand computation."""
from math import comb

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist
from sklearn.metrics import adjusted_rand_score

from mmkp_ext.grouping import (adjusted_rand_index, ari_curve,
                               best_consensus_count, build_linkage,
                               euclidean_distances)


def test_ari_equals_sklearn_and_hand_formula():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.integers(0, 5, 30), rng.integers(0, 7, 30)
        assert adjusted_rand_index(a, b) == adjusted_rand_score(a, b)
    # Hand: a = [0,0,1,1], b = [0,0,0,1]. Contingency [[2,0],[1,1]]:
    # sum C(n_ij,2) = 1, rows C(2,2)+C(2,2) = 2, cols C(3,2)+C(1,2) = 3,
    # expected = 2*3/C(4,2) = 1, max = (2+3)/2 = 2.5 -> ARI = 0/1.5 = 0.
    index = comb(2, 2)
    expected = (comb(2, 2) + comb(2, 2)) * (comb(3, 2) + comb(1, 2)) / comb(
        4, 2)
    maximum = ((comb(2, 2) + comb(2, 2)) + (comb(3, 2) + comb(1, 2))) / 2
    assert adjusted_rand_index([0, 0, 1, 1], [0, 0, 0, 1]) == (
        index - expected) / (maximum - expected)
    # Hand: a = [0,0,1,1], b = [0,1,0,1]: no pair together in both,
    # expected 2*2/6, max 2 -> ARI = (0 - 2/3) / (2 - 2/3) = -0.5.
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(
        -0.5)
    # Relabelled identical partitions agree fully.
    assert adjusted_rand_index([0, 0, 1, 2], [5, 5, 3, 1]) == 1.0
    with pytest.raises(ValueError, match='equal length'):
        adjusted_rand_index([0, 1], [0, 1, 2])


def test_ari_curve_equals_fcluster_plus_sklearn():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 4))
    y = x + 0.3 * rng.normal(size=x.shape)  # a "second checkpoint"
    z_a = build_linkage(euclidean_distances(x))
    z_b = build_linkage(euclidean_distances(y))
    counts = np.arange(2, 21)
    curve = ari_curve(z_a, z_b, counts)
    ref_a, ref_b = linkage(pdist(x), 'average'), linkage(pdist(y), 'average')
    want = [adjusted_rand_score(fcluster(ref_a, n, 'maxclust'),
                                fcluster(ref_b, n, 'maxclust'))
            for n in counts]
    np.testing.assert_allclose(curve, want, rtol=0, atol=1e-12)
    assert curve[-1] == 1.0  # both all singletons
    best = best_consensus_count(curve, counts)
    assert curve[counts == best][0] == curve.max()
    assert best_consensus_count([0.5, 0.9, 0.9], [3, 4, 5]) == 4  # tie

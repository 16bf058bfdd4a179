"""Matrix of ambiguous decoding, inconsistent-pair counts and the minimal
decodable grouping (``mmkp_ext.grouping.decodability``) on a hand-worked
example and against a brute-force count over cuts."""
import numpy as np
import pytest

from mmkp_ext.grouping import (ambiguity_matrix, build_linkage, cut,
                               decodable_frontier, euclidean_distances,
                               inconsistent_counts, inconsistent_pairs,
                               keypoint_categories, minimal_decodable,
                               same_category_pairs, undecodable_pairs)

# Keypoints a0, a1 (category 0) and b0, b1 (category 1), 1-D features.
CAT = np.array([0, 0, 1, 1])
RANGES = [(0, 1), (2, 3)]
# Regression: a0=0, a1=1, b0=5, b1=7 -> merges (a0,a1) at 3 clusters,
# (b0,b1) at 2 clusters, everything at 1.
REG = euclidean_distances(np.array([[0.], [1.], [5.], [7.]]))
# Heatmap: a0=0, b0=1, a1=5, b1=7 -> (a0,b0) at 3, (a1,b1) at 2, all at 1.
HM = euclidean_distances(np.array([[0.], [5.], [1.], [7.]]))


def test_hand_worked_example():
    z_reg, z_hm = build_linkage(REG), build_linkage(HM)
    # Cuts as worked out above.
    assert cut(z_reg, 3).tolist() == [0, 0, 1, 2]
    assert cut(z_reg, 2).tolist() == [0, 0, 1, 1]
    assert cut(z_hm, 2).tolist() == [0, 1, 0, 1]
    # Same-category pairs merged per head, indexed by cluster count n:
    # reg: n=4: none, n=3: (a0,a1), n<=2: both pairs; hm: only at n=1.
    assert inconsistent_counts(z_reg, CAT)[1:].tolist() == [2, 2, 1, 0]
    assert inconsistent_counts(z_hm, CAT)[1:].tolist() == [2, 0, 0, 0]
    assert inconsistent_pairs(cut(z_reg, 3), RANGES) == [(0, 1)]
    assert inconsistent_pairs(cut(z_reg, 2), RANGES) == [(0, 1), (2, 3)]
    # (a0,a1) ambiguous iff n_reg <= 3 and n_hm <= 1; (b0,b1) iff
    # n_reg <= 2 and n_hm <= 1.
    amb, rc, hc = ambiguity_matrix(z_reg, z_hm, CAT)
    assert rc.tolist() == hc.tolist() == [1, 2, 3, 4]
    want = np.zeros((4, 4), int)
    want[:, 0] = [2, 2, 1, 0]
    np.testing.assert_array_equal(amb, want)
    # Fewest channels 2 n_reg + n_hm among zeros: (1, 2) costs 4.
    assert minimal_decodable(amb, rc, hc) == (1, 2)
    assert decodable_frontier(amb, rc, hc).tolist() == [2, 2, 2, 1]
    # Sub-ranges select rows / columns.
    sub, rc2, hc2 = ambiguity_matrix(z_reg, z_hm, CAT, [3, 4], [1])
    assert sub.tolist() == [[1], [0]]


def test_matrix_matches_brute_force_over_cuts():
    rng = np.random.default_rng(0)
    k = 16
    ranges = [(0, 4), (5, 9), (10, 15)]
    cat = keypoint_categories(ranges, k)
    z_reg = build_linkage(euclidean_distances(rng.normal(size=(k, 3))))
    z_hm = build_linkage(euclidean_distances(rng.normal(size=(k, 3))),
                         'complete', anti=True)
    counts = np.arange(3, k + 1)
    amb, _, _ = ambiguity_matrix(z_reg, z_hm, cat, counts, counts)
    for a, nr in enumerate(counts):
        for b, nh in enumerate(counts):
            pairs = undecodable_pairs(cut(z_reg, nr), cut(z_hm, nh), ranges)
            assert amb[a, b] == len(pairs)
    per_head = inconsistent_counts(z_reg, cat)
    for n in counts:
        assert per_head[n] == len(inconsistent_pairs(cut(z_reg, n), ranges))


def test_categories_and_pairs():
    cat = keypoint_categories('toy_fashion', 32)
    assert cat.min() == 0 and cat.max() == 2
    cat = keypoint_categories([(1, 2)], 4)
    assert cat.tolist() == [-1, 0, 0, -1]
    pairs = same_category_pairs(np.array([0, 0, -1, -1, 1]))
    assert np.argwhere(pairs).tolist() == [[0, 1]]  # -1 pairs with nothing


def test_errors():
    z = build_linkage(REG)
    with pytest.raises(ValueError, match='categories has 3 entries'):
        inconsistent_counts(z, [0, 0, 1])
    z5 = build_linkage(euclidean_distances(np.arange(5.)[:, None]))
    with pytest.raises(ValueError, match='4 keypoints but the heatmap one 5'):
        ambiguity_matrix(z, z5, CAT)
    with pytest.raises(ValueError, match='reg_counts'):
        ambiguity_matrix(z, z, CAT, [0, 2])
    with pytest.raises(ValueError, match='no .* decodable'):
        minimal_decodable(np.ones((2, 2)), [1, 2], [1, 2])

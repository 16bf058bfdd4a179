"""Agglomerative clustering of keypoint types (``mmkp_ext.grouping.
clustering``): cuts equal scipy's ``linkage`` + ``fcluster``, merge levels
equal a brute-force search over cuts, restrictions never merge
same-category keypoints."""
import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist, squareform

from mmkp_ext.grouping import (build_linkage, check_distances,
                               cluster_keypoints, cut, cut_all,
                               euclidean_distances, inconsistent_counts,
                               merge_levels, restrict_distances)


def same_partition(a, b):
    """Partitions equal iff the label pairs map one-to-one."""
    a, b = np.asarray(a), np.asarray(b)
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def random_distances(rng, k, dim=3):
    return squareform(pdist(rng.normal(size=(k, dim))))


@pytest.mark.parametrize('method', ['average', 'complete', 'single',
                                    'weighted'])
def test_cuts_equal_scipy_fcluster(method):
    rng = np.random.default_rng(0)
    for _ in range(5):
        d = random_distances(rng, 23)  # continuous: no tied heights
        Z = build_linkage(d, method)
        ref = linkage(squareform(d), method=method)
        np.testing.assert_array_equal(Z, ref)
        cuts = cut_all(Z, np.arange(1, 24))
        for n, labels in zip(range(1, 24), cuts):
            want = fcluster(ref, n, criterion='maxclust')
            assert len(set(want.tolist())) == n
            assert same_partition(labels, want), (method, n)
            np.testing.assert_array_equal(labels, cut(Z, n))


def test_anti_offsets_is_complete_linkage_of_negated_distances():
    rng = np.random.default_rng(1)
    d = random_distances(rng, 12, dim=2)
    Z = build_linkage(d, 'complete', anti=True)
    ref = linkage(squareform(-d, checks=False), method='complete')
    np.testing.assert_array_equal(Z, ref)
    # fcluster refuses negative heights; a constant shift keeps the tree.
    shifted = ref.copy()
    shifted[:, 2] -= ref[:, 2].min()
    for n in (2, 5, 9):
        assert same_partition(cut(Z, n), fcluster(shifted, n, 'maxclust'))
    # The farthest pair merges first.
    i, j = np.unravel_index(d.argmax(), d.shape)
    assert sorted(Z[0, :2].astype(int).tolist()) == sorted([i, j])


def test_labels_are_numbered_by_first_keypoint_and_count_is_exact():
    # All distances equal: every merge height ties. fcluster('maxclust')
    # then returns one cluster for any t < K; the step cut keeps the count.
    d = np.ones((6, 6)) - np.eye(6)
    Z = build_linkage(d)
    assert len(set(fcluster(Z, 3, 'maxclust').tolist())) < 3
    for n in range(1, 7):
        labels = cut(Z, n)
        assert labels.max() + 1 == n
        first = [int(np.flatnonzero(labels == g)[0]) for g in range(n)]
        assert first == sorted(first)  # group g appears before group g+1


def test_merge_levels_match_brute_force_over_cuts():
    rng = np.random.default_rng(2)
    d = random_distances(rng, 15)
    Z = build_linkage(d)
    levels = merge_levels(Z)
    cuts = cut_all(Z, np.arange(1, 16))  # row n-1 = cut with n clusters
    for i in range(15):
        for j in range(15):
            together = [n for n in range(1, 16)
                        if cuts[n - 1, i] == cuts[n - 1, j]]
            assert levels[i, j] == max(together)
            # Together exactly for n <= L.
            assert together == list(range(1, levels[i, j] + 1))


def test_restrictions_never_merge_same_category_pairs():
    """Property test over many random layouts and distances (with ties)."""
    rng = np.random.default_rng(3)
    for trial in range(150):
        k = int(rng.integers(4, 30))
        num_cat = int(rng.integers(1, 6))
        cat = rng.integers(-1, num_cat, size=k)  # -1: no category
        if trial % 3 == 0:  # many ties
            d = squareform(pdist(rng.integers(0, 3, size=(k, 2)).astype(
                float)))
        else:
            d = random_distances(rng, k)
        anti = trial % 4 == 1
        method = 'complete' if anti else ['average', 'single', 'weighted'][
            trial % 3]
        Z = build_linkage(d, method, categories=cat, anti=anti)
        counts = np.arange(1, k + 1)
        labels = cut_all(Z, counts)
        same_cat = (cat[:, None] == cat[None, :]) & (cat >= 0)[:, None]
        np.fill_diagonal(same_cat, False)
        merged = labels[:, :, None] == labels[:, None, :]  # (n, K, K)
        bad = (merged & same_cat).any((1, 2))
        # The smallest clean count is at least the largest category size;
        # every count from it up is clean.
        lowest = int(counts[~bad].min())
        largest = np.bincount(cat[cat >= 0]).max() if (cat >= 0).any() else 1
        assert lowest >= largest
        assert not bad[lowest - 1:].any()
        assert (inconsistent_counts(Z, cat)[1:] > 0).tolist() == bad.tolist()
        if lowest > 1:
            with pytest.raises(ValueError, match=f'at least {lowest}'):
                cluster_keypoints(d, lowest - 1, method, cat, anti)
        out = cluster_keypoints(d, lowest, method, cat, anti)
        assert out.max() + 1 == lowest


def test_restrict_distances_penalty():
    d = euclidean_distances(np.array([[0.], [1.], [3.], [7.]]))
    r = restrict_distances(d, np.array([0, 0, 1, -1]))
    assert r[0, 1] == r[1, 0] == (7 + 1) * 16
    mask = np.ones((4, 4), bool)
    mask[0, 1] = mask[1, 0] = False
    np.testing.assert_array_equal(r[mask], d[mask])  # others unchanged
    # Average linkage on the restricted matrix merges 0 and 1 last.
    assert cut(build_linkage(d, categories=[0, 0, 1, -1]), 2)[0] != \
        cut(build_linkage(d, categories=[0, 0, 1, -1]), 2)[1]


def test_bad_inputs_raise():
    d = np.ones((3, 3)) - np.eye(3)
    with pytest.raises(ValueError, match='square'):
        check_distances(np.ones((3, 2)))
    with pytest.raises(ValueError, match='symmetric'):
        check_distances(d + np.triu(np.ones((3, 3)), 1))
    with pytest.raises(ValueError, match='diagonal'):
        check_distances(d + np.eye(3))
    with pytest.raises(ValueError, match='NaN'):
        check_distances(np.where(d == 1, np.nan, 0))
    with pytest.raises(ValueError, match='linkage'):
        build_linkage(d, 'ward-ish')
    with pytest.raises(ValueError, match='3 integers'):
        restrict_distances(d, [0, 1])
    with pytest.raises(ValueError, match=r'\[1, 3\]'):
        cut(build_linkage(d), 4)

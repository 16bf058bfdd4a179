"""Member-mean rows of a grouped last convolution
(``mmkp_ext.grouping.head_rows``)."""
import numpy as np
import pytest

from mmkp_ext.grouping import group_rows, mean_matrix


def test_mean_matrix():
    m = mean_matrix([0, 1, 0, 0])
    np.testing.assert_allclose(m, [[1 / 3, 0, 1 / 3, 1 / 3], [0, 1, 0, 0]])


@pytest.mark.parametrize('kind', ['reg', 'hm'])
def test_group_rows_are_member_means(kind):
    rng = np.random.default_rng(0)
    group = [2, 0, 1, 0, 2, 2]
    k, per = len(group), 2 if kind == 'reg' else 1
    w = rng.normal(size=(per * k, 5, 1, 1)).astype(np.float32)
    b = rng.normal(size=per * k).astype(np.float32)
    gw, gb = group_rows(w, b, group, kind)
    assert gw.dtype == np.float32 and gw.shape == (per * 3, 5, 1, 1)
    for g in range(3):
        members = [kp for kp in range(k) if group[kp] == g]
        for c in range(per):  # x rows (2k) and y rows (2k+1) separately
            rows = [per * kp + c for kp in members]
            want_w = w[rows].astype(np.float64).mean(0).astype(np.float32)
            want_b = np.float32(b[rows].astype(np.float64).mean())
            np.testing.assert_array_equal(gw[per * g + c], want_w)
            assert gb[per * g + c] == want_b


def test_group_rows_errors():
    w = np.zeros((8, 2))
    with pytest.raises(ValueError, match='8 output rows but the grouping is '
                       'for 3 keypoints'):
        group_rows(w, None, [0, 1, 0], 'reg')
    with pytest.raises(ValueError, match='bias'):
        group_rows(w, np.zeros(7), [0, 1, 0, 1], 'reg')
    with pytest.raises(ValueError, match='empty'):
        group_rows(w, None, [0, 2, 2, 2, 0, 0, 0, 0], 'hm')

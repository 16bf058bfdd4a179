"""mmkp_ext.utils.validation: hand-picked good and bad values."""
import pytest

from mmkp_ext.utils.validation import (check_int, check_int_seq, check_real,
                                       check_size)


def test_check_int():
    assert check_int('n', 3) == 3 and type(check_int('n', 3)) is int
    assert check_int('n', 0, minimum=0) == 0
    assert check_int('n', -5, minimum=None) == -5
    for bad in (0, True, 1.0, '2', None):
        with pytest.raises(ValueError, match=r'n must be an int >= 1, got'):
            check_int('n', bad)


def test_check_real():
    assert check_real('s', 2) == 2.0
    assert check_real('p', 0.0, 0, 1) == 0.0
    with pytest.raises(ValueError, match=r'p must be a finite number in '
                       r'\(0, 1\], got 0'):
        check_real('p', 0, 0, 1, low_open=True)
    for bad in (float('nan'), float('inf'), True, '1'):
        with pytest.raises(ValueError, match=r'\(-inf, inf\)'):
            check_real('x', bad)
    with pytest.raises(ValueError, match=r'\[0, 1\)'):
        check_real('x', 1.0, 0, 1, high_open=True)


def test_check_int_seq_and_size():
    assert check_int_seq('c', [1, 2], 2) == (1, 2)
    with pytest.raises(TypeError, match='sequence'):
        check_int_seq('c', '12')
    with pytest.raises(ValueError, match='2 entries, got 3'):
        check_int_seq('c', [1, 2, 3], 2)
    with pytest.raises(ValueError, match=r'entries must be ints >= 1'):
        check_int_seq('c', [1, 0])
    assert check_size('input_size', [192, 256]) == (192, 256)
    for bad in ((1, ), (0, 2), (1.5, 2), 'ab'):
        with pytest.raises(ValueError, match='width, height'):
            check_size('input_size', bad)

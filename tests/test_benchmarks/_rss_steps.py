"""Steps for test_harness's ``peak_rss_in_subprocess`` tests, in a module of
their own so that the spawned child imports only numpy to unpickle them."""
import numpy as np


def prepare_ones(n, touch):
    """A step that allocates ``n`` float64 values and writes them (only an
    empty array when not ``touch``); returns their sum."""

    def step():
        arr = np.ones(n) if touch else np.empty(0)
        return float(arr.sum())

    return step


def prepare_fails():
    raise ValueError('broken prepare')

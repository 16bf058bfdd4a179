"""mmkp_ext.grouping.layout: the shared layout resolution (numpy only)."""
import os.path as osp
import subprocess
import sys

import numpy as np
from _helpers import REPO_ROOT

from mmkp_ext.datasets.toy.fashion import FASHION_CATEGORIES
from mmkp_ext.grouping.layout import (TOY_FASHION_CATEGORY_RANGES,
                                      class_channel_matrix,
                                      get_category_keypoint_ranges,
                                      output_channels)


def test_toy_fashion_ranges_match_the_generator():
    cats = sorted(FASHION_CATEGORIES, key=lambda c: c['id'])
    want = [(c['start'], c['start'] + c['num_keypoints'] - 1) for c in cats]
    assert list(TOY_FASHION_CATEGORY_RANGES) == want
    assert get_category_keypoint_ranges('toy_fashion') == want


def test_class_channel_matrix_hand_worked():
    # classes own keypoints 0-1 and 2-4; groups: {0, 2}, {1}, {3, 4}
    m = class_channel_matrix([(0, 1), (2, 4)], [0, 1, 0, 2, 2])
    np.testing.assert_array_equal(m, [[True, True, False],
                                      [True, False, True]])
    assert output_channels(2, 4, 3) == dict(
        center_heatmap=2, center_offset=2, box_size=2, keypoint_reg=8,
        keypoint_heatmap=3, keypoint_offset=2)


def test_layout_imports_neither_torch_nor_datasets():
    """grouping/ is numpy / scipy only: its layout module loads without
    torch, mmpose or mmkp_ext.datasets. (``import mmkp_ext.grouping`` would
    run mmkp_ext/__init__, which imports everything; a bare package object
    stands in for it.)"""
    root = osp.join(REPO_ROOT, 'mmkp_ext')
    code = ('import sys, types; '
            f'pkg = types.ModuleType("mmkp_ext"); pkg.__path__ = [{root!r}]; '
            'sys.modules["mmkp_ext"] = pkg; '
            'import mmkp_ext.grouping.layout; '
            'print(sorted(m for m in ("torch", "mmkp_ext.datasets", '
            '"mmpose") if m in sys.modules))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == '[]'

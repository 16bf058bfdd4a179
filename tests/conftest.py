"""pytest fixtures shared by the suite."""
import os

import pytest
from _helpers import REPO_ROOT

if os.environ.get('PYTEST_XDIST_WORKER'):
    # Under pytest-xdist (`make test` runs one worker per core) every worker
    # and the training subprocesses it starts get one thread, so workers do
    # not oversubscribe the cores.
    os.environ['OMP_NUM_THREADS'] = '1'
    os.environ['MKL_NUM_THREADS'] = '1'
    import torch
    torch.set_num_threads(1)

# Import mmkp_ext (after the thread settings above) before any test module
# is collected: it applies the compat fixes of mmkp_ext.compat that let
# ``mmpose.models`` import on mmcv-lite (no compiled ops). pytest imports
# conftest.py before the test modules, so a test file that imports
# ``mmpose.models`` ahead of ``mmkp_ext`` collects the same alone as in the
# suite (where some earlier file happened to import mmkp_ext first).
import mmkp_ext  # noqa: E402,F401


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT

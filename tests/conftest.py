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


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT

"""pytest fixtures shared by the suite."""
import pytest
from _helpers import REPO_ROOT


@pytest.fixture(scope='session')
def repo_root():
    return REPO_ROOT

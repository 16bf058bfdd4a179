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


@pytest.fixture(scope='session')
def toy_dataset(tmp_path_factory):
    """Factory of generated toy datasets shared by the whole session:
    ``toy_dataset(kind, image_size, num_images, seed=0)`` writes (once per
    argument tuple) a :func:`mmkp_ext.datasets.make_toy_dataset` set with
    every image in the train split and returns its summary dict (paths,
    counts). The learning tests fit models to these images."""
    from mmkp_ext.datasets import make_toy_dataset
    made = {}

    def make(kind, image_size, num_images, seed=0):
        key = (kind, image_size, num_images, seed)
        if key not in made:
            root = tmp_path_factory.mktemp(
                f'toy_{kind}_{image_size}px_{num_images}_s{seed}')
            made[key] = make_toy_dataset(
                kind, str(root), num_images=num_images, seed=seed,
                val_fraction=0.0, image_size=image_size)
        return made[key]

    return make


def pytest_collection_finish(session):
    """Move everything imported so far (torch, mmengine, mmpose, mmkp_ext,
    the collected test modules: never garbage) to the garbage collector's
    permanent generation. Collections during the tests then walk only
    what the tests make; mmengine's BaseDataset runs ``gc.collect()`` for
    every dataset it builds, and over the whole imported heap that cost
    0.1-0.3 s each time."""
    import gc
    gc.collect()
    gc.freeze()

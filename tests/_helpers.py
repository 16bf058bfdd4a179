"""Helpers shared by the tests: repository paths, the real-data folder,
subprocess runs, dataset checks. Importable as ``_helpers`` (pytest.ini
puts tests/ on the path)."""
import json
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def shared_data_dir():
    """``$MMKP_SHARED_DATA`` or ``../shared/data`` beside the checkout."""
    return os.environ.get('MMKP_SHARED_DATA',
                          osp.join(osp.dirname(REPO_ROOT), 'shared', 'data'))


def run_python(args, cwd=REPO_ROOT, env=None, timeout=600, check=True):
    """Run ``python ARGS`` in a subprocess; return the CompletedProcess with
    stdout and stderr merged into ``.stdout``."""
    full_env = dict(os.environ)
    full_env.setdefault('PYTHONWARNINGS', 'ignore')
    full_env['OMP_NUM_THREADS'] = full_env.get('OMP_NUM_THREADS', '2')
    if env:
        full_env.update(env)
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=full_env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f'python {" ".join(args)} failed '
                             f'({proc.returncode}):\n{proc.stdout[-6000:]}')
    return proc


def load_json(path):
    with open(path) as f:
        return json.load(f)


def check_coco_keypoint_split(coco, img_dir, num_keypoints):
    """Assert that one split of a generated COCO keypoint dataset is valid:
    images load with their declared size; per annotation K keypoints with
    v in {0, 1, 2}, v=2 inside the image, v=0 at (0, 0), ``num_keypoints``
    = count of v > 0 (>= 3), a box inside the image covering every labelled
    keypoint (+-1 px) and 0 < area <= box area. Returns the keypoint arrays
    (N, K, 3)."""
    images = {img['id']: img for img in coco['images']}
    assert len(images) == len(coco['images'])
    for img in coco['images']:
        arr = cv2.imread(osp.join(img_dir, img['file_name']))
        assert arr is not None
        assert arr.shape == (img['height'], img['width'], 3)
    all_kpts = []
    for ann in coco['annotations']:
        img = images[ann['image_id']]
        w, h = img['width'], img['height']
        kpts = np.array(ann['keypoints'], dtype=np.float64).reshape(-1, 3)
        assert kpts.shape == (num_keypoints, 3)
        x, y, v = kpts.T
        assert set(np.unique(v)) <= {0.0, 1.0, 2.0}
        vis = v == 2
        assert np.all((x[vis] >= 0) & (x[vis] <= w - 1))
        assert np.all((y[vis] >= 0) & (y[vis] <= h - 1))
        assert np.all(x[v == 0] == 0) and np.all(y[v == 0] == 0)
        labelled = v > 0
        assert ann['num_keypoints'] == int(labelled.sum())
        assert ann['num_keypoints'] >= 3
        bx, by, bw, bh = ann['bbox']
        assert bw > 0 and bh > 0
        assert bx >= 0 and by >= 0 and bx + bw <= w and by + bh <= h
        assert np.all(x[labelled] >= bx - 1)
        assert np.all(x[labelled] <= bx + bw + 1)
        assert np.all(y[labelled] >= by - 1)
        assert np.all(y[labelled] <= by + bh + 1)
        assert 0 < ann['area'] <= bw * bh
        assert ann['iscrowd'] == 0
        all_kpts.append(kpts)
    return np.array(all_kpts)


def randomise_(model, seed=0):
    """Random weights and batch-norm statistics in place (eval outputs then
    depend on every tensor); returns ``model``."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith('num_batches_tracked'):
                continue
            if name.endswith('running_var'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.3)
    return model


def load_tool(relpath):
    """Import the CLI ``tools/<relpath>`` (e.g.
    ``'model_converters/init_grouped_head.py'``) as a module, so tests can
    call its ``main`` / ``parse_args`` in-process."""
    import importlib.util
    path = osp.join(REPO_ROOT, 'tools', relpath)
    name = 'tool_' + osp.splitext(relpath)[0].replace('/', '_')
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

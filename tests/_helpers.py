"""Helpers shared by the tests: repository paths, the real-data folder,
subprocess runs, dataset checks. Importable as ``_helpers`` (pytest.ini
puts tests/ on the path)."""
import functools
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


_TOOL_SERVER = None


@functools.lru_cache(maxsize=None)
def _tool_dirs():
    """Folders whose scripts ``run_python`` may fork from the tool server:
    the project's tools/ and benchmarks/, and the mmpose wheel's tools."""
    from mmkp_ext.utils import mmpose_tool_path
    return (osp.join(REPO_ROOT, 'tools') + os.sep,
            osp.join(REPO_ROOT, 'benchmarks') + os.sep,
            osp.dirname(mmpose_tool_path('train.py')) + os.sep)


def _forkable(args, cwd):
    if os.environ.get('MMKP_TEST_FRESH_PROCESSES') == '1' or not args:
        return False
    script = osp.abspath(osp.join(cwd, args[0]))
    return (script.endswith('.py') and osp.isfile(script)
            and script.startswith(_tool_dirs()))


def _tool_server():
    global _TOOL_SERVER
    if _TOOL_SERVER is None or not _TOOL_SERVER.alive():
        import atexit

        from _tool_server import ToolServer
        _TOOL_SERVER = ToolServer()
        atexit.register(_TOOL_SERVER.close)
    return _TOOL_SERVER


def run_python(args, cwd=REPO_ROOT, env=None, timeout=600, check=True,
               fresh=False):
    """Run ``python ARGS``; return a CompletedProcess with stdout and stderr
    merged into ``.stdout``.

    A project or mmpose tool script (``tools/...``, ``benchmarks/...``,
    mmpose's ``tools/train.py`` / ``test.py``) runs in a process forked from
    a warm tool server (``tests/_tool_server.py``: same script, argv, cwd
    and environment, without re-importing torch and mmpose); anything else,
    and every call with ``fresh=True`` or ``MMKP_TEST_FRESH_PROCESSES=1``,
    in a new interpreter."""
    full_env = dict(os.environ)
    full_env.setdefault('PYTHONWARNINGS', 'ignore')
    full_env['OMP_NUM_THREADS'] = full_env.get('OMP_NUM_THREADS', '2')
    if env:
        full_env.update(env)
    if not fresh and _forkable(args, cwd):
        import tempfile
        with tempfile.NamedTemporaryFile('r', suffix='.log',
                                         errors='replace') as out:
            code = _tool_server().run(args, cwd, full_env, out.name, timeout)
            proc = subprocess.CompletedProcess([sys.executable, *args],
                                               code, out.read())
    else:
        proc = subprocess.run([sys.executable, *args], cwd=cwd,
                              env=full_env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True,
                              timeout=timeout)
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

#: The metric names mmpose's CocoMetric reports (each behind its prefix,
#: ``coco/`` by default).
COCO_METRIC_NAMES = ('AP', 'AP .5', 'AP .75', 'AP (M)', 'AP (L)', 'AR',
                     'AR .5', 'AR .75', 'AR (M)', 'AR (L)')


def read_scalars(work_dir):
    """mmengine's ``vis_data/scalars.json`` of the one run in ``work_dir``
    (``<timestamp>/vis_data/scalars.json``): (training records, the other
    records), each a list of dicts in file order. Training records are
    those with an ``iter`` key (one per logged iteration); the others are
    the validation / test results."""
    import glob
    paths = sorted(
        glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json')))
    assert len(paths) == 1, f'expected one scalars.json, found {paths}'
    with open(paths[0]) as f:
        records = [json.loads(line) for line in f if line.strip()]
    train = [r for r in records if 'iter' in r]
    other = [r for r in records if 'iter' not in r]
    return train, other


def check_training_scalars(work_dir, iterations, loss_names):
    """The run logged (logger interval 1) exactly ``iterations`` training
    iterations, numbered 1..N, each with the total ``loss`` and every name
    in ``loss_names``, all finite. Returns the training records."""
    import math
    train, _ = read_scalars(work_dir)
    assert [r['iter'] for r in train] == list(range(1, iterations + 1)), \
        [r.get('iter') for r in train]
    for r in train:
        for name in ('loss', *loss_names):
            assert name in r, (name, r)
            assert math.isfinite(r[name]), (name, r)
    return train


def check_metric_names(record, prefix, extra=()):
    """``record`` (a validation / test result) holds CocoMetric's ten
    numbers under ``prefix`` (and the names in ``extra``), each in [0, 1]
    or -1 (no instances of that area range)."""
    for name in [f'{prefix}/{n}' for n in COCO_METRIC_NAMES] + list(extra):
        assert name in record, (name, sorted(record))
        assert record[name] == -1.0 or 0.0 <= record[name] <= 1.0, \
            (name, record[name])


def check_dumped_predictions(dump_path, ann_file, num_keypoints,
                             topdown_input_size=None, topdown_padding=1.25,
                             margin=2.0, bounded=True):
    """test.py's ``--dump`` pickle holds one prediction per image (per
    person for a top-down model) of ``ann_file``, with finite keypoints
    ``(N, K, 2)`` and scores ``(N, K)``. With ``bounded`` (a decoder whose
    outputs cannot leave its maps: heatmap argmax, soft-argmax) they are in
    the pixels of their original image: for a top-down model
    (``topdown_input_size`` = its ``(w, h)`` input) inside the crop of its
    person (+- ``margin`` px): the box grown by ``topdown_padding``
    (GetBBoxCenterScale) and widened to the input's aspect ratio
    (TopdownAffine), so they were mapped back through that crop, not left
    in input coordinates (the crop may reach past the image border); for a
    bottom-up model inside the image. Returns the dumped list."""
    import pickle
    with open(dump_path, 'rb') as f:
        dumped = pickle.load(f)
    coco = load_json(ann_file)
    sizes = {i['id']: (i['width'], i['height']) for i in coco['images']}
    assert {d['img_id'] for d in dumped} == set(sizes)
    if topdown_input_size is not None:
        assert len(dumped) == len(coco['annotations'])
    for d in dumped:
        kpts = np.asarray(d['pred_instances']['keypoints'], dtype=float)
        scores = np.asarray(d['pred_instances']['keypoint_scores'])
        assert kpts.ndim == 3 and kpts.shape[1:] == (num_keypoints, 2)
        assert scores.shape == kpts.shape[:2]
        assert np.isfinite(kpts).all()
        if not bounded:
            continue
        if topdown_input_size is None:
            w, h = sizes[d['img_id']]
            assert np.all(kpts >= -margin)
            assert np.all(kpts[..., 0] <= w + margin)
            assert np.all(kpts[..., 1] <= h + margin)
        else:
            x0, y0, x1, y1 = np.asarray(
                d['pred_instances']['bboxes'], dtype=float).reshape(-1, 4).T
            c = np.stack([(x0 + x1) / 2, (y0 + y1) / 2], -1)[:, None]
            sw = (x1 - x0) * topdown_padding
            sh = (y1 - y0) * topdown_padding
            aspect = topdown_input_size[0] / topdown_input_size[1]
            wide = sw > sh * aspect
            half = np.stack([np.where(wide, sw, sh * aspect),
                             np.where(wide, sw / aspect, sh)], -1) / 2
            assert np.all(np.abs(kpts - c) <= half[:, None] + margin), \
                d['img_id']
    return dumped


def toy_run_options(root, batch_size=None, ann='annotations/val.json'):
    """``--cfg-options`` for a stock ``train.py`` / ``test.py`` run on a
    generated toy dataset in ``root``: :func:`mmkp_ext.utils.toy_data_options`
    (every split's ``data_root``, the evaluators' ``ann_file``) plus loading
    in the main process (worker start-up costs more than the tiny images
    take to load) and, if given, the batch size of every split."""
    from mmkp_ext.utils import toy_data_options
    root = str(root).rstrip('/') + '/'
    opts = toy_data_options(root)
    if ann != 'annotations/val.json':
        opts = [o.replace('annotations/val.json', ann) for o in opts]
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.num_workers=0',
                 f'{split}_dataloader.persistent_workers=False']
        if batch_size is not None:
            opts.append(f'{split}_dataloader.batch_size={batch_size}')
    return opts

"""Cost of HRNet++'s test-time augmentation relative to one plain forward.

For a top-down config (default: the HRNet++-W32 256x192 heatmap model, built
with random weights, no checkpoint needed), the table gives the median wall
time of ``predict`` for a batch of crops, as a ratio to the plain
prediction without flip, measured side by side in one run (timings are
interleaved repeat by repeat, so machine load affects all rows alike):

- ``plain``: TopdownPoseEstimator, no flip,
- ``flip``: mmpose's flip test (two backbone forwards),
- ``tta5 x flip (batched)``: TopdownTTAPoseEstimator, 5 augmentations
  (scales 0.8 / 1.0 / 1.2, rotations -10 / +10) x flip = 10 crops per
  person in ONE backbone forward (what the configs run),
- ``tta5 x flip (loop)``: the same 10 crops as 5 separate flip-test
  predictions (one single-augmentation TTA model each), for comparison.

Also timed: ``warp_crops`` alone (building the 5 augmented crops with
``grid_sample``), the only extra work besides the 5x larger forward.

    python benchmarks/bench_tta.py [--config CFG] [--batch 1 8] [--repeats 5]
"""
import argparse
import copy
import statistics
import time

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import mmkp_ext  # noqa: F401
from mmkp_ext.models.pose_estimators.topdown_tta import (tta_augmentations,
                                                        warp_crops)
from mmpose.registry import MODELS
from mmpose.structures import PoseDataSample

DEFAULT_CONFIG = ('configs/hrnetpp/coco/'
                  'td-hm_hrnetpp-w32_8xb64-150e_coco-256x192.py')


def samples(n, w, h, k):
    out = []
    for _ in range(n):
        s = PoseDataSample(metainfo=dict(
            input_size=(w, h), input_center=np.array([w / 2, h / 2]),
            input_scale=np.array([w, h], dtype=np.float32),
            flip_indices=list(range(k))))
        s.gt_instances = InstanceData(
            bboxes=np.zeros((1, 4), np.float32),
            bbox_scores=np.ones(1, np.float32))
        out.append(s)
    return out


def build(model_cfg, state, **test_cfg):
    cfg = copy.deepcopy(model_cfg)
    cfg['backbone'].pop('init_cfg', None)
    if 'tta' in test_cfg:
        cfg['type'] = 'TopdownTTAPoseEstimator'
    cfg['test_cfg'] = dict(cfg.get('test_cfg', {}), **test_cfg)
    model = MODELS.build(cfg).eval()
    model.load_state_dict(state)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--batch', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args()

    init_default_scope('mmpose')
    torch.manual_seed(0)
    model_cfg = Config.fromfile(args.config).model.to_dict()
    model_cfg['backbone'].pop('init_cfg', None)
    ref = MODELS.build(copy.deepcopy(model_cfg)).eval()
    state = ref.state_dict()
    w, h = ref.head.decoder.input_size
    k = getattr(ref.head, 'out_channels', None) or ref.head.num_joints

    augs = tta_augmentations()
    models = {
        'plain': build(model_cfg, state, flip_test=False),
        'flip': build(model_cfg, state, flip_test=True),
        'tta5 x flip (batched)': build(model_cfg, state, flip_test=True,
                                       tta=dict()),
    }
    loop = [
        build(model_cfg, state, flip_test=True,
              tta=dict(scales=[s] if r == 0 else [],
                       rotations=[r] if r != 0 else [])) for s, r in augs
    ]

    print(f'config: {args.config} ({w}x{h}), {len(augs)} augmentations '
          f'{augs}, {torch.get_num_threads()} thread(s)')
    for batch in args.batch:
        x = torch.randn(batch, 3, h, w)
        smp = samples(batch, w, h, k)
        fns = {name: (lambda m=m: m.predict(x, smp))
               for name, m in models.items()}
        fns['tta5 x flip (loop)'] = lambda: [m.predict(x, smp) for m in loop]
        fns['warp_crops only'] = lambda: warp_crops(x, augs)
        times = {name: [] for name in fns}
        with torch.no_grad():
            for fn in fns.values():
                fn()  # warm-up
            for _ in range(args.repeats):
                for name, fn in fns.items():
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
        med = {name: statistics.median(t) * 1e3 for name, t in times.items()}
        print(f'\nbatch {batch} (median of {args.repeats}, interleaved)')
        print(f'| {"":38s} | ms | x plain |')
        print('|---|---|---|')
        for name, ms in med.items():
            print(f'| {name:38s} | {ms:.1f} | {ms / med["plain"]:.2f} |')


if __name__ == '__main__':
    main()

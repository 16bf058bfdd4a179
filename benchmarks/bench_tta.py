"""Cost of HRNet++'s test-time augmentation relative to one plain forward.

For a top-down config (default: the HRNet++-W32 256x192 heatmap model, built
with random weights, no checkpoint needed), the table gives the median wall
time of ``predict`` for a batch of crops (``--repeats`` rounds after
``--warmup`` untimed ones), as a ratio to the plain prediction without flip,
measured side by side in one run (timings are interleaved repeat by repeat,
so machine load affects all rows alike; ``--threads``: torch threads,
default torch's own):

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
import copy

import numpy as np
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

import mmkp_ext  # noqa: F401
from _harness import (config_path, interleaved, print_table, script_parser,
                      torch_threads, write_json)
from mmkp_ext.analysis import build_model_from_config
from mmkp_ext.models.pose_estimators.topdown_tta import (tta_augmentations,
                                                        warp_crops)
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


def build(cfg, state, **test_cfg):
    """The config's model with ``test_cfg`` merged into its test_cfg
    (``tta`` given: as TopdownTTAPoseEstimator), eval mode, weights
    ``state``."""
    options = {f'model.test_cfg.{k}': v for k, v in test_cfg.items()}
    if 'tta' in test_cfg:
        options['model.type'] = 'TopdownTTAPoseEstimator'
    model = build_model_from_config(copy.deepcopy(cfg), options)[0]
    model.load_state_dict(state)
    return model


def main():
    parser = script_parser(__doc__, repeats=5, warmup=1)
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--batch', type=int, nargs='+', default=[1, 8])
    args = parser.parse_args()
    with torch_threads(args.threads):
        out = run(args)
    write_json(args.json, out)


def run(args):
    torch.manual_seed(0)
    cfg = Config.fromfile(config_path(args.config))
    ref = build_model_from_config(copy.deepcopy(cfg))[0]
    state = ref.state_dict()
    w, h = ref.head.decoder.input_size
    k = getattr(ref.head, 'out_channels', None) or ref.head.num_joints

    augs = tta_augmentations()
    models = {
        'plain': build(cfg, state, flip_test=False),
        'flip': build(cfg, state, flip_test=True),
        'tta5 x flip (batched)': build(cfg, state, flip_test=True,
                                       tta=dict()),
    }
    loop = [
        build(cfg, state, flip_test=True,
              tta=dict(scales=[s] if r == 0 else [],
                       rotations=[r] if r != 0 else [])) for s, r in augs
    ]

    print(f'config: {args.config} ({w}x{h}), {len(augs)} augmentations '
          f'{augs}, {torch.get_num_threads()} thread(s)')
    out = {}
    for batch in args.batch:
        x = torch.randn(batch, 3, h, w)
        smp = samples(batch, w, h, k)
        fns = {name: (lambda m=m: m.predict(x, smp))
               for name, m in models.items()}
        fns['tta5 x flip (loop)'] = lambda: [m.predict(x, smp) for m in loop]
        fns['warp_crops only'] = lambda: warp_crops(x, augs)
        with torch.no_grad():
            med = interleaved(fns, args.repeats, args.warmup).medians_ms
        print(f'\nbatch {batch} (median of {args.repeats}, interleaved)')
        print_table(['', 'ms', 'x plain'],
                    [[name, f'{ms:.1f}', f'{ms / med["plain"]:.2f}']
                     for name, ms in med.items()])
        out[f'batch{batch}'] = med
    return out


if __name__ == '__main__':
    main()

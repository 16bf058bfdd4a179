"""HRNet vs HRNet++: forward latency, parameters and GFLOPs.

Part 1 (what each change costs): the W32 top-down model at 256x192
(backbone [+ sub-pixel neck] + HeatmapHead, ``mode='tensor'``, no grad,
eval mode) built from the ablation configs in ``configs/hrnetpp/coco``:
HRNet (every switch off), each change alone (SE, average-pool downsampling,
cross-module skips, sub-pixel fusion head) and all four (HRNet++-W32).
Batch 1 and batch 32. All variants live in one process and are timed
round-robin (one forward of each variant per round, median over rounds), so
that load changes on a shared machine hit every variant alike; the table
reports ratios to HRNet next to the raw medians.

Part 2 (the report's model size): parameters and GFLOPs of mmpose's
HRNet-W48 384x288 model vs HRNet++-W48 384x288, with mmengine's complexity
counter (``mmengine.analysis.get_model_complexity_info``; it counts one
multiply-add as one FLOP, the convention of mmpose's model zoo).

    python benchmarks/bench_hrnetpp.py [--batches 1 32] [--rounds 5]
        [--skip-w48] [--json out.json]
"""
import argparse
import json
import os.path as osp
import statistics
import time

import torch

import mmkp_ext  # noqa: F401
import mmpose
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpose.registry import MODELS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
COCO = osp.join(ROOT, 'configs', 'hrnetpp', 'coco')
# mmpose's configs ship inside the wheel (what 'mmpose::' resolves to).
MMPOSE_CONFIGS = osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs')
VARIANTS = [
    ('HRNet-W32 (all off)', 'td-hm_hrnetpp-w32_all-off'),
    ('+ SE (r=8)', 'td-hm_hrnetpp-w32_se-only'),
    ('+ avg-pool downsample', 'td-hm_hrnetpp-w32_avgpool-only'),
    ('+ cross-module skips', 'td-hm_hrnetpp-w32_xskip-only'),
    ('+ sub-pixel fusion head', 'td-hm_hrnetpp-w32_subpixel-only'),
    ('HRNet++-W32 (all four)', 'td-hm_hrnetpp-w32'),
]
W48 = [
    ('HRNet-W48', osp.join(MMPOSE_CONFIGS, 'body_2d_keypoint',
                           'topdown_heatmap', 'coco',
                           'td-hm_hrnet-w48_8xb32-210e_coco-384x288.py')),
    ('HRNet++-W48', osp.join(COCO,
                             'td-hm_hrnetpp-w48_8xb32-150e_coco-384x288.py')),
]


class TensorMode(torch.nn.Module):
    """``x -> model(x, None, mode='tensor')`` for the complexity counter."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, None, mode='tensor')


def build(cfg_path):
    cfg = Config.fromfile(cfg_path)
    init_default_scope('mmpose')
    model = MODELS.build(cfg.model)  # no init_weights: nothing downloaded
    model.eval()
    return model


def params_m(model):
    return sum(p.numel() for p in model.parameters()) / 1e6


def gflops(model, shape):
    from mmengine.analysis import get_model_complexity_info
    info = get_model_complexity_info(
        TensorMode(model), input_shape=shape, show_table=False,
        show_arch=False)
    return info['flops'] / 1e9


def latency_table(batches, rounds):
    models = []
    for label, stem in VARIANTS:
        # the ablations carry their tag before the schedule: '<tag>-8xb64'
        sep = '_' if stem == 'td-hm_hrnetpp-w32' else '-'
        path = osp.join(COCO, f'{stem}{sep}8xb64-150e_coco-256x192.py')
        models.append((label, build(path)))
    rows = {
        label: dict(params_m=params_m(m), gflops=gflops(m, (3, 256, 192)))
        for label, m in models
    }
    for batch in batches:
        x = torch.randn(batch, 3, 256, 192)
        times = {label: [] for label, _ in models}
        with torch.no_grad():
            for label, m in models:  # warm-up
                m(x, None, mode='tensor')
            for _ in range(rounds):
                for label, m in models:
                    t0 = time.perf_counter()
                    m(x, None, mode='tensor')
                    times[label].append(time.perf_counter() - t0)
        for label, _ in models:
            rows[label][f'ms_b{batch}'] = statistics.median(
                times[label]) * 1e3
    return rows


def print_latency(rows, batches):
    base = rows[VARIANTS[0][0]]
    head = ('| model | params (M) | GFLOPs | ' + ' | '.join(
        f'b{b} ms | b{b} ratio' for b in batches) + ' |')
    print(head)
    print('|' + '---|' * (3 + 2 * len(batches)))
    for label, _ in VARIANTS:
        r = rows[label]
        cells = [
            f'{r[f"ms_b{b}"]:.1f} | {r[f"ms_b{b}"] / base[f"ms_b{b}"]:.2f}'
            for b in batches
        ]
        print(f'| {label} | {r["params_m"]:.2f} | {r["gflops"]:.2f} | ' +
              ' | '.join(cells) + ' |')


def w48_table():
    rows = {}
    for label, path in W48:
        m = build(path)
        rows[label] = dict(params_m=params_m(m),
                           gflops=gflops(m, (3, 384, 288)))
        del m
    print('| model (384x288) | params (M) | GFLOPs |')
    print('|---|---|---|')
    for label, r in rows.items():
        print(f'| {label} | {r["params_m"]:.2f} | {r["gflops"]:.2f} |')
    a, b = rows['HRNet-W48'], rows['HRNet++-W48']
    print(f'ratio HRNet++/HRNet: params {b["params_m"] / a["params_m"]:.3f}, '
          f'GFLOPs {b["gflops"] / a["gflops"]:.3f}')
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 32])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--skip-w48', action='store_true')
    parser.add_argument('--json', help='also write the numbers here')
    args = parser.parse_args()
    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}')
    out = {}
    if not args.skip_w48:
        out['w48_384x288'] = w48_table()
        print()
    out['w32_256x192'] = latency_table(args.batches, args.rounds)
    print_latency(out['w32_256x192'], args.batches)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(out, f, indent=1)


if __name__ == '__main__':
    main()

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

Timings: ``--warmup`` untimed rounds, then ``--repeats`` (alias
``--rounds``) rounds, ``--threads`` torch threads (default: torch's own).

    python benchmarks/bench_hrnetpp.py [--batches 1 32] [--rounds 5]
        [--skip-w48] [--json out.json]
"""
import os.path as osp

import torch
from _harness import (config_path, interleaved, print_table, script_parser,
                      torch_threads, write_json)

import mmkp_ext  # noqa: F401
from mmkp_ext.analysis import build_model_from_config

COCO = 'configs/hrnetpp/coco'
VARIANTS = [
    ('HRNet-W32 (all off)', 'td-hm_hrnetpp-w32_all-off'),
    ('+ SE (r=8)', 'td-hm_hrnetpp-w32_se-only'),
    ('+ avg-pool downsample', 'td-hm_hrnetpp-w32_avgpool-only'),
    ('+ cross-module skips', 'td-hm_hrnetpp-w32_xskip-only'),
    ('+ sub-pixel fusion head', 'td-hm_hrnetpp-w32_subpixel-only'),
    ('HRNet++-W32 (all four)', 'td-hm_hrnetpp-w32'),
]
W48 = [
    ('HRNet-W48', 'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
     'td-hm_hrnet-w48_8xb32-210e_coco-384x288.py'),
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
    """The config's model, random weights (nothing downloaded), eval mode."""
    return build_model_from_config(config_path(cfg_path))[0]


def params_m(model):
    return sum(p.numel() for p in model.parameters()) / 1e6


def gflops(model, shape):
    from mmengine.analysis import get_model_complexity_info
    info = get_model_complexity_info(
        TensorMode(model), input_shape=shape, show_table=False,
        show_arch=False)
    return info['flops'] / 1e9


def latency_table(batches, repeats, warmup):
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
        with torch.no_grad():
            res = interleaved(
                {label: (lambda m=m: m(x, None, mode='tensor'))
                 for label, m in models}, repeats, warmup)
        for label, ms in res.medians_ms.items():
            rows[label][f'ms_b{batch}'] = ms
    return rows


def print_latency(rows, batches):
    base = rows[VARIANTS[0][0]]
    table = []
    for label, _ in VARIANTS:
        r = rows[label]
        cells = [label, f'{r["params_m"]:.2f}', f'{r["gflops"]:.2f}']
        for b in batches:
            cells += [f'{r[f"ms_b{b}"]:.1f}',
                      f'{r[f"ms_b{b}"] / base[f"ms_b{b}"]:.2f}']
        table.append(cells)
    print_table(['model', 'params (M)', 'GFLOPs'] +
                [f'b{b} {c}' for b in batches for c in ('ms', 'ratio')],
                table)


def w48_table():
    rows = {}
    for label, path in W48:
        m = build(path)
        rows[label] = dict(params_m=params_m(m),
                           gflops=gflops(m, (3, 384, 288)))
        del m
    print_table(['model (384x288)', 'params (M)', 'GFLOPs'],
                [[label, f'{r["params_m"]:.2f}', f'{r["gflops"]:.2f}']
                 for label, r in rows.items()])
    a, b = rows['HRNet-W48'], rows['HRNet++-W48']
    print(f'ratio HRNet++/HRNet: params {b["params_m"] / a["params_m"]:.3f}, '
          f'GFLOPs {b["gflops"] / a["gflops"]:.3f}')
    return rows


def main():
    parser = script_parser(__doc__, repeats=5, warmup=1,
                           repeats_aliases=('--rounds', ))
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 32])
    parser.add_argument('--skip-w48', action='store_true')
    args = parser.parse_args()
    with torch_threads(args.threads):
        print(f'torch {torch.__version__}, threads {torch.get_num_threads()}')
        out = {}
        if not args.skip_w48:
            out['w48_384x288'] = w48_table()
            print()
        out['w32_256x192'] = latency_table(args.batches, args.repeats,
                                           args.warmup)
    print_latency(out['w32_256x192'], args.batches)
    write_json(args.json, out)


if __name__ == '__main__':
    main()

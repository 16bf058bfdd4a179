"""Poseur (ResNet-50, 3 decoder layers, EMSDA) against mmpose's SimpleBaseline
ResNet-50 heatmap model at the same 256x192 input: parameters, GFLOPs
(mmkp_ext.analysis: 1 FLOP = 1 multiply-add, grid_sample counted) and CPU
inference latency at batch 1 and 32, side by side in one run.

Both models are built from their configs with random weights (no download)
in eval mode; the timed call is the estimator's tensor forward
``model._forward(x)`` (backbone + neck + head, no flip test, no decoding)
under ``torch.no_grad``. Times are medians of ``--repeats`` calls after
``--warmup`` untimed calls (default one), the two models interleaved in every
repeat so that machine load hits both alike: compare the ratio, not absolute
times across runs. ``--threads``: torch threads (default: torch's own).

    OMP_NUM_THREADS=1 python benchmarks/bench_poseur_vs_simplebaseline.py \
        [--batches 1 32] [--repeats 3]
"""
import torch

import mmkp_ext  # noqa: F401
from _harness import (config_path, interleaved, print_table, script_parser,
                      torch_threads, write_json)
from mmkp_ext.analysis import build_model_from_config, complexity_from_config

MODELS = {
    'Poseur R50 dec3 (EMSDA)':
    'configs/poseur/coco/poseur_res50-dec3_8xb32-325e_coco-256x192.py',
    'SimpleBaseline R50 (heatmap)':
    'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_res50_8xb64-210e_coco-256x192.py',
}
PAPER_GFLOPS = {'Poseur R50 dec3 (EMSDA)': 4.48,
                'SimpleBaseline R50 (heatmap)': 8.27}
INPUT_HW = (256, 192)


def main():
    parser = script_parser(__doc__, repeats=3, warmup=1)
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 32])
    args = parser.parse_args()
    with torch_threads(args.threads):
        rows, times = run(args)
    write_json(args.json, dict(rows=rows, ms=times))


def run(args):
    torch.manual_seed(0)
    models, rows = {}, {}
    for name, cfg in MODELS.items():
        cfg = config_path(cfg)
        res = complexity_from_config(cfg, INPUT_HW)
        models[name] = build_model_from_config(cfg)[0]
        rows[name] = dict(params=res.params / 1e6, gflops=res.flops / 1e9,
                          grid=res.flops_by_operator.get('grid_sampler', 0) /
                          1e9)
    times = {name: {} for name in models}
    with torch.no_grad():
        for batch in args.batches:
            x = torch.randn(batch, 3, *INPUT_HW)
            res = interleaved({name: (lambda m=m: m._forward(x))
                               for name, m in models.items()},
                              args.repeats, args.warmup)
            for name, ms in res.medians_ms.items():
                times[name][batch] = ms

    threads = torch.get_num_threads()
    print(f'input 1x3x{INPUT_HW[0]}x{INPUT_HW[1]}, torch threads {threads}, '
          f'median of {args.repeats}')
    table = [[name, f'{r["params"]:.2f}', f'{r["gflops"]:.3f}',
              PAPER_GFLOPS[name]] +
             [f'{times[name][b]:.1f}' for b in args.batches]
             for name, r in rows.items()]
    p, s = list(models)
    table.append(['ratio Poseur / SimpleBaseline',
                  f'{rows[p]["params"] / rows[s]["params"]:.2f}',
                  f'{rows[p]["gflops"] / rows[s]["gflops"]:.2f}',
                  f'{PAPER_GFLOPS[p] / PAPER_GFLOPS[s]:.2f}'] +
                 [f'{times[p][b] / times[s][b]:.2f}' for b in args.batches])
    print_table(['model', 'params (M)', 'GFLOPs', 'paper GFLOPs'] +
                [f'CPU ms, batch {b}' for b in args.batches], table)
    print(f'(Poseur grid_sample GFLOPs: {rows[p]["grid"]:.4f})')
    return rows, times


if __name__ == '__main__':
    main()

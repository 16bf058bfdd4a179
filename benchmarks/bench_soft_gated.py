"""Size, FLOPs and CPU latency of the soft-gated hourglass against mmpose's
Hourglass-52 (td-hm_hourglass52_8xb32-210e_coco-256x256.py), in one run.

Each model is built from its config (backbone + head, no weights loaded) and
timed on a 256x256 input in eval mode (``extract_feat`` + head ``forward``,
no flip test), median of ``--repeats`` runs (``--repeats`` - 1 at the big
batch) after ``--warmup`` untimed ones (default one), at batch 1 and at
``--big-batch``; ``--threads`` torch threads (default: torch's own).
Parameters count the whole model; GFLOPs are
mmengine's ``get_model_complexity_info`` (one multiply-add = one FLOP, the
convention of the papers' GFLOPs) at batch 1. Ratios are against the first
model, from the same run (timings on a shared machine are noisy; compare
ratios, not absolute times).

    OMP_NUM_THREADS=1 python benchmarks/bench_soft_gated.py \
        [--repeats 3] [--big-batch 32]

``--sizes-only`` prints only the parameter / GFLOP counts of the backbone
settings compared with the paper's two models (4 stacks, 16 MPII heatmaps,
256x256), no timing.
"""
import logging

import torch
from mmengine.logging import MMLogger

import mmkp_ext  # noqa: F401
from _harness import (config_path, print_table, script_parser, table_header,
                      table_row, time_callable, torch_threads, write_json)
from mmkp_ext.analysis import build_model_from_config

MODELS_TO_RUN = [
    ('soft-gated 4 stacks x144 (ours, paper 8.5M)',
     'configs/soft_gated/mpii/td-hm_softgated-hg4-c144_1xb24-200e_'
     'mpii-256x256.py', None),
    ('soft-gated 4 stacks x92, stem 64/64 (paper 3.4M)',
     'configs/soft_gated/mpii/td-hm_softgated-hg4-c144_1xb24-200e_'
     'mpii-256x256.py', dict(channels=92, stem_channels=(64, 64))),
    ("mmpose Hourglass-52 (td-hm_hourglass52 config)",
     'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
     'td-hm_hourglass52_8xb32-210e_coco-256x256.py', None),
]


def build(cfg_path, backbone_update):
    """The config's model (no weights loaded, eval mode), its backbone
    updated with ``backbone_update``."""
    options = {f'model.backbone.{k}': v
               for k, v in (backbone_update or {}).items()}
    return build_model_from_config(config_path(cfg_path), options)


def run_once(model, x):
    with torch.no_grad():
        return model.head.forward(model.extract_feat(x))


def flops(model, size):
    from mmengine.analysis import FlopAnalyzer

    class Wrapped(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return run_once(self.m, x)

    return FlopAnalyzer(Wrapped(model), torch.randn(1, 3, *size)).total()


#: (label, SoftGatedHourglass overrides, paper model it is compared with)
SIZE_SETTINGS = [
    ('channels 144 (1x1 fusion conv)', dict(channels=144), '8.5M / 9.9'),
    ('channels 144, 3x3 fusion conv', dict(channels=144, fusion_kernel=3),
     '8.5M / 9.9'),
    ('channels 128', dict(channels=128), '8.5M / 9.9'),
    ('channels 92, stem 64/64', dict(channels=92, stem_channels=(64, 64)),
     '3.4M / 4.27'),
    ('channels 88', dict(channels=88), '3.4M / 4.27'),
    ('channels 256 (wide)', dict(channels=256), '-'),
]


def sizes_only(size):
    from mmengine.analysis import get_model_complexity_info

    from mmkp_ext.models.backbones import SoftGatedHourglass
    print(table_header(['setting (4 stacks, depth 4, concat fusion, '
                        'per-channel gates)', 'params (M)', 'GFLOPs',
                        'paper params / GFLOPs']))
    rows = []
    for label, kw, paper in SIZE_SETTINGS:
        model = SoftGatedHourglass(num_stacks=4, num_keypoints=16, **kw)
        model.eval()
        info = get_model_complexity_info(
            model, (3, *size), show_table=False, show_arch=False)
        print(table_row([label, f"{info['params'] / 1e6:.2f}",
                         f"{info['flops'] / 1e9:.2f}", paper]), flush=True)
        rows.append(dict(setting=label, params=info['params'],
                         flops=info['flops']))
    return rows


def main():
    parser = script_parser(__doc__, repeats=3, warmup=1)
    parser.add_argument('--sizes-only', action='store_true')
    parser.add_argument('--big-batch', type=int, default=32)
    parser.add_argument('--size', type=int, nargs=2, default=(256, 256),
                        metavar=('H', 'W'))
    args = parser.parse_args()
    MMLogger.get_current_instance().setLevel(logging.ERROR)
    with torch_threads(args.threads):
        if args.sizes_only:
            write_json(args.json, sizes_only(args.size))
        else:
            write_json(args.json, run(args))


def run(args):
    def ms(fn, repeats):
        return time_callable(fn, repeats, args.warmup).median_ms

    rows = []
    for name, cfg_path, update in MODELS_TO_RUN:
        model, cfg = build(cfg_path, update)
        params = sum(p.numel() for p in model.parameters())
        gflops = flops(model, args.size) / 1e9
        x1 = torch.randn(1, 3, *args.size)
        xb = torch.randn(args.big_batch, 3, *args.size)
        t1 = ms(lambda m=model: run_once(m, x1), args.repeats)
        tb = ms(lambda m=model: run_once(m, xb), max(1, args.repeats - 1))
        stacks = len(run_once(model, x1))
        rows.append((name, stacks, params, gflops, t1, tb))
        print(f'done: {name}: {params} params, {gflops:.3f} GFLOPs, '
              f'{t1:.1f} ms / {tb:.1f} ms', flush=True)
        del model
    base = rows[0]
    print(f'\ninput {args.size[0]}x{args.size[1]}, torch threads '
          f'{torch.get_num_threads()}, batch 1 and {args.big_batch}; '
          'ratios vs the first row\n')
    print_table(['model', 'outputs (stacks)', 'params (M)', 'GFLOPs',
                 'batch 1 (ms)', f'batch {args.big_batch} (ms)',
                 'params ratio', 'GFLOPs ratio', 'batch-1 ratio',
                 f'batch-{args.big_batch} ratio'],
                [[name, stacks, f'{p / 1e6:.2f}', f'{g:.2f}', f'{t1:.0f}',
                  f'{tb:.0f}', f'{p / base[2]:.2f}', f'{g / base[3]:.2f}',
                  f'{t1 / base[4]:.2f}', f'{tb / base[5]:.2f}']
                 for name, stacks, p, g, t1, tb in rows])
    keys = ('model', 'stacks', 'params', 'gflops', 'ms_b1', 'ms_big')
    return [dict(zip(keys, r)) for r in rows]


if __name__ == '__main__':
    main()

"""`make demo-centernet`: grouped CenterNet on the toy fashion data, with
mmpose's stock scripts only.

1. generate the toy fashion dataset (seeded, ``data/toy_fashion``),
2. train the tiny-DLA CenterNet config with the stock ``train.py``,
3. evaluate the final checkpoint with the stock ``test.py`` twice, decoding
   with ``rescore`` and with ``nearest`` (``--cfg-options
   model.test_cfg.decode_mode=...``),
4. print per-category AP for both decode modes and the time of each step.

    python tools/run_demo_centernet.py [--num-images N] [--epochs E]
"""
import argparse
import os.path as osp
import sys
import time

from mmkp_ext.utils import parse_metric, run_or_exit, toy_data_options

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

CONFIG = ('configs/centernet_grouping/toy_fashion/'
          'cn-pose_dla34-tiny_1xb16-80e_toy-fashion-128x128.py')
PREFIX = 'toy_fashion'
KEYS = ('AP', 'AP .5', 'AR', 'AP_short_sleeved_top', 'AP_trousers',
        'AP_skirt')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo_centernet')
    parser.add_argument('--data-root', default='data/toy_fashion')
    parser.add_argument('--num-images', type=int, default=300)
    parser.add_argument('--epochs', type=int, default=80)
    return parser.parse_args()


def run(cmd):
    """Run a command from the repository root, streaming its output;
    exit with its message if it fails."""
    return run_or_exit(cmd, REPO)


def metrics(text, names):
    """The last logged value of ``toy_fashion/<name>`` for each name (the
    shared mmengine-log parser)."""
    return {name: parse_metric(text, f'{PREFIX}/{name}') for name in names}


def main():
    args = parse_args()
    py = sys.executable
    root = args.data_root.rstrip('/') + '/'
    data_opts = toy_data_options(root)
    times = {}
    t0 = time.time()
    run([py, 'tools/make_toy_dataset.py', '--kind', 'fashion', '--out',
         args.data_root, '--num-images', str(args.num_images)])
    times['data'] = time.time() - t0

    t0 = time.time()
    run([py, 'tools/train.py', CONFIG, '--work-dir', args.work_dir,
         '--cfg-options', f'train_cfg.max_epochs={args.epochs}',
         f'train_cfg.val_interval={args.epochs}',
         f'default_hooks.checkpoint.interval={args.epochs}', *data_opts])
    times['train'] = time.time() - t0
    ckpt = osp.join(args.work_dir, f'epoch_{args.epochs}.pth')

    results = {}
    for mode in ('rescore', 'nearest'):
        t0 = time.time()
        out = run([py, 'tools/test.py', CONFIG, ckpt, '--work-dir',
                   osp.join(args.work_dir, f'test_{mode}'), '--cfg-options',
                   f'model.test_cfg.decode_mode={mode}', *data_opts])
        times[f'test ({mode})'] = time.time() - t0
        results[mode] = metrics(out, KEYS)

    print('\n==== demo-centernet summary ====')
    print(f'{"metric":<28}{"rescore":>10}{"nearest":>10}')
    for key in KEYS:
        print(f'{key:<28}{results["rescore"].get(key, float("nan")):>10.3f}'
              f'{results["nearest"].get(key, float("nan")):>10.3f}')
    for step, t in times.items():
        print(f'time {step}: {t:.0f} s')


if __name__ == '__main__':
    main()

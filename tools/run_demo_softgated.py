"""`make demo-softgated`: the soft-gated hourglass / U-Net hybrid on the toy
persons data, with mmpose's stock scripts only.

1. generate the toy persons dataset (seeded, ``data/toy_persons_softgated``),
2. train the small soft-gated config (2 stacks, width 64, per-channel gates,
   intermediate supervision through CPMHead) with the stock ``train.py``,
3. evaluate the final checkpoint with the stock ``test.py``,
4. draw the histogram of the learned gates per stack / level
   (tools/analysis/plot_soft_gates.py) and print coco/AP and the time of
   each step.

    python tools/run_demo_softgated.py [--num-images N] [--epochs E]
"""
import argparse
import os
import os.path as osp
import sys
import time

from mmkp_ext.utils import (mmpose_tool_path, parse_metric, run_or_exit,
                            toy_data_options)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = ('configs/soft_gated/toy_persons/'
          'td-hm_softgated-hg2-c64_1xb16-10e_toy-persons-64x48.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo_softgated')
    parser.add_argument('--data-root', default='data/toy_persons_softgated')
    parser.add_argument('--num-images', type=int, default=200)
    parser.add_argument('--epochs', type=int, default=10)
    return parser.parse_args()


def run(cmd):
    """Run a command from the repository root, streaming its output;
    exit with its message if it fails."""
    return run_or_exit(cmd, REPO)


def main():
    args = parse_args()
    times = {}
    root = args.data_root.rstrip('/') + '/'
    options = toy_data_options(root) + [
               f'train_cfg.max_epochs={args.epochs}',
               f'train_cfg.val_interval={args.epochs}',
               f'param_scheduler.1.T_max={args.epochs}',
               f'param_scheduler.1.end={args.epochs}',
               f'default_hooks.checkpoint.interval={args.epochs}']

    t0 = time.time()
    run([sys.executable, 'tools/make_toy_dataset.py', '--kind', 'persons',
         '--out', args.data_root, '--num-images', str(args.num_images),
         '--seed', '0'])
    times['data'] = time.time() - t0

    t0 = time.time()
    run([sys.executable, mmpose_tool_path('train.py'), CONFIG, '--work-dir',
         args.work_dir, '--cfg-options', *options])
    times['train'] = time.time() - t0
    ckpt = osp.join(args.work_dir, f'epoch_{args.epochs}.pth')

    t0 = time.time()
    test_out = run([sys.executable, mmpose_tool_path('test.py'), CONFIG,
                    ckpt, '--work-dir', args.work_dir, '--cfg-options',
                    *options])
    times['test'] = time.time() - t0

    png = osp.join(args.work_dir, 'soft_gates.png')
    gates_out = run([sys.executable, 'tools/analysis/plot_soft_gates.py',
                     ckpt, '--out', png])
    try:
        test_ap = parse_metric(test_out, 'coco/AP')
    except ValueError as e:
        sys.exit(str(e))
    print('\n==== soft-gated hourglass demo summary ====')
    print(f'data:    {args.num_images} images in {args.data_root}')
    print(f'config:  {CONFIG}\n         {args.epochs} epochs -> {ckpt}')
    print(f'gates:   {gates_out.strip().splitlines()[-1]}')
    print('time:    ' + ', '.join(f'{k} {v:.0f} s'
                                  for k, v in times.items()) +
          f' (total {sum(times.values()):.0f} s)')
    print(f'coco/AP: {test_ap:.4f}')


if __name__ == '__main__':
    os.environ.setdefault('PYTHONWARNINGS', 'ignore')
    main()

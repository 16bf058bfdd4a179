"""`make demo-swahr`: bottom-up HigherHRNet with and without SWAHR on the
toy persons data, with mmpose's stock scripts only.

1. generate the toy persons dataset (seeded, 64x64 images,
   ``data/toy_persons_64``),
2. train the plain HigherHRNet toy config and the SWAHR toy config (same
   data, schedule and seed) with the stock ``train.py``,
3. evaluate each final checkpoint with the stock ``test.py``,
4. print coco/AP and AR of both and the time of each step.

    python tools/run_demo_swahr.py [--num-images N] [--epochs E]
"""
import argparse
import os
import os.path as osp
import sys
import time

from mmkp_ext.utils import parse_metric, run_or_exit, toy_data_options

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG_DIR = 'configs/swahr/toy_persons/'
CONFIGS = {
    'HigherHRNet':
    CFG_DIR + 'higherhrnet_hrnet-w16-tiny_1xb16-36e_toy-persons-64x64.py',
    'SWAHR':
    CFG_DIR + 'swahr_hrnet-w16-tiny_1xb16-36e_toy-persons-64x64.py',
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo_swahr')
    parser.add_argument('--data-root', default='data/toy_persons_64')
    parser.add_argument('--num-images', type=int, default=400)
    parser.add_argument('--image-size', type=int, default=64)
    parser.add_argument('--epochs', type=int, default=36)
    return parser.parse_args()


def run(cmd):
    """Run a command from the repository root, streaming its output;
    exit with its message if it fails."""
    return run_or_exit(cmd, REPO)


def main():
    args = parse_args()
    root = args.data_root.rstrip('/') + '/'
    data_options = toy_data_options(root)
    epochs = args.epochs
    schedule = [
        f'train_cfg.max_epochs={epochs}',
        f'train_cfg.val_interval={epochs}',
        f'default_hooks.checkpoint.interval={epochs}',
        'default_hooks.checkpoint.save_best=None',
        f'param_scheduler.1.end={epochs}',
    ]
    times = {}
    t0 = time.time()
    run([
        sys.executable, 'tools/make_toy_dataset.py', '--kind', 'persons',
        '--out', args.data_root, '--num-images',
        str(args.num_images), '--image-size',
        str(args.image_size), '--seed', '0'
    ])
    times['data'] = time.time() - t0

    results = {}
    for name, config in CONFIGS.items():
        work = osp.join(args.work_dir, name.lower())
        t0 = time.time()
        run([
            sys.executable, 'tools/train.py', config, '--work-dir', work,
            '--cfg-options', *data_options, *schedule
        ])
        times[f'train {name}'] = time.time() - t0
        ckpt = osp.join(work, f'epoch_{epochs}.pth')
        t0 = time.time()
        out = run([
            sys.executable, 'tools/test.py', config, ckpt, '--work-dir',
            osp.join(work, 'test'), '--cfg-options', *data_options
        ])
        times[f'test {name}'] = time.time() - t0
        try:
            results[name] = (parse_metric(out, 'coco/AP'),
                             parse_metric(out, 'coco/AR'))
        except ValueError as e:
            sys.exit(str(e))

    print('\n==== mmkp_ext demo-swahr summary ====')
    print(f'data:   {args.num_images} images of {args.image_size} px in '
          f'{args.data_root}; {epochs} epochs each, same seed')
    print('time:   ' + ', '.join(f'{k} {v:.0f} s' for k, v in times.items()) +
          f' (total {sum(times.values()):.0f} s)')
    for name, (ap, ar) in results.items():
        print(f'{name:12s} {CONFIGS[name]}\n'
              f'             coco/AP {ap:.4f}  coco/AR {ar:.4f}')


if __name__ == '__main__':
    os.environ.setdefault('PYTHONWARNINGS', 'ignore')
    main()

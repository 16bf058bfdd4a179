"""`make demo-poseur`: a tiny Poseur on the toy persons data, with mmpose's
stock scripts only.

1. generate the toy persons dataset (seeded, 200 images in
   ``data/toy_persons_poseur``),
2. train the tiny Poseur config with the stock ``train.py`` (RLE losses of
   the coarse branch and of every decoder layer, noisy query groups),
3. evaluate the final checkpoint with the stock ``test.py`` (flip test with
   the p^5 fusion, Laplace keypoint scores, instance score = box score x
   mean keypoint score),
4. print coco/AP and the time of each step.

    python tools/run_demo_poseur.py [--num-images N] [--epochs E]
"""
import argparse
import os.path as osp
import sys
import time

from mmkp_ext.utils import parse_metric, run_or_exit, toy_data_options

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = ('configs/poseur/toy_persons/'
          'poseur_res18-tiny_1xb16-40e_toy-persons-128x96.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo_poseur')
    parser.add_argument('--data-root', default='data/toy_persons_poseur')
    parser.add_argument('--num-images', type=int, default=200)
    parser.add_argument('--epochs', type=int, default=30)
    return parser.parse_args()


def run(cmd):
    """Run a command from the repository root, streaming its output;
    exit with its message if it fails."""
    return run_or_exit(cmd, REPO)


def main():
    args = parse_args()
    py = sys.executable
    root = args.data_root.rstrip('/') + '/'
    data_opts = toy_data_options(root)
    times = {}
    t0 = time.time()
    run([py, 'tools/make_toy_dataset.py', '--kind', 'persons', '--out',
         args.data_root, '--num-images', str(args.num_images), '--seed',
         '0'])
    times['data'] = time.time() - t0

    t0 = time.time()
    run([py, 'tools/train.py', CONFIG, '--work-dir', args.work_dir,
         '--cfg-options', f'train_cfg.max_epochs={args.epochs}',
         f'train_cfg.val_interval={args.epochs}',
         f'default_hooks.checkpoint.interval={args.epochs}', *data_opts])
    times['train'] = time.time() - t0
    ckpt = osp.join(args.work_dir, f'epoch_{args.epochs}.pth')

    t0 = time.time()
    out = run([py, 'tools/test.py', CONFIG, ckpt, '--work-dir',
               osp.join(args.work_dir, 'test'), '--cfg-options', *data_opts])
    times['test'] = time.time() - t0
    try:
        ap = parse_metric(out, 'coco/AP')
        ap50 = parse_metric(out, 'coco/AP .5')
    except ValueError as e:
        sys.exit(str(e))

    print('\n==== demo-poseur summary ====')
    print(f'data:    {args.num_images} images in {args.data_root}')
    print(f'config:  {CONFIG} ({args.epochs} epochs)')
    print('time:    ' + ', '.join(f'{k} {v:.0f} s' for k, v in times.items())
          + f' (total {sum(times.values()):.0f} s)')
    print(f'coco/AP .5: {ap50:.4f}')
    print(f'coco/AP: {ap:.4f}')


if __name__ == '__main__':
    main()

"""The main job (`make demo`): toy data -> stock train.py -> stock test.py.

1. generates the toy persons dataset (data/toy_persons, seeded),
2. trains the soft-argmax model with mmpose's stock ``tools/train.py``,
3. evaluates the best checkpoint with mmpose's stock ``tools/test.py``, which
   prints the COCO keypoint metrics and writes visualised predictions,
4. prints a summary with ``coco/AP`` and the time each step took.

    python tools/run_demo.py [--config CFG] [--work-dir DIR] [--epochs N]
"""
import argparse
import glob
import os
import os.path as osp
import re
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = ('configs/soft_argmax/toy_persons/'
                  'td-sa_res18-s8_1xb32-40e_toy-persons-128x96.py')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/toy_persons')
    parser.add_argument('--num-images', type=int, default=200)
    parser.add_argument(
        '--epochs', type=int, default=None,
        help='override train_cfg.max_epochs (default: the config\'s)')
    return parser.parse_args()


def run(cmd):
    """Run a command from the repository root, streaming its output, and
    return the output; exit with its code if it fails."""
    print('$', ' '.join(cmd), flush=True)
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        lines.append(line)
    if proc.wait() != 0:
        sys.exit(f'command failed with exit code {proc.returncode}')
    return ''.join(lines)


def main():
    args = parse_args()
    times = {}
    data_root = args.data_root.rstrip('/') + '/'

    t0 = time.time()
    run([sys.executable, 'tools/make_toy_dataset.py', '--kind', 'persons',
         '--out', args.data_root, '--num-images', str(args.num_images),
         '--seed', '0'])
    times['data'] = time.time() - t0

    options = [f'train_dataloader.dataset.data_root={data_root}',
               f'val_dataloader.dataset.data_root={data_root}',
               f'test_dataloader.dataset.data_root={data_root}',
               f'val_evaluator.ann_file={data_root}annotations/val.json',
               f'test_evaluator.ann_file={data_root}annotations/val.json']
    train_options = list(options)
    if args.epochs:
        train_options += [f'train_cfg.max_epochs={args.epochs}',
                          f'param_scheduler.1.T_max={args.epochs}',
                          f'param_scheduler.1.end={args.epochs}']

    t0 = time.time()
    run([sys.executable, 'tools/train.py', args.config, '--work-dir',
         args.work_dir, '--cfg-options', *train_options])
    times['train'] = time.time() - t0

    best = sorted(glob.glob(osp.join(REPO, args.work_dir, 'best_coco_AP*.pth')))
    ckpt = best[-1] if best else osp.join(REPO, args.work_dir,
                                          'epoch_*.pth')
    if not best:
        epochs = sorted(glob.glob(ckpt), key=osp.getmtime)
        if not epochs:
            sys.exit(f'no checkpoint found in {args.work_dir}')
        ckpt = epochs[-1]

    t0 = time.time()
    vis_dir = 'vis'
    out = run([sys.executable, 'tools/test.py', args.config, ckpt,
               '--work-dir', args.work_dir, '--show-dir', vis_dir,
               '--interval', '8', '--cfg-options', *options])
    times['test'] = time.time() - t0

    found = re.findall(r'coco/AP: ([0-9.]+)', out)
    if not found:
        sys.exit('test.py printed no coco/AP')
    vis = sorted(
        glob.glob(osp.join(REPO, args.work_dir, '*', vis_dir, '*')),
        key=osp.getmtime)
    print('\n==== mmkp_ext demo summary ====')
    print(f'config:      {args.config}')
    print(f'checkpoint:  {osp.relpath(ckpt, REPO)}')
    print('time:        ' + ', '.join(f'{k} {v:.0f} s'
                                      for k, v in times.items()))
    if vis:
        print(f'predictions: {len(vis)} images in '
              f'{osp.relpath(osp.dirname(vis[-1]), REPO)}')
    print(f'coco/AP: {float(found[-1]):.4f}')


if __name__ == '__main__':
    os.environ.setdefault('PYTHONWARNINGS', 'ignore')
    main()

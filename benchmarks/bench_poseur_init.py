"""Poseur from scratch: ``init='intended'`` vs ``init='authors'`` on the toy
persons recipe (issue 15), several seeds, stock ``train.py``.

Each run trains the toy Poseur config (``configs/poseur/toy_persons/``) for
``--epochs`` epochs on a generated toy persons dataset and reads the final
validation coco/AP (flip test as in the config) from the log. The dataset is
generated once (seed 0); the runs differ only in ``model.head.init`` and
``randomness.seed``.

    OMP_NUM_THREADS=1 python benchmarks/bench_poseur_init.py \\
        --num-images 200 --epochs 20 --seeds 0 1 2
"""
import argparse
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from mmkp_ext.utils import parse_metric, run_or_exit, toy_data_options  # noqa

CONFIG = ('configs/poseur/toy_persons/'
          'poseur_res18-tiny_1xb16-40e_toy-persons-128x96.py')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/bench_poseur_init')
    parser.add_argument('--data-root', default='data/toy_persons_init')
    parser.add_argument('--num-images', type=int, default=200)
    parser.add_argument('--epochs', type=int, default=20)
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--inits', nargs='+',
                        default=['intended', 'authors'])
    args = parser.parse_args()
    py = sys.executable
    if not osp.isdir(osp.join(REPO, args.data_root)):
        run_or_exit([py, 'tools/make_toy_dataset.py', '--kind', 'persons',
                     '--out', args.data_root, '--num-images',
                     str(args.num_images), '--seed', '0'], REPO)
    results = []
    for seed in args.seeds:
        for init in args.inits:
            wd = osp.join(args.work_dir, f'{init}_seed{seed}')
            t0 = time.time()
            out = run_or_exit([
                py, 'tools/train.py', CONFIG, '--work-dir', wd,
                '--cfg-options', f'model.head.init={init}',
                f'randomness.seed={seed}',
                f'train_cfg.max_epochs={args.epochs}',
                f'train_cfg.val_interval={args.epochs}',
                f'default_hooks.checkpoint.interval={args.epochs}',
                *toy_data_options(args.data_root)
            ], REPO)
            ap = parse_metric(out, 'coco/AP')
            ap50 = parse_metric(out, 'coco/AP .5')
            results.append((init, seed, ap, ap50, time.time() - t0))
            print(f'RESULT init={init} seed={seed} coco/AP={ap:.4f} '
                  f'AP.5={ap50:.4f} wall={time.time() - t0:.0f}s',
                  flush=True)
    print('\n| init | seed | coco/AP | AP .5 | wall s |')
    print('|---|---:|---:|---:|---:|')
    for init, seed, ap, ap50, wall in results:
        print(f'| {init} | {seed} | {ap:.4f} | {ap50:.4f} | {wall:.0f} |')
    for init in args.inits:
        aps = [r[2] for r in results if r[0] == init]
        print(f'{init}: mean coco/AP {sum(aps) / len(aps):.4f} over '
              f'{len(aps)} seeds')


if __name__ == '__main__':
    main()

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
import re
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

from mmkp_ext.utils import parse_metric, run_or_exit, toy_data_options  # noqa

CONFIG = ('configs/poseur/toy_persons/'
          'poseur_res18-tiny_1xb16-40e_toy-persons-128x96.py')


def last_train_values(text, key, n=2):
    """Mean of the last ``n`` logged training values of ``key`` (e.g.
    ``acc_pose``, PCK@0.05 of the last decoder layer; two log lines per
    epoch of the toy recipe)."""
    vals = [float(v) for v in re.findall(
        r'Epoch\(train\).*?\b' + re.escape(key) + r': (-?[\d.]+)', text)]
    return sum(vals[-n:]) / len(vals[-n:]) if vals else float('nan')


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
        run_or_exit([py, 'tools/dataset_converters/make_toy_dataset.py', '--kind', 'persons',
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
            acc = last_train_values(out, 'acc_pose')
            loss = last_train_values(out, 'loss')
            results.append((init, seed, ap, ap50, acc, loss,
                            time.time() - t0))
            print(f'RESULT init={init} seed={seed} coco/AP={ap:.4f} '
                  f'AP.5={ap50:.4f} train_acc_pose={acc:.3f} '
                  f'train_loss={loss:.1f} wall={time.time() - t0:.0f}s',
                  flush=True)
    print('\n| init | seed | coco/AP | AP .5 | train acc_pose | train loss '
          '| wall s |')
    print('|---|---:|---:|---:|---:|---:|---:|')
    for init, seed, ap, ap50, acc, loss, wall in results:
        print(f'| {init} | {seed} | {ap:.4f} | {ap50:.4f} | {acc:.3f} | '
              f'{loss:.1f} | {wall:.0f} |')
    for init in args.inits:
        rows = [r for r in results if r[0] == init]
        print(f'{init}: mean coco/AP '
              f'{sum(r[2] for r in rows) / len(rows):.4f}, mean train '
              f'acc_pose {sum(r[4] for r in rows) / len(rows):.3f} over '
              f'{len(rows)} seeds')


if __name__ == '__main__':
    main()

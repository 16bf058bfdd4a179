"""Measure the per-method learning tests (``tests/test_learning/``) over
training seeds: for each test module, its ``run(info, seed, lr)`` at the
module's own learning rate for every ``--seeds`` value and once at lr=0,
printing the loss drop, the metric and the wall time of each run. The
thresholds and the figures in those tests' docstrings come from here.

    OMP_NUM_THREADS=1 python benchmarks/learning_seeds.py \
        [--tests softgated poseur ...] [--seeds 0 1 2]

(``--tests`` picks modules ``tests/test_learning/test_<name>_learns.py``;
default all.) The toy data is generated as the tests' session fixture
does (``tests/conftest.py`` ``toy_dataset``).
"""
import argparse
import glob
import importlib.util
import os.path as osp
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'tests'))


def _load(path):
    name = osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tests', nargs='*', default=None)
    parser.add_argument('--seeds', nargs='*', type=int, default=[0, 1, 2])
    parser.add_argument('--steps', type=int, default=None,
                        help='override the module\'s STEPS')
    parser.add_argument('--lr', type=float, default=None,
                        help='override the module\'s LR')
    parser.add_argument('--no-control', action='store_true',
                        help='skip the lr=0 run')
    args = parser.parse_args(argv)
    import torch

    from mmkp_ext.datasets import make_toy_dataset
    paths = sorted(glob.glob(osp.join(ROOT, 'tests/test_learning/'
                                      'test_*_learns.py')))
    if args.tests:
        paths = [p for p in paths
                 if osp.basename(p)[5:-10] in args.tests]
    print(f'torch threads: {torch.get_num_threads()}')
    made = {}
    with tempfile.TemporaryDirectory() as tmp:

        def toy_dataset(kind, image_size, num_images, seed=0):
            key = (kind, image_size, num_images, seed)
            if key not in made:
                made[key] = make_toy_dataset(
                    kind, osp.join(tmp, '_'.join(map(str, key))),
                    num_images=num_images, seed=seed, val_fraction=0.0,
                    image_size=image_size)
            return made[key]

        for path in paths:
            module = _load(path)
            info = module.DATA(toy_dataset)
            lr0 = module.LR if args.lr is None else args.lr
            steps = {} if args.steps is None else dict(steps=args.steps)
            runs = [(s, lr0) for s in args.seeds]
            if not args.no_control:
                runs.append((args.seeds[0], 0.0))
            # a module with VARIANTS (keyword dicts for run) is measured
            # per variant
            for variant, seed, lr in [(v, s, lr)
                                      for v in getattr(module, 'VARIANTS',
                                                       [{}])
                                      for s, lr in runs]:
                extra = dict(steps, **variant)
                start, cpu = time.time(), time.process_time()
                result, metric = module.run(info, seed=seed, lr=lr, **extra)
                print(f'{osp.basename(path)} {variant}  seed {seed}  '
                      f'lr {lr:g}  '
                      f'loss {result.losses[0]:.5g} -> '
                      f'{result.losses[-1]:.5g} (drop '
                      f'{result.loss_drop():.3f}, fall '
                      f'{result.loss_fall():.4g})  metric {metric:.4f}  '
                      f'wall {time.time() - start:.1f} s  '
                      f'cpu {time.process_time() - cpu:.1f} s', flush=True)


if __name__ == '__main__':
    main()

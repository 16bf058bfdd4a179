"""`make demo-hrnetpp`: the HRNet++ recipe on toy persons with mmpose's
stock train.py / test.py.

1. generate the toy persons dataset (seeded),
2. optionally (``--baseline``) train the plain-HRNet heatmap model with the
   same budget, for the HRNet vs HRNet++ comparison,
3. train the HRNet++ heatmap model (stage 1),
4. fine-tune it with the soft-argmax head (stage 2, ``load_from`` = the best
   stage-1 checkpoint),
5. merge both checkpoints into one ensemble checkpoint
   (tools/merge_ensemble_checkpoint.py),
6. evaluate with the stock test.py, all on the same val split: heatmap
   model, regression model, regression + TTA, ensemble, ensemble + TTA
   (and the baseline), and print a table of coco/AP.

    python tools/run_demo_hrnetpp.py [--baseline] [--num-images N]
        [--work-dir DIR] [--hm-epochs 20] [--sa-epochs 6]

``--hm-epochs`` / ``--sa-epochs`` shorten (or lengthen) both stages'
schedules: max_epochs, the cosine schedule's length, one validation and one
checkpoint at the end.
"""
import argparse
import glob
import os
import os.path as osp
import sys
import time

from mmkp_ext.utils import parse_metric, run_or_exit, toy_data_options

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG_DIR = 'configs/hrnetpp/toy_persons/'
BASELINE = CFG_DIR + 'td-hm_hrnet-w16-tiny_1xb16-20e_toy-persons-128x96.py'
HEATMAP = CFG_DIR + 'td-hm_hrnetpp-w16-tiny_1xb16-20e_toy-persons-128x96.py'
SOFTARGMAX = CFG_DIR + 'td-sa_hrnetpp-w16-tiny_1xb16-6e_toy-persons-128x96.py'
SOFTARGMAX_TTA = CFG_DIR + \
    'td-sa-tta_hrnetpp-w16-tiny_1xb16-6e_toy-persons-128x96.py'
ENSEMBLE = CFG_DIR + 'td-ensemble-hm-sa_hrnetpp-w16-tiny_toy-persons-128x96.py'
ENSEMBLE_TTA = CFG_DIR + \
    'td-ensemble-hm-sa-tta_hrnetpp-w16-tiny_toy-persons-128x96.py'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo_hrnetpp')
    parser.add_argument('--data-root', default='data/toy_persons')
    parser.add_argument('--num-images', type=int, default=400)
    parser.add_argument(
        '--baseline',
        action='store_true',
        help='also train and test the plain-HRNet heatmap model')
    parser.add_argument('--hm-epochs', type=int, default=None,
                        help='heatmap stage epochs (config: 20)')
    parser.add_argument('--sa-epochs', type=int, default=None,
                        help='soft-argmax stage epochs (config: 6)')
    return parser.parse_args()


def schedule_options(epochs, cosine_index):
    """cfg-options giving a config `epochs` epochs: its cosine scheduler
    (entry `cosine_index` of param_scheduler) spans them, and validation and
    checkpointing happen once, at the end."""
    if epochs is None:
        return []
    if epochs < 1:
        sys.exit(f'epochs must be >= 1, got {epochs}')
    return [f'train_cfg.max_epochs={epochs}',
            f'train_cfg.val_interval={epochs}',
            f'default_hooks.checkpoint.interval={epochs}',
            f'param_scheduler.{cosine_index}.T_max={epochs}',
            f'param_scheduler.{cosine_index}.end={epochs}']


def run(cmd):
    """Run a command from the repository root, streaming its output;
    exit with its message if it fails."""
    return run_or_exit(cmd, REPO)


def best_checkpoint(work_dir):
    found = glob.glob(osp.join(REPO, work_dir, 'best_coco_AP_epoch_*.pth'))
    if not found:
        sys.exit(f'no best_coco_AP checkpoint in {work_dir}')
    return max(found, key=osp.getmtime)


def main():
    args = parse_args()
    times, aps = {}, {}
    root = args.data_root.rstrip('/') + '/'
    data_options = toy_data_options(root)

    def timed(name, cmd):
        t0 = time.time()
        out = run(cmd)
        times[name] = time.time() - t0
        return out

    def train(name, config, work_dir, *extra):
        timed(f'train {name}', [
            sys.executable, 'tools/train.py', config, '--work-dir', work_dir,
            '--cfg-options', *extra, *data_options
        ])
        return best_checkpoint(work_dir)

    def test(name, config, ckpt):
        out = timed(f'test {name}', [
            sys.executable, 'tools/test.py', config, ckpt, '--work-dir',
            osp.join(args.work_dir, 'test'), '--cfg-options', *data_options
        ])
        try:
            aps[name] = (parse_metric(out, 'coco/AP'), config)
        except ValueError as e:
            sys.exit(str(e))

    timed('data', [
        sys.executable, 'tools/make_toy_dataset.py', '--kind', 'persons',
        '--out', args.data_root, '--num-images', str(args.num_images),
        '--seed', '0'
    ])
    if args.baseline:
        base_ckpt = train('HRNet heatmap', BASELINE,
                          osp.join(args.work_dir, 'hrnet_heatmap'),
                          *schedule_options(args.hm_epochs, 1))
    hm_ckpt = train('HRNet++ heatmap', HEATMAP,
                    osp.join(args.work_dir, 'hrnetpp_heatmap'),
                    *schedule_options(args.hm_epochs, 1))
    sa_ckpt = train('HRNet++ soft-argmax', SOFTARGMAX,
                    osp.join(args.work_dir, 'hrnetpp_softargmax'),
                    f'load_from={hm_ckpt}',
                    *schedule_options(args.sa_epochs, 0))
    merged = osp.join(args.work_dir, 'hrnetpp_ensemble.pth')
    timed('merge', [
        sys.executable, 'tools/merge_ensemble_checkpoint.py', ENSEMBLE,
        merged, '--checkpoints', hm_ckpt, sa_ckpt
    ])

    if args.baseline:
        test('HRNet heatmap', BASELINE, base_ckpt)
    test('HRNet++ heatmap', HEATMAP, hm_ckpt)
    test('HRNet++ regression (soft-argmax)', SOFTARGMAX, sa_ckpt)
    test('HRNet++ regression + TTA', SOFTARGMAX_TTA, sa_ckpt)
    test('HRNet++ ensemble', ENSEMBLE, merged)
    test('HRNet++ ensemble + TTA', ENSEMBLE_TTA, merged)

    print('\n==== mmkp_ext HRNet++ demo summary ====')
    print(f'data: {args.num_images} images in {args.data_root}; every row '
          'is the stock test.py on the same val split (flip test on)')
    width = max(len(k) for k in aps)
    for name, (ap, config) in aps.items():
        print(f'{name:<{width}}  coco/AP {ap:.4f}  ({osp.basename(config)})')
    print('time: ' + ', '.join(f'{k} {v:.0f} s' for k, v in times.items()) +
          f' (total {sum(times.values()):.0f} s)')
    print(f"coco/AP: {aps['HRNet++ ensemble + TTA'][0]:.4f}")


if __name__ == '__main__':
    os.environ.setdefault('PYTHONWARNINGS', 'ignore')
    main()

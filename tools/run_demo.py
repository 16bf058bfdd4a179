"""The main job (`make demo`): toy data -> stock train.py -> stock test.py.

Runs the HRNet++ two-stage recipe on the generated toy persons dataset with
mmpose's stock scripts only:

1. generate the dataset (seeded, ``data/toy_persons``),
2. stage 1: train the heatmap model (``td-hm_...``),
3. stage 2: fine-tune it with the soft-argmax head (``td-sa_...``,
   ``load_from`` = the best stage-1 checkpoint),
4. evaluate the best stage-2 checkpoint with the stock ``test.py``, which
   prints the COCO keypoint metrics and writes visualised predictions,
5. print a summary with ``coco/AP`` of both stages and the time of each step.

    python tools/run_demo.py [--num-images N] [--work-dir DIR]
"""
import argparse
import glob
import os
import os.path as osp
import sys
import time

from mmkp_ext.utils import (parse_metric, parse_metric_values, run_or_exit,
                            toy_data_options)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CFG_DIR = 'configs/soft_argmax/toy_persons/'
HEATMAP_CONFIG = CFG_DIR + 'td-hm_res18-s8_1xb16-20e_toy-persons-128x96.py'
SOFTARGMAX_CONFIG = CFG_DIR + 'td-sa_res18-s8_1xb16-6e_toy-persons-128x96.py'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/toy_persons')
    parser.add_argument('--num-images', type=int, default=400)
    return parser.parse_args()


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
    times = {}
    root = args.data_root.rstrip('/') + '/'
    data_options = toy_data_options(root)

    t0 = time.time()
    run([sys.executable, 'tools/make_toy_dataset.py', '--kind', 'persons',
         '--out', args.data_root, '--num-images', str(args.num_images),
         '--seed', '0'])
    times['data'] = time.time() - t0

    stage1_dir = osp.join(args.work_dir, 'stage1_heatmap')
    t0 = time.time()
    stage1_out = run([sys.executable, 'tools/train.py', HEATMAP_CONFIG,
                      '--work-dir', stage1_dir, '--cfg-options',
                      *data_options])
    times['stage 1 (heatmap)'] = time.time() - t0
    stage1_ckpt = best_checkpoint(stage1_dir)

    stage2_dir = osp.join(args.work_dir, 'stage2_softargmax')
    t0 = time.time()
    run([sys.executable, 'tools/train.py', SOFTARGMAX_CONFIG, '--work-dir',
         stage2_dir, '--cfg-options', f'load_from={stage1_ckpt}',
         *data_options])
    times['stage 2 (soft-argmax)'] = time.time() - t0
    stage2_ckpt = best_checkpoint(stage2_dir)

    t0 = time.time()
    test_out = run([sys.executable, 'tools/test.py', SOFTARGMAX_CONFIG,
                    stage2_ckpt, '--work-dir', stage2_dir, '--show-dir', 'vis',
                    '--cfg-options', *data_options])
    times['test'] = time.time() - t0

    try:
        test_ap = parse_metric(test_out, 'coco/AP')
        stage1_best = max(parse_metric_values(stage1_out, 'coco/AP'),
                          default=float('nan'))
    except ValueError as e:
        sys.exit(str(e))
    # test.py writes into a new timestamped folder of the work dir.
    vis_dirs = glob.glob(osp.join(REPO, stage2_dir, '*', 'vis'))
    vis_dir = max(vis_dirs, key=osp.getmtime) if vis_dirs else None
    print('\n==== mmkp_ext demo summary ====')
    print(f'data:        {args.num_images} images in {args.data_root}')
    print(f'stage 1:     {HEATMAP_CONFIG}\n'
          f'             best heatmap coco/AP {stage1_best:.4f}')
    print(f'stage 2:     {SOFTARGMAX_CONFIG}\n'
          f'             {osp.relpath(stage2_ckpt, REPO)}')
    print('time:        ' + ', '.join(f'{k} {v:.0f} s'
                                      for k, v in times.items()) +
          f' (total {sum(times.values()):.0f} s)')
    if vis_dir:
        print(f'predictions: {len(os.listdir(vis_dir))} images in '
              f'{osp.relpath(vis_dir, REPO)}')
    print(f'coco/AP: {test_ap:.4f}')


if __name__ == '__main__':
    os.environ.setdefault('PYTHONWARNINGS', 'ignore')
    main()

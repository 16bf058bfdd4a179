"""Train and evaluate one method on generated toy data with mmpose's stock
train.py / test.py, then draw a few predictions and print a summary table.

Methods (recipes in mmkp_ext/demo/recipes.py):
  softargmax  ResNet-18 heatmap -> soft-argmax fine-tuning   (make demo)
  centernet   grouped CenterNet on toy fashion, rescore vs nearest decoding
  poseur      tiny Poseur (RLE regression)
  hrnetpp     HRNet++ heatmap -> soft-argmax, ensemble, ensemble + TTA
  softgated   soft-gated hourglass, histogram of the learned gates
  swahr       bottom-up HigherHRNet vs SWAHR

Examples:
    python tools/demo/run_demo.py softargmax
    python tools/demo/run_demo.py swahr --num-images 40 --epochs 1   # smoke
    python tools/demo/run_demo.py hrnetpp --dry-run

Each step prints "stage k of n"; the work dir (default
work_dirs/demo_<method>) holds every stage's checkpoints and logs and
pictures/vis/ the drawn predictions.
"""
import argparse
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
METHODS = ('softargmax', 'centernet', 'poseur', 'hrnetpp', 'softgated',
           'swahr')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('method', choices=METHODS)
    parser.add_argument('--work-dir', help='default: work_dirs/demo_<method>')
    parser.add_argument('--data-root', help="default: the recipe's")
    parser.add_argument('--num-images', type=int,
                        help="toy images to generate (default: the recipe's)")
    parser.add_argument('--epochs', type=int,
                        help='train every stage this many epochs '
                        "(default: the recipe's)")
    parser.add_argument('--dry-run', action='store_true',
                        help='print the steps without running them')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmkp_ext.demo import RECIPES, DemoError, plan, run_recipe, summary
    recipe = RECIPES[args.method]
    if args.dry_run:
        print('\n'.join(plan(recipe, args.epochs)))
        return
    os.environ.setdefault('PYTHONWARNINGS', 'ignore')
    try:
        res = run_recipe(recipe, REPO, work_dir=args.work_dir,
                         data_root=args.data_root,
                         num_images=args.num_images, epochs=args.epochs)
    except DemoError as err:
        sys.exit(f'demo-{args.method}: {err}')
    print(summary(recipe, res))


if __name__ == '__main__':
    main()

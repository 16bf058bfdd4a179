"""Write a deterministic synthetic keypoint dataset in COCO format.

Example::

    python tools/dataset_converters/make_toy_dataset.py --kind persons --out data/toy_persons \
        --num-images 200 --seed 0 --val-fraction 0.2
"""
import argparse
import time


#: mmkp_ext.datasets.TOY_KINDS, written out so that --help answers without
#: importing torch (tests/test_tools/test_cli_help.py keeps them equal).
TOY_KINDS = ('persons', 'fashion')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--kind', required=True, choices=TOY_KINDS)
    parser.add_argument('--out', required=True, help='output directory')
    parser.add_argument('--num-images', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--val-fraction', type=float, default=0.2)
    parser.add_argument(
        '--image-size',
        type=int,
        nargs='+',
        default=[256],
        metavar='PX',
        help='one value (square) or WIDTH HEIGHT')
    parser.add_argument('--image-ext', default='jpg', choices=('jpg', 'png'))
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmkp_ext.datasets import make_toy_dataset
    if len(args.image_size) not in (1, 2):
        raise SystemExit('--image-size takes one value or WIDTH HEIGHT')
    size = (args.image_size[0]
            if len(args.image_size) == 1 else tuple(args.image_size))
    start = time.perf_counter()
    try:
        summary = make_toy_dataset(
            args.kind,
            args.out,
            num_images=args.num_images,
            seed=args.seed,
            val_fraction=args.val_fraction,
            image_size=size,
            image_ext=args.image_ext)
    except ValueError as err:
        raise SystemExit(f'error: {err}')
    seconds = time.perf_counter() - start
    print(f'toy {summary["kind"]} dataset in {summary["out_dir"]} '
          f'({summary["num_keypoints"]} keypoints, {seconds:.2f} s)')
    for split in ('train', 'val'):
        print(f'  {split}: {summary[f"num_{split}_images"]} images, '
              f'{summary[f"num_{split}_instances"]} instances -> '
              f'{summary[f"{split}_ann_file"]}')


if __name__ == '__main__':
    main()

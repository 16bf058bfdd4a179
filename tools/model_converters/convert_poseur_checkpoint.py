"""Convert an official Poseur checkpoint (aim-uofa/Poseur) for mmkp_ext.

    python tools/model_converters/convert_poseur_checkpoint.py official.pth converted.pth \
        --config configs/poseur/coco/poseur_res50_8xb32-325e_coco-256x192.py

The config must describe the same model (backbone, decoder layers, width):
the converted weights are checked against it (every key mapped, no key
missing or left over, same shapes) before anything is written. Then:

    python tools/test.py CONFIG converted.pth
"""
import argparse
import sys


DEFAULT_CONFIG = 'configs/poseur/coco/poseur_res50_8xb32-325e_coco-256x192.py'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='official Poseur checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument(
        '--config', default=DEFAULT_CONFIG,
        help='our config of the same model (checked against)')
    parser.add_argument(
        '--no-check', action='store_true',
        help='only rename the keys, do not build the model to check them')
    return parser.parse_args()


def main():
    args = parse_args()
    from mmkp_ext.converters.poseur_checkpoint import (
        PoseurCheckpointError, convert_poseur_checkpoint)
    try:
        converted = convert_poseur_checkpoint(
            args.src, args.dst, None if args.no_check else args.config)
    except PoseurCheckpointError as e:
        sys.exit(f'error: {e}')
    print(f'converted {len(converted)} tensors -> {args.dst}')


if __name__ == '__main__':
    main()

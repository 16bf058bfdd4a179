"""Merge the members' checkpoints of an EnsemblePoseEstimator config into
one checkpoint that mmpose's stock tools/test.py loads.

    python tools/model_converters/merge_ensemble_checkpoint.py ENSEMBLE_CONFIG OUT.pth \
        [--checkpoints HM.pth SA.pth ...]

Without --checkpoints the members' ``checkpoint`` entries of the config are
used. Each checkpoint is loaded strictly into its member (a mismatch stops
with the member's name). Then:

    python tools/test.py ENSEMBLE_CONFIG OUT.pth
"""
import argparse
import sys



def parse_args():
    parser = argparse.ArgumentParser(description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='ensemble config file')
    parser.add_argument('out', help='output checkpoint path')
    parser.add_argument(
        '--checkpoints',
        nargs='+',
        help='one checkpoint per member, in the config\'s order')
    return parser.parse_args()


def main():
    args = parse_args()
    from mmkp_ext.converters.ensemble_checkpoint import \
        merge_ensemble_checkpoints
    try:
        used = merge_ensemble_checkpoints(args.config, args.out,
                                          args.checkpoints)
    except (ValueError, OSError) as e:  # incl. unreadable / unsafe files
        sys.exit(f'error: {e}')
    for i, path in enumerate(used):
        print(f'members[{i}] <- {path}')
    print(f'saved {args.out}')


if __name__ == '__main__':
    main()

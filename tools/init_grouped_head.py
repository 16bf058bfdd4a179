"""Initialise a grouped CenterNet model from an ungrouped checkpoint: the
keypoint branches' last-layer rows of a group = mean of its members' rows
(biases likewise, x and y rows separately for regression); every other
tensor is copied. The result loads into the grouped model with strict=True;
train from it with ``load_from``:

    python tools/init_grouped_head.py UNGROUPED.pth GROUPING.json OUT.pth
    python tools/train.py GROUPED_CONFIG --cfg-options load_from=OUT.pth

Library: ``mmkp_ext.converters.grouped_centernet_head.convert_checkpoint``.
"""
import argparse
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    p.add_argument('checkpoint', help='ungrouped CenterNetPoseHead checkpoint')
    p.add_argument('grouping', help='grouping JSON (docs/grouping_json.md)')
    p.add_argument('out', help='checkpoint to write')
    p.add_argument('--head-prefix', default=None,
                   help="state-dict prefix of the head (found if omitted)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmkp_ext.converters.grouped_centernet_head import convert_checkpoint
    try:
        info = convert_checkpoint(args.checkpoint, args.grouping, args.out,
                                  prefix=args.head_prefix)
    except (KeyError, ValueError, FileNotFoundError) as e:
        sys.exit(f'error: {e.args[0] if e.args else e}')
    print(f'wrote {args.out}: head {info["prefix"]!r}, {info["num_keypoints"]}'
          f' keypoints -> {info["num_reg_groups"]} regression / '
          f'{info["num_hm_groups"]} heatmap groups (member means); '
          f'{info["copied"]} other tensors copied')
    return info


if __name__ == '__main__':
    main()

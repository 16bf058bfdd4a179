"""Initialise a grouped CenterNet model from an ungrouped checkpoint: the
keypoint branches' last-layer rows of a group = mean of its members' rows
(biases likewise, x and y rows separately for regression); every other
tensor is copied. The result loads into the grouped model with strict=True;
train from it with ``load_from``:

    python tools/model_converters/init_grouped_head.py UNGROUPED.pth GROUPING.json OUT.pth \
        --config GROUPED_CONFIG
    python tools/train.py GROUPED_CONFIG --cfg-options load_from=OUT.pth

With ``--config`` (the grouped config; its head's grouping_file is set to
GROUPING.json), the result is checked against that model first: a checkpoint
whose other tensors do not fit (another backbone, head_conv or number of
categories) is refused with every difference named and nothing is written.
Without it the tensors are not checked here (loading OUT.pth into a model it
does not fit still fails, naming the tensors).

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
    p.add_argument('--config', default=None,
                   help='the grouped model config: refuse a checkpoint '
                   'whose tensors do not fit its model (recommended)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import mmkp_ext  # noqa: F401  (registers the models for --config)
    from mmkp_ext.converters.grouped_centernet_head import (
        convert_checkpoint, grouped_model_state)
    try:
        model_state = (
            grouped_model_state(args.config, args.grouping)
            if args.config else None)
        info = convert_checkpoint(args.checkpoint, args.grouping, args.out,
                                  prefix=args.head_prefix,
                                  model_state=model_state)
    except (KeyError, ValueError, FileNotFoundError) as e:
        sys.exit(f'error: {e.args[0] if e.args else e}')
    print(f'wrote {args.out}: head {info["prefix"]!r}, {info["num_keypoints"]}'
          f' keypoints -> {info["num_reg_groups"]} regression / '
          f'{info["num_hm_groups"]} heatmap groups (member means); '
          f'{info["copied"]} other tensors copied; ' +
          ('fits the model of --config' if info['checked'] else
           'not checked against a model (pass --config)'))
    return info


if __name__ == '__main__':
    main()

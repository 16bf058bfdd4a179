"""Convert the authors' CenterNet human-pose checkpoint (xingyizhou/CenterNet
multi_pose DLA-34: multi_pose_dla_3x.pth, model_best.pth) for mmkp_ext.

Every key is mapped (base.* -> backbone, dla_up.* / ida_up.* -> neck with
deformable convolutions, heads hm / reg / wh / hps / hm_hp / hp_offset ->
CenterNetPoseHead branches); unmapped keys are named and nothing is written.
The result is loaded strictly into --config's model before it is saved.

Examples:
    python tools/model_converters/convert_centernet_checkpoint.py multi_pose_dla_3x.pth \\
        work_dirs/multi_pose_dla_3x_mmkp.pth
    python tools/test.py \\
        configs/centernet_grouping/coco/cn-pose_dla34-dcn_authors-3x_coco-512x512.py \\
        work_dirs/multi_pose_dla_3x_mmkp.pth
"""
import argparse
import sys

DEFAULT_CONFIG = ('configs/centernet_grouping/coco/'
                  'cn-pose_dla34-dcn_authors-3x_coco-512x512.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help="the authors' checkpoint")
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='config of the target model, checked with a '
                        f'strict load (default: {DEFAULT_CONFIG})')
    parser.add_argument('--no-check', action='store_true',
                        help='only rename the keys, do not build the model')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import mmkp_ext  # noqa: F401  (after parsing: --help stays fast)
    from mmkp_ext.converters.centernet_checkpoint import \
        convert_centernet_checkpoint
    try:
        info = convert_centernet_checkpoint(
            args.src, args.dst, None if args.no_check else args.config)
    except (FileNotFoundError, KeyError, ValueError, TypeError) as err:
        sys.exit(f'convert_centernet_checkpoint: {err}')
    print(f'converted {info["converted"]} tensors -> {args.dst}')


if __name__ == '__main__':
    main()

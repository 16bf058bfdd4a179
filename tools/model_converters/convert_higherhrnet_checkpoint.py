"""Convert a published HigherHRNet / SWAHR checkpoint for mmkp_ext's
HRNet + HigherHRNetHead bottom-up model.

Sources: the mmpose 0.x model zoo (AEHigherResolutionHead) and the official
SWAHR releases (greatlog/SWAHR-HumanPose PoseHigherResolutionNet). Every key
is mapped or the tool stops listing the unmapped ones; with --config the
result is checked against the model the config builds (names and shapes) and
loaded strictly before it is written:

    python tools/model_converters/convert_higherhrnet_checkpoint.py SRC.pth OUT.pth \\
        --config configs/swahr/coco/<config>.py
    python tools/test.py <config> OUT.pth

Library: ``mmkp_ext.converters.higherhrnet_checkpoint``.
"""
import argparse
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    p.add_argument('src', help='published checkpoint (.pth)')
    p.add_argument('out', help='checkpoint to write')
    p.add_argument('--config', default=None,
                   help='config of the target model (checks and strict load)')
    p.add_argument('--layout', default='auto',
                   choices=['auto', 'mmpose0x', 'swahr'],
                   help='source key layout (default: detect)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmkp_ext.converters.higherhrnet_checkpoint import \
        convert_higherhrnet_checkpoint
    try:
        info = convert_higherhrnet_checkpoint(
            args.src, args.out, config=args.config, layout=args.layout)
    except (KeyError, ValueError, FileNotFoundError) as e:
        sys.exit(f'error: {e.args[0] if e.args else e}')
    print(f'wrote {args.out}: {info["num_tensors"]} tensors from the '
          f'{info["layout"]} layout' +
          (', checked against the config and loaded strictly'
           if info['checked'] else ' (no --config: names and head shapes '
           'checked only)'))
    return info


if __name__ == '__main__':
    main()

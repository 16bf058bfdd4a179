"""Print parameters and GFLOPs of a config's model, counting grid_sample
(deformable attention) -- see mmkp_ext/analysis/complexity.py for the
convention (1 FLOP = 1 multiply-add; bilinear grid_sample = 4 per output
element) and for what is not counted (listed in the output).

Example::

    python tools/analysis_tools/get_complexity.py CONFIG  # the config's input size
    python tools/analysis_tools/get_complexity.py CONFIG --input-shape 256 192
"""
import argparse


def parse_args(argv=None):
    from mmengine.config import DictAction  # no torch: --help stays fast
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--input-shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input height and width (default: the config\'s input_size)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='key=value overrides merged into the config')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmkp_ext.analysis import complexity_from_config
    result = complexity_from_config(args.config, args.input_shape,
                                    args.cfg_options)
    print(result.summary())


if __name__ == '__main__':
    main()

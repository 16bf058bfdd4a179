"""Convert the official LSP / LSP-extended ``joints.mat`` to COCO-style json
for mmpose's CocoDataset (library: mmkp_ext.datasets.lsp_conversion).

    # LSP: standard split, first 1000 people train, last 1000 test
    python tools/dataset_converters/convert_lsp.py data/lsp/lsp_dataset/joints.mat \
        data/lsp/lsp_dataset/images data/lsp/annotations/lsp_train.json \
        --stop 1000 --image-prefix lsp_dataset/images/
    python tools/dataset_converters/convert_lsp.py data/lsp/lsp_dataset/joints.mat \
        data/lsp/lsp_dataset/images data/lsp/annotations/lsp_test.json \
        --start 1000 --image-prefix lsp_dataset/images/
    # LSP-extended (training only)
    python tools/dataset_converters/convert_lsp.py data/lsp/lspet_dataset/joints.mat \
        data/lsp/lspet_dataset/images data/lsp/annotations/lspet_train.json \
        --image-prefix lspet_dataset/images/
"""
import argparse


#: mmkp_ext.datasets.lsp_conversion.LSP_LAYOUTS, written out so that --help
#: answers without importing torch (tests/test_tools/test_cli_help.py keeps
#: them equal).
LSP_LAYOUTS = ('lsp', 'lspet')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('mat', help='joints.mat of LSP or LSP-extended')
    parser.add_argument('image_dir', help='folder with the im*.jpg images')
    parser.add_argument('out', help='output json')
    parser.add_argument('--layout', default='auto',
                        choices=['auto', *LSP_LAYOUTS],
                        help='lsp = 3x14xN, lspet = 14x3xN (auto: by shape)')
    parser.add_argument('--start', type=int, default=0,
                        help='first person (0-based)')
    parser.add_argument('--stop', type=int, default=None,
                        help='one past the last person')
    parser.add_argument('--box-padding', type=float, default=0.1)
    parser.add_argument('--image-prefix', default='',
                        help='prepended to every file_name')
    args = parser.parse_args(argv)
    from mmkp_ext.datasets.lsp_conversion import convert_lsp
    summary = convert_lsp(args.mat, args.image_dir, args.out, args.layout,
                          args.start, args.stop, args.box_padding,
                          args.image_prefix)
    print(f"{summary['layout']}: {summary['num_images']} images, "
          f"{summary['num_annotations']} people "
          f"({summary['num_skipped']} without usable joints) -> "
          f"{summary['out_file']}")


if __name__ == '__main__':
    main()

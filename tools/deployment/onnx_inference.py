"""Run a network exported by tools/deployment/pytorch2onnx.py in ONNX Runtime
on images and decode it with the config's own head and codec (flip test
off); write one JSON per image and, with --show-dir, drawn predictions.

Top-down configs run on the whole image as one person box; bottom-up
configs keep instances scoring at least --score-thr.

Examples:
    python tools/deployment/onnx_inference.py \\
        configs/poseur/toy_persons/poseur_res18-tiny_1xb16-40e_toy-persons-128x96.py \\
        poseur.onnx data/toy_persons/images/val --out-dir outputs/onnx

Outputs: OUT_DIR/predictions/<stem>.json ({"instances": [{"keypoints": K x 2
image pixels, "keypoint_scores": K, ...}]}) and OUT_DIR/vis/<image>.
Needs onnxruntime: pip install -r requirements/tests.txt.
"""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='the config the model was exported '
                        'from (pipeline, codec, decoding)')
    parser.add_argument('onnx', help='.onnx file from pytorch2onnx.py')
    parser.add_argument('input', help='image file or folder of images')
    parser.add_argument('--out-dir', default='outputs/onnx_inference',
                        help='output folder (default: outputs/onnx_inference)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='bottom-up: minimum instance score (default 0.3)')
    parser.add_argument('--kpt-thr', type=float, default=0.3,
                        help='minimum keypoint score to draw (default: 0.3)')
    parser.add_argument('--no-vis', action='store_true',
                        help='write the JSON files only')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import mmkp_ext  # noqa: F401
    from mmkp_ext.deployment.onnx_inference import run_onnx_inference
    try:
        written = run_onnx_inference(args.config, args.onnx, args.input,
                                     args.out_dir, score_thr=args.score_thr,
                                     kpt_thr=args.kpt_thr,
                                     draw=not args.no_vis)
    except (FileNotFoundError, ValueError, ImportError) as err:
        sys.exit(f'onnx_inference: {err}')
    for img, path in written.items():
        print(f'{img} -> {path}')


if __name__ == '__main__':
    main()

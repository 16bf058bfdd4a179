"""Predict keypoints on an image or a folder of images with any mmkp_ext
config and checkpoint; write drawn predictions and one JSON per image.

Top-down configs run on the whole image as one person box (use mmpose's
``MMPoseInferencer`` with a detector where a full mmcv is installed);
bottom-up configs (CenterNet, HigherHRNet / SWAHR) find every instance and
keep those scoring at least --score-thr.

Examples:
    python tools/demo/image_demo.py \\
        configs/swahr/toy_persons/swahr_hrnet-w16-tiny_1xb16-12e_toy-persons-128x128.py \\
        work_dirs/swahr/best_coco_AP_epoch_12.pth data/toy_persons/images/val \\
        --out-dir outputs/swahr --score-thr 0.2
    python tools/demo/image_demo.py CONFIG CKPT photo.jpg --device cuda:0

Outputs: OUT_DIR/vis/<image> (keypoints, skeleton and boxes drawn) and
OUT_DIR/predictions/<stem>.json ({"instances": [{"keypoints": K x 2 image
pixels, "keypoint_scores": K, "bbox": xyxy, "bbox_score"}]}).
The library function is mmkp_ext.apis.run_image_demo.
"""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint',
                        help="checkpoint file, or 'none' for random weights")
    parser.add_argument('input', help='image file or folder of images')
    parser.add_argument('--out-dir', default='outputs/image_demo',
                        help='output folder (default: outputs/image_demo)')
    parser.add_argument('--device', default='cpu',
                        help='device, e.g. cpu or cuda:0 (default: cpu)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='bottom-up: minimum instance score to keep '
                        '(default: 0.3)')
    parser.add_argument('--kpt-thr', type=float, default=0.3,
                        help='minimum keypoint score to draw (default: 0.3)')
    parser.add_argument('--no-bbox', action='store_true',
                        help='do not draw boxes')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # Imported after parsing so that --help answers without loading torch.
    import mmkp_ext  # noqa: F401
    from mmkp_ext.apis import run_image_demo
    checkpoint = None if args.checkpoint.lower() == 'none' else args.checkpoint
    try:
        written = run_image_demo(args.config, checkpoint, args.input,
                                 args.out_dir, device=args.device,
                                 score_thr=args.score_thr,
                                 kpt_thr=args.kpt_thr,
                                 draw_bbox=not args.no_bbox)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f'image_demo: {err}')
    for img, path in written.items():
        print(f'{img} -> {path}')
    print(f'drawn predictions in {args.out_dir}/vis')


if __name__ == '__main__':
    main()

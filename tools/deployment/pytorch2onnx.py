"""Export the network of an mmkp_ext (or mmpose) config to ONNX.

The graph is the network only (backbone, neck, head forward, as
``model(inputs, mode='tensor')``), as mmdeploy exports mmpose models;
decoding stays with the config's codec in Python (tools/deployment/
onnx_inference.py). The output structure is stored in the file's metadata.

Examples:
    python tools/deployment/pytorch2onnx.py \\
        configs/poseur/toy_persons/poseur_res18-tiny_1xb16-40e_toy-persons-128x96.py \\
        work_dirs/poseur/epoch_30.pth poseur.onnx --verify
    python tools/deployment/pytorch2onnx.py CONFIG none random.onnx --shape 256 192

--verify runs the exported file in ONNX Runtime on a random input and
prints the largest difference to PyTorch per output. Ensembles are not a
single network: export each member's config. Needs onnx (and onnxruntime
for --verify): pip install -r requirements/tests.txt.
"""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint',
                        help="checkpoint file, or 'none' for random weights")
    parser.add_argument('out', help='output .onnx file')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='network input height and width (default: '
                        "the codec's input_size)")
    parser.add_argument('--opset', type=int, default=17,
                        help='ONNX opset of the TorchScript-based exporter '
                        '(default: 17)')
    parser.add_argument('--dynamo', action='store_true',
                        help="use torch's torch.export-based exporter "
                        '(needs onnxscript)')
    parser.add_argument('--static-batch', action='store_true',
                        help='fix the batch size to 1')
    parser.add_argument('--verify', action='store_true',
                        help='compare ONNX Runtime with PyTorch on a random '
                        'input')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # Imported after parsing so that --help answers without loading torch.
    import torch

    import mmkp_ext  # noqa: F401
    from mmpose.apis import init_model

    from mmkp_ext.deployment import (OnnxNetwork, TensorModeWrapper,
                                     compare_outputs, export_onnx,
                                     network_input_shape)
    checkpoint = None if args.checkpoint.lower() == 'none' else args.checkpoint
    try:
        model = init_model(args.config, checkpoint, device='cpu')
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f'pytorch2onnx: {err}')
    shape = ((1, 3, *args.shape) if args.shape else
             network_input_shape(model.cfg))
    try:
        names = export_onnx(model, args.out, shape,
                            opset_version=args.opset, dynamo=args.dynamo,
                            dynamic_batch=not args.static_batch)
    except (TypeError, ImportError) as err:
        sys.exit(f'pytorch2onnx: {err}')
    print(f'wrote {args.out}: input (N, 3, {shape[2]}, {shape[3]}), '
          f'outputs {", ".join(names)}')
    if args.verify:
        x = torch.randn(*shape)
        with torch.no_grad():
            ref = TensorModeWrapper(model)(x)
        diffs = compare_outputs(list(ref),
                                OnnxNetwork(args.out).run_flat(x.numpy()))
        for name, diff in diffs.items():
            print(f'{name}: max |onnx - torch| = {diff:.3g}')


if __name__ == '__main__':
    main()

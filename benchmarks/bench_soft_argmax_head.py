"""Speed and memory of SoftArgmaxHead against mmpose's IntegralRegressionHead.

Both heads get the same features and the same final 1x1 convolution; the
table gives the median wall time of ``forward`` (training path: logits ->
coordinates), of ``forward + backward`` and of ``predict`` (which for
SoftArgmaxHead also computes the keypoint scores and decodes), and the peak
MiB of tensors allocated during one forward + backward
(``_harness.peak_tensor_mib``: the torch profiler's allocation records).
Times are medians of ``--repeats`` calls after ``--warmup`` untimed ones.

    python benchmarks/bench_soft_argmax_head.py [--batch 32] [--repeats 5]
"""
import torch

import mmkp_ext  # noqa: F401
from _harness import (peak_tensor_mib, script_parser, table_header,
                      table_row, time_callable, torch_threads, write_json)
from mmpose.registry import MODELS
from mmpose.structures import PoseDataSample


def build_heads(channels, num_joints, hw, alpha):
    codec = dict(type='RegressionLabel', input_size=(hw[1] * 4, hw[0] * 4))
    ours = MODELS.build(
        dict(type='SoftArgmaxHead', in_channels=channels,
             num_joints=num_joints, alpha=alpha, decoder=codec))
    ref = MODELS.build(
        dict(type='IntegralRegressionHead', in_channels=channels,
             in_featuremap_size=(hw[1], hw[0]), num_joints=num_joints,
             beta=alpha, deconv_out_channels=None, decoder=codec))
    with torch.no_grad():
        ref.final_layer.weight.copy_(ours.final_layer.weight)
        ref.final_layer.bias.copy_(ours.final_layer.bias)
    return ours, ref


def main():
    parser = script_parser(__doc__, repeats=5, warmup=1, threads=2)
    parser.add_argument('--batch', type=int, default=32)
    args = parser.parse_args()
    with torch_threads(args.threads):
        rows = run(args)
    write_json(args.json, rows)


def run(args):
    def ms(fn):
        return time_callable(fn, args.repeats, args.warmup).median_ms

    print(f'torch {torch.__version__}, {args.threads} threads, '
          f'batch {args.batch}, median of {args.repeats}')
    print(table_header(['K', 'heatmap', 'head', 'forward ms', 'fwd+bwd ms',
                        'predict ms', 'peak fwd+bwd MiB']))
    rows = []
    for num_joints, hw in ((17, (64, 48)), (294, (64, 48))):
        channels = 32
        ours, ref = build_heads(channels, num_joints, hw, 60.0)
        feats = (torch.randn(args.batch, channels, *hw), )
        samples = [
            PoseDataSample(metainfo=dict(input_size=(hw[1] * 4, hw[0] * 4)))
            for _ in range(args.batch)
        ]
        for name, head in (('SoftArgmaxHead', ours),
                           ('IntegralRegressionHead', ref)):

            def fwd():
                with torch.no_grad():
                    out = head.forward(feats)
                return out

            def fwd_bwd():
                out = head.forward(feats)
                coords = out[0] if isinstance(out, tuple) else out
                coords.sum().backward()

            def pred():
                with torch.no_grad():
                    head.predict(feats, samples, test_cfg={})

            row = dict(K=num_joints, heatmap=f'{hw[0]}x{hw[1]}', head=name,
                       forward_ms=ms(fwd), fwd_bwd_ms=ms(fwd_bwd),
                       predict_ms=ms(pred), peak_mib=peak_tensor_mib(fwd_bwd))
            rows.append(row)
            print(table_row([
                num_joints, row['heatmap'], name, f'{row["forward_ms"]:.2f}',
                f'{row["fwd_bwd_ms"]:.2f}', f'{row["predict_ms"]:.2f}',
                f'{row["peak_mib"]:.1f}'
            ]), flush=True)
    return rows


if __name__ == '__main__':
    main()

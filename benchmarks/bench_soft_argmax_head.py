"""Speed and memory of SoftArgmaxHead against mmpose's IntegralRegressionHead.

Both heads get the same features and the same final 1x1 convolution; the
table gives the median wall time of ``forward`` (training path: logits ->
coordinates), of ``forward + backward`` and of ``predict`` (which for
SoftArgmaxHead also computes the keypoint scores and decodes), and the peak
bytes of tensors allocated during one forward + backward (torch profiler).

    python benchmarks/bench_soft_argmax_head.py [--batch 32] [--repeats 5]
"""
import argparse
import statistics
import time

import torch

import mmkp_ext  # noqa: F401
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


def timed(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def peak_bytes(fn):
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        fn()
    # Running sum of allocations/frees in event order -> peak live bytes.
    events = sorted(
        (e for e in prof.events() if e.cpu_memory_usage != 0),
        key=lambda e: e.time_range.start)
    live = peak = 0
    for e in events:
        live += e.cpu_memory_usage
        peak = max(peak, live)
    return peak


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f'torch {torch.__version__}, {args.threads} threads, '
          f'batch {args.batch}, median of {args.repeats}')
    print('| K | heatmap | head | forward ms | fwd+bwd ms | predict ms '
          '| peak fwd+bwd MiB |')
    print('|---|---|---|---|---|---|---|')
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

            print(f'| {num_joints} | {hw[0]}x{hw[1]} | {name} '
                  f'| {timed(fwd, args.repeats):.2f} '
                  f'| {timed(fwd_bwd, args.repeats):.2f} '
                  f'| {timed(pred, args.repeats):.2f} '
                  f'| {peak_bytes(fwd_bwd) / 2**20:.1f} |')


if __name__ == '__main__':
    main()

"""DCNv2 cost on the CPU: the pure-PyTorch modulated deformable convolution
(``ModulatedDeformConv2dPure``) against a plain 3x3 ``nn.Conv2d`` of the same
shape (forward, and forward + backward), and the whole CenterNet DLA-34
pose model with the DCN up-path (the authors' multi_pose network, config
``cn-pose_dla34-dcn_authors-3x_coco-512x512.py``) against the same model
with plain convolutions, forward at 512x512.

Medians over --repeats interleaved rounds (A, B, A, B, ...) after one
warm-up each, in one process and thread count, so that the ratio is
meaningful on a shared machine.

    python benchmarks/bench_dcn.py [--repeats 5] [--threads 1] [--json out.json]
"""
import argparse
import json
import statistics
import time

import torch

CONFIG = ('configs/centernet_grouping/coco/'
          'cn-pose_dla34-dcn_authors-3x_coco-512x512.py')
# (channels, map size): the DLA-up nodes at strides 4 / 8 / 16 of a 512 input.
LAYER_SHAPES = [(64, 128), (128, 64), (256, 32)]




def interleaved(fns, repeats):
    """{name: median seconds} with the callables timed in alternation."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def layer_rows(repeats):
    from mmkp_ext.models.layers import ModulatedDeformConv2dPure
    rows = []
    for c, s in LAYER_SHAPES:
        x = torch.randn(1, c, s, s)
        dcn = ModulatedDeformConv2dPure(c, c, 3, padding=1, impl='pure')
        torch.nn.init.normal_(dcn.conv_offset_mask.weight, std=0.01)
        conv = torch.nn.Conv2d(c, c, 3, padding=1)
        xg = x.clone().requires_grad_()

        def fwd(m):
            def run():
                with torch.no_grad():
                    m(x)
            return run

        def fwd_bwd(m):
            def run():
                m(xg).sum().backward()
            return run

        t = interleaved(dict(dcn=fwd(dcn), conv=fwd(conv)), repeats)
        tb = interleaved(dict(dcn=fwd_bwd(dcn), conv=fwd_bwd(conv)), repeats)
        rows.append(dict(shape=f'{c}x{s}x{s}', dcn_fwd=t['dcn'],
                         conv_fwd=t['conv'], dcn_fwdbwd=tb['dcn'],
                         conv_fwdbwd=tb['conv']))
    return rows


def model_row(repeats):
    from mmkp_ext.analysis import build_model_from_config
    dcn, _ = build_model_from_config(CONFIG)
    plain, _ = build_model_from_config(
        CONFIG, cfg_options={'model.neck.conv_type': 'conv'})
    for m in (dcn, plain):
        m.eval()
    for name, p in dcn.named_parameters():
        if 'conv_offset_mask' in name:
            torch.nn.init.normal_(p, std=0.01)
    x = torch.randn(1, 3, 512, 512)

    def fwd(m):
        def run():
            with torch.no_grad():
                m.head.forward(m.neck(m.backbone(x)))
        return run

    t = interleaved(dict(dcn=fwd(dcn), plain=fwd(plain)), repeats)
    return dict(dcn_model=t['dcn'], plain_model=t['plain'],
                dcn_params=sum(p.numel() for p in dcn.parameters()),
                plain_params=sum(p.numel() for p in plain.parameters()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--json', help='also write the figures here')
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    import mmkp_ext  # noqa: F401
    rows = layer_rows(args.repeats)
    print('| C x H x W | plain conv fwd (ms) | DCNv2 fwd (ms) | ratio | '
          'plain fwd+bwd (ms) | DCNv2 fwd+bwd (ms) | ratio |')
    print('|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['shape']} | {r['conv_fwd'] * 1e3:.1f} | "
              f"{r['dcn_fwd'] * 1e3:.1f} | "
              f"{r['dcn_fwd'] / r['conv_fwd']:.1f}x | "
              f"{r['conv_fwdbwd'] * 1e3:.1f} | "
              f"{r['dcn_fwdbwd'] * 1e3:.1f} | "
              f"{r['dcn_fwdbwd'] / r['conv_fwdbwd']:.1f}x |")
    m = model_row(args.repeats)
    print()
    print('| model (512x512, batch 1) | params | forward (s) |')
    print('|---|---|---|')
    print(f"| DLA-34 + plain up-path | {m['plain_params'] / 1e6:.2f}M | "
          f"{m['plain_model']:.2f} |")
    print(f"| DLA-34 + DCN up-path (authors' multi_pose) | "
          f"{m['dcn_params'] / 1e6:.2f}M | {m['dcn_model']:.2f} "
          f"({m['dcn_model'] / m['plain_model']:.2f}x) |")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(layers=rows, model=m, threads=args.threads), f,
                      indent=1)


if __name__ == '__main__':
    main()

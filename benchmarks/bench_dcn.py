"""DCNv2 cost on the CPU: the pure-PyTorch modulated deformable convolution
(``ModulatedDeformConv2dPure``) against a plain 3x3 ``nn.Conv2d`` of the same
shape (forward, and forward + backward), and the whole CenterNet DLA-34
pose model with the DCN up-path (the authors' multi_pose network, config
``cn-pose_dla34-dcn_authors-3x_coco-512x512.py``) against the same model
with plain convolutions, forward at 512x512.

Medians over --repeats interleaved rounds (A, B, A, B, ...) after
--warmup untimed rounds (default one), in one process and thread count, so
that the ratio is meaningful on a shared machine.

    python benchmarks/bench_dcn.py [--repeats 5] [--threads 1] [--json out.json]
"""
import torch

from _harness import (config_path, interleaved, print_table, script_parser,
                      torch_threads, write_json)

CONFIG = ('configs/centernet_grouping/coco/'
          'cn-pose_dla34-dcn_authors-3x_coco-512x512.py')
# (channels, map size): the DLA-up nodes at strides 4 / 8 / 16 of a 512 input.
LAYER_SHAPES = [(64, 128), (128, 64), (256, 32)]


def layer_rows(repeats, warmup):
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

        t = interleaved(dict(dcn=fwd(dcn), conv=fwd(conv)), repeats,
                        warmup).medians
        tb = interleaved(dict(dcn=fwd_bwd(dcn), conv=fwd_bwd(conv)), repeats,
                         warmup).medians
        rows.append(dict(shape=f'{c}x{s}x{s}', dcn_fwd=t['dcn'],
                         conv_fwd=t['conv'], dcn_fwdbwd=tb['dcn'],
                         conv_fwdbwd=tb['conv']))
    return rows


def model_row(repeats, warmup):
    from mmkp_ext.analysis import build_model_from_config
    dcn, _ = build_model_from_config(config_path(CONFIG))
    plain, _ = build_model_from_config(
        config_path(CONFIG), cfg_options={'model.neck.conv_type': 'conv'})
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

    t = interleaved(dict(dcn=fwd(dcn), plain=fwd(plain)), repeats,
                    warmup).medians
    return dict(dcn_model=t['dcn'], plain_model=t['plain'],
                dcn_params=sum(p.numel() for p in dcn.parameters()),
                plain_params=sum(p.numel() for p in plain.parameters()))


def main(argv=None):
    parser = script_parser(__doc__, repeats=5, warmup=1, threads=1)
    args = parser.parse_args(argv)
    import mmkp_ext  # noqa: F401
    with torch_threads(args.threads):
        rows = layer_rows(args.repeats, args.warmup)
        print_table(['C x H x W', 'plain conv fwd (ms)', 'DCNv2 fwd (ms)',
                     'ratio', 'plain fwd+bwd (ms)', 'DCNv2 fwd+bwd (ms)',
                     'ratio'],
                    [[r['shape'], f"{r['conv_fwd'] * 1e3:.1f}",
                      f"{r['dcn_fwd'] * 1e3:.1f}",
                      f"{r['dcn_fwd'] / r['conv_fwd']:.1f}x",
                      f"{r['conv_fwdbwd'] * 1e3:.1f}",
                      f"{r['dcn_fwdbwd'] * 1e3:.1f}",
                      f"{r['dcn_fwdbwd'] / r['conv_fwdbwd']:.1f}x"]
                     for r in rows])
        m = model_row(args.repeats, args.warmup)
    print()
    print_table(['model (512x512, batch 1)', 'params', 'forward (s)'], [
        ['DLA-34 + plain up-path', f"{m['plain_params'] / 1e6:.2f}M",
         f"{m['plain_model']:.2f}"],
        ["DLA-34 + DCN up-path (authors' multi_pose)",
         f"{m['dcn_params'] / 1e6:.2f}M",
         f"{m['dcn_model']:.2f} ({m['dcn_model'] / m['plain_model']:.2f}x)"],
    ])
    write_json(args.json, dict(layers=rows, model=m, threads=args.threads))


if __name__ == '__main__':
    main()

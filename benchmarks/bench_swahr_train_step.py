"""Training-step cost of SWAHR against plain HigherHRNet, side by side.

The same ``BottomupPoseEstimator`` (mmpose HRNet + ``HigherHRNetHead``, COCO
K=17) is built twice from the same seed: plain (no scale branch, plain masked
MSE) and SWAHR (scale branches + ``SWAHRLoss``); both get the same batch
(random images, synthetic Gaussian targets of ``--people`` people, random
ignore masks and AE keypoint indices). One step = forward + losses +
backward + Adam step. The two models alternate step by step (so that machine
load hits both alike; ``--warmup`` untimed rounds first) and the table gives
the median step time, the ratio, and the peak memory of one step
(``_harness.peak_tensor_mib``; CUDA: ``max_memory_allocated``; CPU: peak
live bytes of tensors in the torch profiler's allocation records).

``--head-only`` times only what differs, the head and its losses on fixed
random 1/4-resolution features (forward + losses + backward + Adam step),
with more repeats (less noise under machine load).

    python benchmarks/bench_swahr_train_step.py                # HRNet-W32
    python benchmarks/bench_swahr_train_step.py --head-only --repeats 20
    python benchmarks/bench_swahr_train_step.py --arch tiny --input 128

``--depthwise`` times only the scale branches' depthwise 9x9 convolution
(forward + backward) in the default and the channels-last layout (why the
head runs it channels-last on the CPU).
"""
import numpy as np
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

import mmkp_ext  # noqa: F401
from _harness import (device_sync, interleaved, peak_tensor_mib, print_table,
                      script_parser, table_header, table_row, time_callable,
                      torch_threads, write_json)
from mmkp_ext.analysis import build_model_from_config
from mmpose.structures import MultilevelPixelData, PoseDataSample

ARCHS = {
    # (num_modules, num_blocks, channels) of stages 2-4
    'w32': [(1, (4, 4), (32, 64)), (4, (4, 4, 4), (32, 64, 128)),
            (3, (4, 4, 4, 4), (32, 64, 128, 256))],
    'tiny': [(1, (1, 1), (16, 32)), (1, (1, 1, 1), (16, 32, 64)),
             (1, (1, 1, 1, 1), (16, 32, 64, 128))],
}


def build_model(arch, num_keypoints, swahr):
    stages = ARCHS[arch]
    extra = dict(
        stage1=dict(
            num_modules=1,
            num_branches=1,
            block='BOTTLENECK',
            num_blocks=(4, ) if arch == 'w32' else (1, ),
            num_channels=(64, )))
    for s, (nm, nb, ch) in enumerate(stages, start=2):
        extra[f'stage{s}'] = dict(
            num_modules=nm,
            num_branches=len(ch),
            block='BASIC',
            num_blocks=nb,
            num_channels=ch)
    extra['stage4']['multiscale_output'] = False
    c = stages[0][2][0]
    head = dict(
        type='HigherHRNetHead',
        in_channels=c,
        num_keypoints=num_keypoints,
        deconv_channels=c)
    if swahr:
        head.update(with_scale_branch=True,
                    heatmap_loss=dict(type='SWAHRLoss'))
    model = dict(
        type='BottomupPoseEstimator',
        backbone=dict(type='HRNet', in_channels=3, extra=extra),
        head=head)
    return build_model_from_config(Config(dict(model=model)))[0]


def make_batch(batch, size, num_keypoints, people, device, seed=0):
    """Images and data samples with targets at 1/4 and 1/2 resolution."""
    rng = np.random.default_rng(seed)
    inputs = torch.from_numpy(
        rng.standard_normal((batch, 3, size, size)).astype(np.float32))
    samples = []
    for _ in range(batch):
        kpts = rng.uniform(0, size, (people, num_keypoints, 2))
        hms, masks = [], []
        for stride in (4, 2):
            n = size // stride
            yy, xx = np.mgrid[:n, :n].astype(np.float32)
            hm = np.zeros((num_keypoints, n, n), np.float32)
            for p in kpts / stride:
                d2 = (xx[None] - p[:, 0, None, None])**2 + (
                    yy[None] - p[:, 1, None, None])**2
                np.maximum(hm, np.exp(-d2 / 8), out=hm)
            hms.append(torch.from_numpy(hm).to(device))
            masks.append(
                torch.from_numpy((rng.uniform(size=(n, n)) > 0.05).astype(
                    np.float32)).to(device))
        n0 = size // 4
        cells = np.clip((kpts / 4 + 0.5).astype(np.int64), 0, n0 - 1)
        idx = np.stack([cells[..., 1] * n0 + cells[..., 0],
                        np.ones(cells.shape[:2], np.int64)], -1)
        d = PoseDataSample()
        d.gt_fields = MultilevelPixelData(heatmaps=hms, heatmap_mask=masks)
        d.gt_instance_labels = InstanceData(
            keypoint_indices=torch.from_numpy(idx).to(device),
            keypoint_weights=torch.ones(people, num_keypoints, device=device))
        samples.append(d)
    return inputs.to(device), samples


def make_step(loss, params):
    """One training step: ``loss()`` (a dict of losses), backward of their
    sum, Adam step on ``params``."""
    opt = torch.optim.Adam(params, lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        sum(loss().values()).backward()
        opt.step()

    return step


def bench_depthwise(batch, size, repeats, warmup, device):
    """Median ms of forward + backward of a K=17 depthwise 9x9 conv at 1/2
    and 1/4 of ``size``, contiguous vs channels-last input."""
    conv = torch.nn.Conv2d(17, 17, 9, padding=4, groups=17).to(device)

    def fwd_bwd(xi):
        y = conv(xi)
        (y * y).sum().backward()

    print(table_header(['map', 'contiguous ms', 'channels-last ms'], 'lrr'))
    rows = []
    for n in (size // 2, size // 4):
        x = torch.randn(batch, 17, n, n, device=device)
        row = [
            time_callable(
                fwd_bwd, repeats, warmup,
                setup=lambda fmt=fmt: x.contiguous(
                    memory_format=fmt).requires_grad_(True),
                sync=device_sync(device)).median_ms
            for fmt in (torch.contiguous_format, torch.channels_last)
        ]
        print(table_row([f'({batch}, 17, {n}, {n})', f'{row[0]:.0f}',
                         f'{row[1]:.0f}']))
        rows.append(dict(map=[batch, 17, n, n], contiguous_ms=row[0],
                         channels_last_ms=row[1]))
    return rows


def main(argv=None):
    p = script_parser(__doc__, repeats=5, warmup=1, threads=2)
    p.add_argument('--arch', default='w32', choices=sorted(ARCHS))
    p.add_argument('--input', type=int, default=256)
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--people', type=int, default=10)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--depthwise', action='store_true',
                   help='time only the depthwise 9x9 conv, both layouts')
    p.add_argument('--head-only', action='store_true',
                   help='time the head + losses on fixed features only')
    args = p.parse_args(argv)
    with torch_threads(args.threads):
        out = run(args)
    write_json(args.json, out)
    return out


def run(args):
    device = torch.device(args.device)
    if args.depthwise:
        return bench_depthwise(args.batch, args.input, args.repeats,
                               args.warmup, device)
    K = 17
    torch.manual_seed(0)
    plain = build_model(args.arch, K, False).to(device).train()
    torch.manual_seed(0)
    swahr = build_model(args.arch, K, True).to(device).train()
    inputs, samples = make_batch(args.batch, args.input, K, args.people,
                                 device)
    if args.head_only:
        c = ARCHS[args.arch][0][2][0]
        n = args.input // 4
        feats = [torch.randn(args.batch, c, n, n, device=device)]
        steps = {k: make_step(lambda m=m: m.head.loss(feats, samples),
                              m.head.parameters())
                 for k, m in (('plain', plain), ('swahr', swahr))}
    else:
        steps = {k: make_step(lambda m=m: m.loss(inputs, samples),
                              m.parameters())
                 for k, m in (('plain', plain), ('swahr', swahr))}
    # alternate step by step: the same load for both
    med = interleaved(steps, args.repeats, args.warmup,
                      sync=device_sync(device)).medians_ms
    mem = {k: peak_tensor_mib(s, device) for k, s in steps.items()}
    n_params = {
        k: sum(q.numel() for q in m.parameters())
        for k, m in (('plain', plain), ('swahr', swahr))
    }
    part = 'head + losses only' if args.head_only else 'whole model'
    print(f'{part}; torch {torch.__version__}, device {device}, '
          f'{torch.get_num_threads()} threads, HRNet-{args.arch}, input '
          f'{args.input}, batch {args.batch}, {args.people} people, median '
          f'of {args.repeats} alternating steps')
    print_table(['model', 'params', 'step ms', 'peak step MiB'],
                [[k, f'{n_params[k]:,}', f'{med[k]:.0f}', f'{mem[k]:.0f}']
                 for k in ('plain', 'swahr')] +
                [['ratio swahr / plain',
                  f'{n_params["swahr"] / n_params["plain"]:.4f}',
                  f'{med["swahr"] / med["plain"]:.3f}',
                  f'{mem["swahr"] / mem["plain"]:.3f}']], 'lrrr')
    return dict(ms=med, peak_mib=mem, params=n_params)


if __name__ == '__main__':
    main()

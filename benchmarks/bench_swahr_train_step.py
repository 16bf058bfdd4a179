"""Training-step cost of SWAHR against plain HigherHRNet, side by side.

The same ``BottomupPoseEstimator`` (mmpose HRNet + ``HigherHRNetHead``, COCO
K=17) is built twice from the same seed: plain (no scale branch, plain masked
MSE) and SWAHR (scale branches + ``SWAHRLoss``); both get the same batch
(random images, synthetic Gaussian targets of ``--people`` people, random
ignore masks and AE keypoint indices). One step = forward + losses +
backward + Adam step. The two models alternate step by step (so that machine
load hits both alike) and the table gives the median step time, the ratio,
and the peak memory of one step (CUDA: ``max_memory_allocated``; CPU: peak
live bytes of tensors seen by the torch profiler).

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
import argparse
import statistics
import time

import numpy as np
import torch
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

import mmkp_ext  # noqa: F401
from mmpose.registry import MODELS
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
        head.update(with_scale_branch=True, heatmap_loss=dict(type='SWAHRLoss'))
    with DefaultScope.overwrite_default_scope('mmpose'):
        return MODELS.build(
            dict(
                type='BottomupPoseEstimator',
                backbone=dict(type='HRNet', in_channels=3, extra=extra),
                head=head))


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


def make_step(model, inputs, samples):
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        losses = model.loss(inputs, samples)
        sum(losses.values()).backward()
        opt.step()

    return step


def make_head_step(head, feats, samples):
    opt = torch.optim.Adam(head.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        losses = head.loss(feats, samples)
        sum(losses.values()).backward()
        opt.step()

    return step


def bench_depthwise(batch, size, repeats, device):
    """Median ms of forward + backward of a K=17 depthwise 9x9 conv at 1/2
    and 1/4 of ``size``, contiguous vs channels-last input."""
    conv = torch.nn.Conv2d(17, 17, 9, padding=4, groups=17).to(device)
    print('| map | contiguous ms | channels-last ms |')
    print('|---|---:|---:|')
    for n in (size // 2, size // 4):
        x = torch.randn(batch, 17, n, n, device=device)
        row = []
        for fmt in (torch.contiguous_format, torch.channels_last):
            times = []
            for _ in range(repeats + 1):
                xi = x.contiguous(memory_format=fmt).requires_grad_(True)
                sync(device)
                t0 = time.perf_counter()
                y = conv(xi)
                (y * y).sum().backward()
                sync(device)
                times.append(time.perf_counter() - t0)
            row.append(statistics.median(times[1:]) * 1e3)
        print(f'| ({batch}, 17, {n}, {n}) | {row[0]:.0f} | {row[1]:.0f} |')


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def peak_mib(step, device):
    if device.type == 'cuda':
        sync(device)
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        sync(device)
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        step()
    events = sorted((e for e in prof.events() if e.cpu_memory_usage != 0),
                    key=lambda e: e.time_range.start)
    live = peak = 0
    for e in events:
        live += e.cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--arch', default='w32', choices=sorted(ARCHS))
    p.add_argument('--input', type=int, default=256)
    p.add_argument('--batch', type=int, default=2)
    p.add_argument('--people', type=int, default=10)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available()
                   else 'cpu')
    p.add_argument('--depthwise', action='store_true',
                   help='time only the depthwise 9x9 conv, both layouts')
    p.add_argument('--head-only', action='store_true',
                   help='time the head + losses on fixed features only')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.depthwise:
        return bench_depthwise(args.batch, args.input, args.repeats, device)
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
        steps = dict(
            plain=make_head_step(plain.head, feats, samples),
            swahr=make_head_step(swahr.head, feats, samples))
    else:
        steps = dict(
            plain=make_step(plain, inputs, samples),
            swahr=make_step(swahr, inputs, samples))
    for s in steps.values():  # warm-up
        s()
    times = dict(plain=[], swahr=[])
    for _ in range(args.repeats):
        for name, s in steps.items():  # alternate: same load for both
            sync(device)
            t0 = time.perf_counter()
            s()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    mem = {k: peak_mib(s, device) for k, s in steps.items()}
    n_params = {
        k: sum(q.numel() for q in m.parameters())
        for k, m in (('plain', plain), ('swahr', swahr))
    }
    part = 'head + losses only' if args.head_only else 'whole model'
    print(f'{part}; torch {torch.__version__}, device {device}, '
          f'{args.threads} threads, HRNet-{args.arch}, input {args.input}, '
          f'batch '
          f'{args.batch}, {args.people} people, median of {args.repeats} '
          'alternating steps')
    print('| model | params | step ms | peak step MiB |')
    print('|---|---:|---:|---:|')
    for k in ('plain', 'swahr'):
        print(f'| {k} | {n_params[k]:,} | {med[k]:.0f} | {mem[k]:.0f} |')
    print(f'| ratio swahr / plain | {n_params["swahr"] / n_params["plain"]:.4f}'
          f' | {med["swahr"] / med["plain"]:.3f} | '
          f'{mem["swahr"] / mem["plain"]:.3f} |')
    return med, mem


if __name__ == '__main__':
    main()

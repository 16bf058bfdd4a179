"""Grouped CenterNet: what grouping saves, and what encoding / decoding cost.

Part 1 (the paper's Table: training and inference cost of grouping): DLA-34
+ DLA-up neck + ``CenterNetPoseHead`` at 256x256 with the DeepFashion2
layout (13 classes, 294 keypoints), ungrouped (294 regression + 294 heatmap
groups: 901 output channels) vs a 62/62 grouping (205 channels). Each
configuration runs in its own subprocess so that peak memory (ru_maxrss
above the level after building the model and its inputs) is not shared:
training step (forward, all six losses, backward, Adam step) and inference
(forward + rescored decoding, no grad).

Part 2 (encoding / decoding must not dominate): ``GroupedCenterNetLabel``
encode time per image (294-keypoint layout, 8 objects, 512x512 input) and
batched decode time per image (100 candidates; rescore and nearest), next to
the model's forward time per image at 512x512.

The 62/62 grouping here is ``k % 62`` (contiguous category ranges of at most
39 keypoints never put two keypoints of one category in one group); it has
the channel count of the paper's manual grouping, which is not public.

    python benchmarks/bench_centernet_grouping.py [--batch 8] [--steps 3]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


def _maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_model(groups, size):
    """DLA-34 + DLAUpNeck + CenterNetPoseHead for the DF2 layout with ``groups``
    regression and heatmap groups (``None``: ungrouped)."""
    import mmkp_ext  # noqa: F401
    from mmengine.registry import DefaultScope
    from mmpose.registry import MODELS
    K = 294
    group = None if groups is None else [k % groups for k in range(K)]
    codec = dict(type='GroupedCenterNetLabel', input_size=(size, size),
                 heatmap_size=(size // 4, size // 4), num_keypoints=K,
                 category_keypoints='deepfashion2', reg_group=group,
                 hm_group=group, topk=100)
    cfg = dict(type='CenterNetPoseEstimator',
               data_preprocessor=dict(type='PoseDataPreprocessor'),
               backbone=dict(type='DLANet', depth=34),
               neck=dict(type='DLAUpNeck'),
               head=dict(type='CenterNetPoseHead', in_channels=64,
                         num_keypoints=K, category_keypoints='deepfashion2',
                         head_conv=256, reg_group=group, hm_group=group,
                         decoder=codec),
               test_cfg=dict(flip_test=False))
    with DefaultScope.overwrite_default_scope('mmpose'):
        return MODELS.build(cfg)


def fake_batch(model, batch, size, rng):
    """Inputs and packed targets of ``batch`` images with 8 objects each,
    encoded by the head's own codec (as GenerateTarget would)."""
    import torch
    from mmengine.structures import InstanceData, PixelData
    from mmpose.structures import PoseDataSample
    codec = model.head.decoder
    samples = []
    for _ in range(batch):
        enc = codec.encode(**random_objects(rng, 8, size))
        s = PoseDataSample(metainfo=dict(input_size=(size, size)))
        s.gt_fields = PixelData(**{
            k: torch.from_numpy(enc[k])
            for k in codec.field_mapping_table
        })
        s.gt_instance_labels = InstanceData(**{
            k: torch.from_numpy(np.asarray(enc[k]))
            for k in codec.label_mapping_table
        })
        samples.append(s)
    return torch.randn(batch, 3, size, size), samples


def random_objects(rng, n, size):
    """``n`` DF2-layout objects in a ``size`` x ``size`` input."""
    from mmkp_ext.datasets import DEEPFASHION2_CATEGORY_RANGES
    K = 294
    cat = rng.integers(1, 14, size=n)
    wh = rng.uniform(0.2, 0.5, size=(n, 2)) * size
    x0 = rng.uniform(0, 1, size=(n, 2)) * (size - wh)
    bbox = np.concatenate([x0, x0 + wh], axis=1)
    kpts = x0[:, None] + rng.uniform(0, 1, (n, K, 2)) * wh[:, None]
    ranges = np.array(DEEPFASHION2_CATEGORY_RANGES)
    ks = np.arange(K)
    own = (ks >= ranges[cat - 1, :1]) & (ks <= ranges[cat - 1, 1:])
    vis = (own & (rng.uniform(size=(n, K)) < 0.9)).astype(np.float32)
    return dict(keypoints=kpts.astype(np.float32), keypoints_visible=vis,
                bbox=bbox.astype(np.float32), category_id=cat)


def run_one(mode, groups, batch, steps, size):
    """One configuration in this process; prints a json line."""
    import torch
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_model(groups, size)
    inputs, samples = fake_batch(model, batch, size, rng)
    if mode == 'train':
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    else:
        model.eval()
    base = _maxrss_mib()
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        if mode == 'train':
            losses = model(inputs, samples, mode='loss')
            loss = sum(v for v in losses.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            with torch.no_grad():
                feats = model.extract_feat(inputs)
                model.head.predict(feats, samples, dict(flip_test=False))
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    print(json.dumps(dict(mode=mode, groups=groups,
                          channels=model.head.num_output_channels,
                          time=float(np.median(times)) / batch,
                          peak_mib=_maxrss_mib() - base)))


def codec_costs(batch, reps):
    """Part 2, in this process."""
    import torch
    import mmkp_ext  # noqa: F401
    from mmpose.registry import KEYPOINT_CODECS
    size = 512
    rng = np.random.default_rng(0)
    codec = KEYPOINT_CODECS.build(
        dict(type='GroupedCenterNetLabel', input_size=(size, size),
             heatmap_size=(128, 128), num_keypoints=294,
             category_keypoints='deepfashion2', topk=100))
    objs = [random_objects(rng, 8, size) for _ in range(reps)]
    codec.encode(**objs[0])
    t0 = time.perf_counter()
    for o in objs:
        codec.encode(**o)
    encode = (time.perf_counter() - t0) / reps

    model = build_model(None, size).eval()
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        feats = model.extract_feat(x)
        outs = model.head.forward(feats)
        t0 = time.perf_counter()
        for _ in range(reps):
            model.head.forward(model.extract_feat(x))
        forward = (time.perf_counter() - t0) / reps / batch
        decode = {}
        for mode in ('rescore', 'nearest'):
            codec.batch_decode(**outs, decode_mode=mode)
            t0 = time.perf_counter()
            for _ in range(reps):
                codec.batch_decode(**outs, decode_mode=mode)
            decode[mode] = (time.perf_counter() - t0) / reps / batch
    return encode, decode, forward


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--size', type=int, default=256)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--one', nargs=2, metavar=('MODE', 'GROUPS'),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    if args.one:
        groups = None if args.one[1] == 'none' else int(args.one[1])
        run_one(args.one[0], groups, args.batch, args.steps, args.size)
        return

    rows = {}
    for mode in ('train', 'infer'):
        for groups in ('none', '62'):
            out = subprocess.run(
                [sys.executable, __file__, '--one', mode, groups, '--batch',
                 str(args.batch), '--steps', str(args.steps), '--size',
                 str(args.size), '--threads', str(args.threads)],
                capture_output=True, text=True, check=True,
                env=dict(os.environ, PYTHONWARNINGS='ignore'))
            rows[mode, groups] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f'## Part 1: DLA-34, {args.size}x{args.size}, batch {args.batch}, '
          f'{args.threads} threads, median of {args.steps} steps\n')
    print('| | ungrouped (294/294) | grouped (62/62) | ratio |')
    print('|---|---|---|---|')
    print(f'| output channels | {rows["train", "none"]["channels"]} | '
          f'{rows["train", "62"]["channels"]} | |')
    for mode, name in (('train', 'training step'), ('infer', 'inference')):
        a, b = rows[mode, 'none'], rows[mode, '62']
        print(f'| {name} time / image | {a["time"] * 1e3:.0f} ms | '
              f'{b["time"] * 1e3:.0f} ms | '
              f'{(b["time"] / a["time"] - 1) * 100:+.0f}% |')
        print(f'| {name} peak memory | {a["peak_mib"]:.0f} MiB | '
              f'{b["peak_mib"]:.0f} MiB | '
              f'{(b["peak_mib"] / a["peak_mib"] - 1) * 100:+.0f}% |')

    encode, decode, forward = codec_costs(batch=2, reps=3)
    print('\n## Part 2: 294 keypoints, 512x512 input (128x128 output), '
          '8 objects per image, 100 candidates\n')
    print('| step | time / image | share of forward |')
    print('|---|---|---|')
    print(f'| model forward (DLA-34, ungrouped) | {forward * 1e3:.0f} ms | |')
    print(f'| encode (GroupedCenterNetLabel) | {encode * 1e3:.1f} ms | '
          f'{encode / forward * 100:.1f}% |')
    for mode, t in decode.items():
        print(f'| batched decode, {mode} | {t * 1e3:.1f} ms | '
              f'{t / forward * 100:.1f}% |')


if __name__ == '__main__':
    main()

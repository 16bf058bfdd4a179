"""Grouped CenterNet: what grouping saves, and what encoding / decoding cost.

Part 1 (the paper's Table: training and inference cost of grouping): DLA-34
+ DLA-up neck + ``CenterNetPoseHead`` at 256x256 with the DeepFashion2
layout (13 classes, 294 keypoints), ungrouped (294 regression + 294 heatmap
groups: 901 output channels) vs a 62/62 grouping (205 channels). Each
configuration runs in its own subprocess so that peak memory (how far the
resident set rises above its size after building the model and its inputs)
is not shared: training step (forward, all six losses, backward, Adam step)
and inference (forward + rescored decoding, no grad).

Part 2 (encoding / decoding must not dominate): ``GroupedCenterNetLabel``
encode time per image (294-keypoint layout, 8 objects, 512x512 input) and
batched decode time per image (100 candidates; rescore and nearest), next to
the model's forward time per image at 512x512.

The 62/62 grouping here is ``k % 62`` (contiguous category ranges of at most
39 keypoints never put two keypoints of one category in one group); it has
the channel count of the paper's manual grouping, which is not public.

Times are medians of ``--repeats`` (alias ``--steps``) steps after
``--warmup`` untimed ones (warm-up steps count towards the peak memory, as
a first step does); peak memory is measured with
``_harness.peak_rss_in_subprocess`` (one fresh process per configuration).

    python benchmarks/bench_centernet_grouping.py [--batch 8] [--steps 3]
"""
import numpy as np
from _harness import (peak_rss_in_subprocess, print_table, script_parser,
                      time_callable, torch_threads, write_json)


def build_model(groups, size):
    """DLA-34 + DLAUpNeck + CenterNetPoseHead for the DF2 layout with
    ``groups`` regression and heatmap groups (``None``: ungrouped); eval
    mode."""
    import mmkp_ext  # noqa: F401
    from mmengine.config import Config

    from mmkp_ext.analysis import build_model_from_config
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
    return build_model_from_config(Config(dict(model=cfg)))[0]


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


def prepare_one(mode, groups, batch, steps, warmup, size, threads):
    """Part 1, one configuration (run in a fresh process): builds the model,
    its inputs (and the optimiser) and returns the step to measure, which
    times ``steps`` training steps or inferences and returns a row."""
    import torch
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_model(groups, size)
    inputs, samples = fake_batch(model, batch, size, rng)
    if mode == 'train':
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    else:
        model.eval()

    def one():
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

    def run():
        t = time_callable(one, steps, warmup)
        return dict(mode=mode, groups=groups,
                    channels=model.head.num_output_channels,
                    time=t.median / batch)

    return run


def codec_costs(batch, repeats, warmup):
    """Part 2, in this process: median seconds per image of encoding,
    forward and batched decoding (per decode mode)."""
    import torch

    import mmkp_ext  # noqa: F401
    from mmpose.registry import KEYPOINT_CODECS
    size = 512
    rng = np.random.default_rng(0)
    codec = KEYPOINT_CODECS.build(
        dict(type='GroupedCenterNetLabel', input_size=(size, size),
             heatmap_size=(128, 128), num_keypoints=294,
             category_keypoints='deepfashion2', topk=100))
    objs = iter([random_objects(rng, 8, size)
                 for _ in range(warmup + repeats)])
    encode = time_callable(lambda o: codec.encode(**o), repeats, warmup,
                           setup=lambda: next(objs)).median

    model = build_model(None, size).eval()
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        t = time_callable(lambda: model.head.forward(model.extract_feat(x)),
                          repeats, warmup)
        forward, outs = t.median / batch, t.output
        decode = {
            mode: time_callable(
                lambda: codec.batch_decode(**outs, decode_mode=mode),
                repeats, warmup).median / batch
            for mode in ('rescore', 'nearest')
        }
    return encode, decode, forward


def main():
    parser = script_parser(__doc__, repeats=3, warmup=1, threads=2,
                           repeats_aliases=('--steps', ))
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=256)
    args = parser.parse_args()

    rows = {}
    for mode in ('train', 'infer'):
        for groups in (None, 62):
            row, peak = peak_rss_in_subprocess(
                prepare_one, mode, groups, args.batch, args.repeats,
                args.warmup, args.size, args.threads)
            rows[mode, 'none' if groups is None else str(groups)] = dict(
                row, peak_mib=peak)
    print(f'## Part 1: DLA-34, {args.size}x{args.size}, batch {args.batch}, '
          f'{args.threads} threads, median of {args.repeats} steps\n')
    table = [['output channels', rows['train', 'none']['channels'],
              rows['train', '62']['channels'], '']]
    for mode, name in (('train', 'training step'), ('infer', 'inference')):
        a, b = rows[mode, 'none'], rows[mode, '62']
        table.append([f'{name} time / image', f'{a["time"] * 1e3:.0f} ms',
                      f'{b["time"] * 1e3:.0f} ms',
                      f'{(b["time"] / a["time"] - 1) * 100:+.0f}%'])
        table.append([f'{name} peak memory', f'{a["peak_mib"]:.0f} MiB',
                      f'{b["peak_mib"]:.0f} MiB',
                      f'{(b["peak_mib"] / a["peak_mib"] - 1) * 100:+.0f}%'])
    print_table(['', 'ungrouped (294/294)', 'grouped (62/62)', 'ratio'],
                table)

    with torch_threads(args.threads):
        encode, decode, forward = codec_costs(2, args.repeats, args.warmup)
    print('\n## Part 2: 294 keypoints, 512x512 input (128x128 output), '
          '8 objects per image, 100 candidates\n')
    table = [['model forward (DLA-34, ungrouped)', f'{forward * 1e3:.0f} ms',
              ''],
             ['encode (GroupedCenterNetLabel)', f'{encode * 1e3:.1f} ms',
              f'{encode / forward * 100:.1f}%']]
    for mode, t in decode.items():
        table.append([f'batched decode, {mode}', f'{t * 1e3:.1f} ms',
                      f'{t / forward * 100:.1f}%'])
    print_table(['step', 'time / image', 'share of forward'], table)
    write_json(args.json, dict(part1=rows, part2=dict(
        encode_s=encode, forward_s=forward, decode_s=decode)))


if __name__ == '__main__':
    main()

"""Bottom-up (HigherHRNet / SWAHR) inference cost: AE grouping per image
next to the network's forward, at 512x512 with 2, 10 and 30 people.

Per image, single thread, batch 1, in one process so that the figures are
side by side (the machine may be shared: compare the ratios):

- ``forward``: HRNet-W32 + HigherHRNetHead of
  ``configs/swahr/coco/higherhrnet_hrnet-w32_8xb20-300e_coco-512x512.py``
  (raw outputs at 1/4 and 1/2; no flip); the people do not change it;
- ``fuse``: the head's test-time fusion (both resolutions and the tags
  resized bilinearly to the 512x512 decode size, heatmaps averaged);
- ``decode``: ``MultiResolutionAELabel.batch_decode`` (mmpose's AE grouping:
  NMS, top-30, Munkres matching, refinement of missing keypoints) on those
  512x512 maps.

The maps fed to fuse / decode are what a perfect network would output for
N random people of 40-200 px (heatmaps from the codec's targets, tags from
the owners of the keypoint cells), 30 % of their keypoints unlabelled so
that the refinement of missing keypoints runs as it does on real images.

Each figure is the median of ``--repeats`` calls (no warm-up call unless
``--warmup`` asks for it); ``--threads`` torch threads (default 1).

    python benchmarks/bench_bottomup_decode.py [--people 2 10 30] [--repeats 3]
"""
import numpy as np
import torch
import torch.nn.functional as F
from _harness import (config_path, script_parser, time_callable,
                      torch_threads, write_json)

CONFIG = 'configs/swahr/coco/higherhrnet_hrnet-w32_8xb20-300e_coco-512x512.py'


def build(config):
    """The config's model (random weights, eval mode) and its codec."""
    import mmkp_ext  # noqa: F401
    from mmkp_ext.analysis import build_model_from_config
    from mmpose.registry import KEYPOINT_CODECS
    model, cfg = build_model_from_config(config_path(config))
    return model, KEYPOINT_CODECS.build(cfg.model.head.decoder)


def synthetic_outputs(codec, num_people, rng):
    """Raw head outputs (list of heatmaps per resolution, tags at 1/4) of a
    perfect network for ``num_people`` random people."""
    w, h = codec.input_size
    K = len(codec.decode_keypoint_order)
    centers = rng.uniform(60, w - 60, (num_people, 1, 2))
    heights = rng.uniform(40, 200, (num_people, 1, 1))
    kpts = centers + rng.uniform(-0.5, 0.5, (num_people, K, 2)) * heights
    vis = (rng.random((num_people, K)) > 0.3).astype(np.float32)
    enc = codec.encode(kpts.astype(np.float32), vis)
    W0, H0 = codec.heatmap_sizes[0]
    idx = enc['keypoint_indices']
    tags = np.zeros((K, H0, W0), np.float32)
    yy, xx = np.mgrid[0:H0, 0:W0]
    for k in range(K):
        owners = np.flatnonzero(idx[:, k, 1])
        if owners.size:
            cy, cx = idx[owners, k, 0] // W0, idx[owners, k, 0] % W0
            d2 = (yy[None] - cy[:, None, None])**2 + (
                xx[None] - cx[:, None, None])**2
            tags[k] = 2.0 * owners[np.argmin(d2, 0)]
    heatmaps = [torch.from_numpy(hm)[None] for hm in enc['heatmaps']]
    return heatmaps, torch.from_numpy(tags)[None]


def fuse(heatmaps, tags, size):
    resized = [
        F.interpolate(t, size=size, mode='bilinear', align_corners=False)
        for t in heatmaps
    ]
    fused = torch.stack(resized).mean(0)
    tags = F.interpolate(tags, size=size, mode='bilinear', align_corners=False)
    return fused, tags


def main():
    parser = script_parser(__doc__, repeats=3, warmup=0, threads=1)
    parser.add_argument('--config', default=CONFIG)
    parser.add_argument('--people', type=int, nargs='+', default=[2, 10, 30])
    args = parser.parse_args()
    with torch_threads(args.threads):
        rows = run(args)
    write_json(args.json, rows)


def run(args):
    rng = np.random.default_rng(0)

    def timed(fn):
        t = time_callable(fn, args.repeats, args.warmup)
        return t.median, t.output

    model, codec = build(args.config)
    w, h = codec.input_size
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        t_fwd, _ = timed(lambda: model.head.forward(model.backbone(x)))
    rows = []
    for n in args.people:
        heatmaps, tags = synthetic_outputs(codec, n, rng)
        t_fuse, (fused, fused_tags) = timed(
            lambda: fuse(heatmaps, tags, (h, w)))
        t_dec, (kpts, _, _) = timed(
            lambda: codec.batch_decode(fused, fused_tags))
        rows.append(
            dict(
                people=n,
                decoded=len(kpts[0]),
                forward_s=t_fwd,
                fuse_s=t_fuse,
                decode_s=t_dec,
                decode_over_forward=t_dec / t_fwd))
        print(f'people {n:3d} (decoded {len(kpts[0]):3d}): forward '
              f'{t_fwd * 1e3:8.1f} ms  fuse {t_fuse * 1e3:7.1f} ms  decode '
              f'{t_dec * 1e3:8.1f} ms  decode/forward {t_dec / t_fwd:.3f}',
              flush=True)
    return rows


if __name__ == '__main__':
    main()

"""EMSDA (Poseur's efficient multi-scale deformable attention) against the
standard MSDA: FLOPs (mmkp_ext.analysis, grid_sample included) and CPU
forward time, side by side in one run.

Setting of the paper's comparison: 256x192 input, 4 levels at strides
4/8/16/32 (64x48, 32x24, 16x12, 8x6; 4080 value positions), 17 queries of
256 channels, 8 heads, 4 points. Stacks:

* ``attn xN``: N attention layers applied one after the other (query
  updated, same value map);
* ``decoder xN``: N post-norm decoder layers like Poseur's (self-attention
  8 heads, deformable cross-attention, FFN 1024, LayerNorms);
* ``neck + decoder x3``: mmpose's ``ChannelMapper`` (1x1 conv + GN, ResNet-50
  channels 256/512/1024/2048 -> 256) followed by 3 decoder layers, which is
  what the paper's "decoder 0.44 vs 1.25 GFLOPs" matches (see
  docs/benchmarks.md).

Times are medians of ``--repeats`` inference forwards (torch.no_grad) after
``--warmup`` untimed ones, EMSDA and MSDA interleaved in each repeat so
contention hits both alike; compare the ratio column, not absolute times
across runs. ``--threads``: torch threads (default: torch's own).

    OMP_NUM_THREADS=1 python benchmarks/bench_poseur_attention.py \
        [--batches 1 32] [--repeats 5]
"""
import torch
from torch import nn

from _harness import (interleaved, script_parser, table_header, table_row,
                      torch_threads, write_json)

import mmkp_ext  # noqa: F401
from mmkp_ext.analysis import count_complexity
from mmkp_ext.models.layers import EMSDeformAttn, MSDeformAttn

SHAPES = torch.tensor([[64, 48], [32, 24], [16, 12], [8, 6]])
C, Q = 256, 17


class DecoderLayer(nn.Module):
    """Post-norm: self-attn -> norm -> deformable cross-attn -> norm ->
    FFN -> norm (Poseur's operation order)."""

    def __init__(self, attn_cls):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(C, 8, dropout=0.1,
                                               batch_first=True)
        self.cross_attn = attn_cls(C, 8, 4, 4, dropout=0.1)
        self.ffn = nn.Sequential(nn.Linear(C, 1024), nn.ReLU(),
                                 nn.Dropout(0.1), nn.Linear(1024, C))
        self.norms = nn.ModuleList(nn.LayerNorm(C) for _ in range(3))

    def forward(self, query, value, ref, shapes, pos):
        qk = query + pos
        query = self.norms[0](query + self.self_attn(
            qk, qk, query, need_weights=False)[0])
        query = self.norms[1](self.cross_attn(query, value, ref, shapes,
                                              query_pos=pos))
        return self.norms[2](query + self.ffn(query))


class Stack(nn.Module):
    """``num`` attention or decoder layers; optional ChannelMapper neck
    that makes the value map from ResNet-50-like features."""

    def __init__(self, attn_cls, num, decoder, neck):
        super().__init__()
        if decoder:
            self.layers = nn.ModuleList(
                DecoderLayer(attn_cls) for _ in range(num))
        else:
            self.layers = nn.ModuleList(
                attn_cls(C, 8, 4, 4, dropout=0.1) for _ in range(num))
        self.decoder = decoder
        self.neck = None
        if neck:
            from mmpose.registry import MODELS
            self.neck = MODELS.build(
                dict(type='ChannelMapper', in_channels=[256, 512, 1024, 2048],
                     kernel_size=1, out_channels=C, act_cfg=None,
                     norm_cfg=dict(type='GN', num_groups=32)))

    def forward(self, query, value, ref, shapes, pos, *feats):
        if self.neck is not None:
            maps = self.neck(tuple(feats))
            value = torch.cat([m.flatten(2).transpose(1, 2) for m in maps], 1)
        for layer in self.layers:
            if self.decoder:
                query = layer(query, value, ref, shapes, pos)
            else:
                query = layer(query, value, ref, shapes, query_pos=pos)
        return query


def make_inputs(batch, neck, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = int((SHAPES[:, 0] * SHAPES[:, 1]).sum())
    inputs = [
        torch.randn(batch, Q, C, generator=g),
        torch.randn(batch, n, C, generator=g),
        torch.rand(batch, Q, 2, generator=g), SHAPES,
        torch.randn(batch, Q, C, generator=g)
    ]
    if neck:
        for ch, (h, w) in zip([256, 512, 1024, 2048], SHAPES.tolist()):
            inputs.append(torch.randn(batch, ch, h, w, generator=g))
    return tuple(inputs)


def same_weights(ems_stack, ms_stack):
    """Copy the shared parameters so both stacks see the same offsets,
    weights and projections (the value projection is per-head in EMSDA,
    a Linear in MSDA: W_m^T rows)."""
    ms_sd = ms_stack.state_dict()
    for k, v in ems_stack.state_dict().items():
        if k in ms_sd and ms_sd[k].shape == v.shape:
            ms_sd[k] = v.clone()
    ms_stack.load_state_dict(ms_sd)
    for name, e in ems_stack.named_modules():
        if isinstance(e, EMSDeformAttn):
            m = ms_stack.get_submodule(name)
            with torch.no_grad():
                w = e.value_proj_weight.view(e.num_heads, C, e.head_dims)
                m.value_proj.weight.copy_(w.transpose(1, 2).reshape(C, C))
                m.value_proj.bias.copy_(e.value_proj_bias.reshape(C))


CASES = [
    ('attn x1', 1, False, False),
    ('attn x3', 3, False, False),
    ('attn x6', 6, False, False),
    ('decoder x3', 3, True, False),
    ('decoder x6', 6, True, False),
    ('neck + decoder x3', 3, True, True),
]


def main():
    parser = script_parser(__doc__, repeats=5, warmup=1)
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 32])
    parser.add_argument('--cases', nargs='+', default=None,
                        help='subset of case names (default: all)')
    args = parser.parse_args()
    with torch_threads(args.threads):
        rows = run(args)
    write_json(args.json, rows)


def run(args):
    print(f'torch {torch.__version__}, threads {torch.get_num_threads()}, '
          f'repeats {args.repeats}')
    print(table_header(['case', 'batch', 'GFLOPs EMSDA', 'GFLOPs MSDA',
                        'FLOPs MSDA/EMSDA', 'ms EMSDA', 'ms MSDA',
                        'time MSDA/EMSDA', 'max abs diff'], 'lrrrrrrrr'))
    rows = []
    for name, num, decoder, neck in CASES:
        if args.cases and name not in args.cases:
            continue
        torch.manual_seed(0)
        ems = Stack(EMSDeformAttn, num, decoder, neck).eval()
        ms = Stack(MSDeformAttn, num, decoder, neck).eval()
        same_weights(ems, ms)
        for batch in args.batches:
            inputs = make_inputs(batch, neck)
            f_e = count_complexity(ems, inputs).flops
            f_m = count_complexity(ms, inputs).flops
            with torch.no_grad():
                out_e, out_m = ems(*inputs), ms(*inputs)
                diff = (out_e - out_m).abs().max().item()
                res = interleaved(
                    dict(emsda=lambda: ems(*inputs), msda=lambda: ms(*inputs)),
                    args.repeats, args.warmup)
            t_e, t_m = res.medians_ms['emsda'], res.medians_ms['msda']
            print(table_row([name, batch, f'{f_e / 1e9:.3f}',
                             f'{f_m / 1e9:.3f}', f'{f_m / f_e:.1f}',
                             f'{t_e:.1f}', f'{t_m:.1f}', f'{t_m / t_e:.1f}',
                             f'{diff:.1e}']), flush=True)
            rows.append(dict(case=name, batch=batch, flops_emsda=f_e,
                             flops_msda=f_m, ms_emsda=t_e, ms_msda=t_m,
                             max_abs_diff=diff))
    return rows


if __name__ == '__main__':
    main()

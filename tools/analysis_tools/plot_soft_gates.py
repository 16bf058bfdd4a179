"""Histogram of the learned soft gates (alphas) of a SoftGatedHourglass
checkpoint, one panel per stack with one histogram per hourglass level (the
paper's Figure 3: most alphas end near 0). The gate extraction is
mmkp_ext.models.backbones.soft_gate_values; this script only plots.

    python tools/analysis_tools/plot_soft_gates.py work_dirs/<run>/epoch_N.pth \
        --out soft_gates.png
"""
import argparse
import re

import numpy as np


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', help='mmengine checkpoint (.pth)')
    parser.add_argument('--out', default='soft_gates.png', help='PNG path')
    parser.add_argument('--prefix', default='backbone.',
                        help='state-dict prefix of the backbone')
    parser.add_argument('--bins', type=int, default=40)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmkp_ext.models.backbones import soft_gate_values
    from mmkp_ext.safe_load import CheckpointFileError, load_checkpoint_dict
    try:
        ckpt = load_checkpoint_dict(args.checkpoint, map_location='cpu')
    except (CheckpointFileError, FileNotFoundError) as e:
        raise SystemExit(f'error: {e}')
    state = ckpt.get('state_dict', ckpt)
    gates = soft_gate_values(state, prefix=args.prefix)
    stacks = sorted({int(m.group(1)) for k in gates
                     for m in [re.match(r'stack(\d+)/', k)] if m})
    if not stacks:
        raise SystemExit('no per-stack gates found (only '
                         f'{list(gates)}); is this a SoftGatedHourglass?')
    all_values = np.concatenate(list(gates.values()))
    lo, hi = float(all_values.min()), float(all_values.max())
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    bins = np.linspace(lo, hi, args.bins + 1)
    fig, axes = plt.subplots(1, len(stacks), figsize=(4 * len(stacks), 3.2),
                             squeeze=False, sharey=True)
    for ax, s in zip(axes[0], stacks):
        for key, values in gates.items():
            if key.startswith(f'stack{s}/'):
                ax.hist(values, bins=bins, histtype='step',
                        label=key.split('/')[1])
        ax.set_title(f'stack {s}')
        ax.set_xlabel('alpha')
    axes[0][0].set_ylabel('channels')
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    plt.close(fig)
    near0 = float(np.mean(np.abs(all_values) < 0.1))
    print(f'{all_values.size} gates in {len(gates)} groups, '
          f'range [{all_values.min():.3f}, {all_values.max():.3f}], '
          f'{100 * near0:.1f}% with |alpha| < 0.1 -> {args.out}')
    return gates


if __name__ == '__main__':
    main()

"""Automatic keypoint grouping for grouped CenterNet: annotations or an
ungrouped checkpoint in, grouping JSON (docs/grouping_json.md) out, plus PNG
plots (dendrograms, matrix of ambiguous decoding, ARI curves).

    # DeepFashion2, 62 clusters per head with restrictions, from offsets
    python tools/analysis_tools/group_keypoints.py OUT.json --ann-file train.json \\
        --layout deepfashion2 --reg-clusters 62 --hm-clusters 62
    # from the weights of a trained ungrouped model (+ consensus with a 2nd)
    python tools/analysis_tools/group_keypoints.py OUT.json --checkpoint A.pth \\
        --consensus-checkpoint B.pth --layout toy_fashion --plots DIR
    # COCO: offsets for regression, anti-offsets for heatmaps, no restriction
    python tools/analysis_tools/group_keypoints.py OUT.json --ann-file person_kpts.json \\
        --layout coco --restrict none --reg-clusters 14 --hm-clusters 17

Counts left out (or ``auto``) are chosen as the decodable pair with the
fewest keypoint output channels ``2 n_reg + n_hm``. Algorithms:
``mmkp_ext.grouping`` (this file parses arguments, reads inputs, plots).
"""
import argparse
import os
import os.path as osp
import shlex
import sys

import numpy as np

DIST_NAMES = {'offsets': 'offsets', 'anti_offsets': 'anti_offsets',
              'conv': 'conv_weights'}


#: mmkp_ext.grouping.DISTANCES / LINKAGES / RESTRICT, written out so that
#: --help answers without importing torch (importing mmkp_ext runs its
#: __init__); tests/test_tools/test_cli_help.py keeps them equal.
DISTANCES = ('offsets', 'anti_offsets', 'conv')
LINKAGES = ('average', 'complete', 'single', 'weighted')
RESTRICT = ('both', 'reg', 'hm', 'none')


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    p.add_argument('out', help='grouping JSON to write')
    p.add_argument('--ann-file', help='COCO-style keypoint annotations '
                   '(offset distances)')
    p.add_argument('--checkpoint', help='ungrouped CenterNetPoseHead '
                   'checkpoint (conv distances)')
    p.add_argument('--consensus-checkpoint', help='a second ungrouped '
                   'checkpoint: ARI of the conv groupings of both per count')
    p.add_argument('--head-prefix', default=None,
                   help="state-dict prefix of the head (found if omitted)")
    p.add_argument('--layout', required=True,
                   help="category layout: deepfashion2, toy_fashion, coco")
    p.add_argument('--num-keypoints', type=int, default=None,
                   help='K (default: from the input)')
    p.add_argument('--reg-distance', choices=DISTANCES, default=None,
                   help='default: conv with --checkpoint, else offsets')
    p.add_argument('--hm-distance', choices=DISTANCES, default=None,
                   help='default: conv with --checkpoint, else anti_offsets')
    p.add_argument('--reg-clusters', default='auto')
    p.add_argument('--hm-clusters', default='auto')
    p.add_argument('--linkage', choices=LINKAGES, default='average',
                   help='linkage of non-anti heads (anti-offsets: complete)')
    p.add_argument('--restrict', choices=RESTRICT, default='both',
                   help='heads where same-category keypoints never merge')
    p.add_argument('--min-count', type=int, default=1,
                   help='smallest cluster count of the ambiguity matrix')
    p.add_argument('--allow-undecodable', action='store_true')
    p.add_argument('--plots', help='folder for PNG plots')
    return p.parse_args(argv)


def _count(value, name):
    if value in (None, 'auto'):
        return None
    try:
        return int(value)
    except ValueError:
        sys.exit(f'--{name} must be an integer or "auto", got {value!r}')


def _conv_rows(path, prefix):
    from mmkp_ext.converters.grouped_centernet_head import (
        load_checkpoint_file, read_head_rows)
    _, state = load_checkpoint_file(path)
    return read_head_rows(state, prefix)


def _plots(folder, result, consensus, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from scipy.cluster.hierarchy import dendrogram
    os.makedirs(folder, exist_ok=True)
    files = []
    for head in ('reg', 'hm'):
        Z = result[f'Z_{head}'].copy()
        # Restriction penalties dwarf real heights: plot merge order.
        Z[:, 2] = np.arange(1, len(Z) + 1)
        fig, ax = plt.subplots(figsize=(max(6, len(Z) * 0.06), 4))
        dendrogram(Z, ax=ax, no_labels=len(Z) > 60, color_threshold=0)
        n = result['meta'][f'num_{head}_clusters']
        ax.axhline(len(Z) + 1 - n + 0.5, color='r', lw=0.8)
        ax.set_ylabel('merge step')
        ax.set_title(f'{title}\n{head} dendrogram (cut: {n} clusters)',
                     fontsize=9)
        files.append(osp.join(folder, f'dendrogram_{head}.png'))
        fig.tight_layout()
        fig.savefig(files[-1], dpi=100)
        plt.close(fig)
    amb, rc, hc = (result['ambiguity'], result['reg_counts'],
                   result['hm_counts'])
    fig, ax = plt.subplots(figsize=(6, 5))
    im = ax.imshow(np.log1p(amb), origin='lower', aspect='auto',
                   extent=(hc[0] - .5, hc[-1] + .5, rc[0] - .5, rc[-1] + .5))
    if (amb == 0).any() and (amb > 0).any():
        ax.contour(hc, rc, (amb == 0).astype(float), levels=[0.5],
                   colors='w', linewidths=0.8)
    m = result['meta']
    ax.plot(m['num_hm_clusters'], m['num_reg_clusters'], 'r+', ms=12)
    ax.set_xlabel('heatmap clusters')
    ax.set_ylabel('regression clusters')
    ax.set_title(f'{title}\nlog(1 + same-category pairs merged in both '
                 'heads)', fontsize=9)
    fig.colorbar(im)
    files.append(osp.join(folder, 'ambiguity_matrix.png'))
    fig.tight_layout()
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)
    if consensus:
        fig, ax = plt.subplots(figsize=(6, 4))
        for head, c in consensus.items():
            ax.plot(c['counts'], c['ari'], label=head)
        ax.set_xlabel('clusters')
        ax.set_ylabel('ARI (two checkpoints)')
        ax.legend()
        files.append(osp.join(folder, 'ari_curve.png'))
        fig.tight_layout()
        fig.savefig(files[-1], dpi=100)
        plt.close(fig)
    return files


def main(argv=None):
    args = parse_args(argv)
    from mmkp_ext.grouping import (auto_grouping, consensus_summary,
                                   head_distances, keypoint_categories,
                                   mean_keypoint_offsets, save_grouping)
    if not args.ann_file and not args.checkpoint:
        sys.exit('give --ann-file and/or --checkpoint')
    reg_d = args.reg_distance or ('conv' if args.checkpoint else 'offsets')
    hm_d = args.hm_distance or ('conv' if args.checkpoint else
                                'anti_offsets')
    rows = offsets = None
    k = args.num_keypoints
    sources, meta = [], {}
    if 'conv' in (reg_d, hm_d):
        if not args.checkpoint:
            sys.exit('conv distances need --checkpoint')
        rows = _conv_rows(args.checkpoint, args.head_prefix)
        k_ckpt = rows['hm_weight'].shape[0]
        if k is not None and k != k_ckpt:
            sys.exit(f'--num-keypoints {k} but the checkpoint head has '
                     f'{k_ckpt} keypoint heatmap channels')
        k = k_ckpt
        sources.append(args.checkpoint)
    if {'offsets', 'anti_offsets'} & {reg_d, hm_d}:
        if not args.ann_file:
            sys.exit(f'{reg_d}/{hm_d} distances need --ann-file')
        offsets, labelled = mean_keypoint_offsets(args.ann_file, k)
        k = len(offsets)
        sources.append(args.ann_file)
        meta['annotations'] = dict(
            labelled_instances=int(labelled.sum()),
            never_labelled=np.flatnonzero(labelled == 0).tolist())
        if (labelled == 0).any():
            print(f'warning: {int((labelled == 0).sum())} of {k} keypoint '
                  'types are never labelled in the annotations; they sit at '
                  'the box centre (offset 0) for the clustering')
    cat = keypoint_categories(args.layout, k)

    def dist(kind, name, rows_):
        return head_distances(
            name, kind, k, offsets=offsets,
            weight=None if rows_ is None else rows_[f'{kind}_weight'])

    result = auto_grouping(
        dist('reg', reg_d, rows), dist('hm', hm_d, rows), cat,
        reg_clusters=_count(args.reg_clusters, 'reg-clusters'),
        hm_clusters=_count(args.hm_clusters, 'hm-clusters'),
        reg_distance=reg_d, hm_distance=hm_d, linkage=args.linkage,
        restrict=args.restrict, min_count=args.min_count,
        allow_undecodable=args.allow_undecodable)
    consensus = {}
    if args.consensus_checkpoint:
        rows2 = _conv_rows(args.consensus_checkpoint, args.head_prefix)
        other = auto_grouping(
            dist('reg', reg_d, rows2), dist('hm', hm_d, rows2), cat,
            reg_clusters=result['meta']['num_reg_clusters'],
            hm_clusters=result['meta']['num_hm_clusters'],
            reg_distance=reg_d, hm_distance=hm_d, linkage=args.linkage,
            restrict=args.restrict, min_count=args.min_count,
            allow_undecodable=True)
        for head in ('reg', 'hm'):
            consensus[head] = consensus_summary(
                result[f'Z_{head}'], other[f'Z_{head}'],
                result[f'{head}_counts'],
                result['meta'][f'num_{head}_clusters'])
        meta['consensus'] = dict(
            checkpoint=args.consensus_checkpoint,
            **{h: {key: c[key] for key in ('best_count', 'best_ari',
                                           'ari_at_chosen')}
               for h, c in consensus.items()})
    meta.update(result['meta'])
    meta['layout'] = args.layout
    meta['command'] = 'python tools/analysis_tools/group_keypoints.py ' + ' '.join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    names = {DIST_NAMES[reg_d], DIST_NAMES[hm_d]}
    method = names.pop() if len(names) == 1 else \
        f'reg:{DIST_NAMES[reg_d]},hm:{DIST_NAMES[hm_d]}'
    save_grouping(args.out, result['reg_group'], result['hm_group'], method,
                  ' + '.join(sources), meta=meta)
    m = result['meta']
    print(f'wrote {args.out}: {m["num_reg_clusters"]} regression / '
          f'{m["num_hm_clusters"]} heatmap groups for {k} keypoints '
          f'({method}, restrict={args.restrict}); inconsistent pairs '
          f'reg {m["inconsistent_pairs"]["reg"]}, hm '
          f'{m["inconsistent_pairs"]["hm"]}; undecodable '
          f'{m["undecodable_pairs"]}; minimal decodable '
          f'{m["minimal_decodable"][0]} / {m["minimal_decodable"][1]}')
    for head, c in consensus.items():
        print(f'consensus {head}: ARI {c["ari_at_chosen"]:.3f} at the chosen '
              f'count, best {c["best_ari"]:.3f} at {c["best_count"]}')
    if args.plots:
        for f in _plots(args.plots, result, consensus,
                        osp.basename(args.out)):
            print('plot:', f)
    return result


if __name__ == '__main__':
    main()

"""Matrix of ambiguous decoding for DeepFashion2's 294 keypoints: one
dendrogram per head cut at every count (``mmkp_ext.grouping``) vs
re-clustering and listing pairs per cell.

Both heads: 294 keypoint types in the DF2 layout (13 categories), random
128-d features standing in for the conv rows (regression: 2 x 64, heatmap:
64), average linkage, no restrictions; cluster counts 10..294 for both heads
(285 x 285 = 81,225 cells).

* fast: ``build_linkage`` per head + ``ambiguity_matrix`` (2-D histogram of
  the pairs' merge levels), timed end to end;
* baseline: per cell, scipy ``fcluster`` for both heads and
  ``undecodable_pairs`` (the direct definition). Timed on a random sample of
  cells and extrapolated to the full matrix; its counts must equal the fast
  matrix's on the sample.

The fast time is the best of ``--repeats`` (alias ``--repeat``) runs; the
baseline's is one pass over the sampled cells.

    python benchmarks/bench_grouping_ambiguity.py [--sample 200] [--repeat 3]
"""
import numpy as np
from _harness import script_parser, time_callable, write_json


def main():
    parser = script_parser(__doc__, repeats=3, warmup=0,
                           repeats_aliases=('--repeat', ), threads_arg=False)
    parser.add_argument('--sample', type=int, default=200,
                        help='cells timed for the baseline')
    args = parser.parse_args()

    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist

    from mmkp_ext.grouping import (ambiguity_matrix, build_linkage,
                                   euclidean_distances, keypoint_categories,
                                   undecodable_pairs)
    k = 294
    rng = np.random.default_rng(0)
    cat = keypoint_categories('deepfashion2', k)
    feats = dict(reg=rng.normal(size=(k, 128)), hm=rng.normal(size=(k, 64)))
    counts = np.arange(10, k + 1)

    def fast():
        z_reg = build_linkage(euclidean_distances(feats['reg']))
        z_hm = build_linkage(euclidean_distances(feats['hm']))
        return ambiguity_matrix(z_reg, z_hm, cat, counts, counts)[0]

    timing = time_callable(fast, args.repeats, args.warmup)
    t_fast, amb = timing.min, timing.output

    cells = rng.integers(0, len(counts), size=(args.sample, 2))
    ref_reg = linkage(pdist(feats['reg']), 'average')
    ref_hm = linkage(pdist(feats['hm']), 'average')

    def baseline():
        slow = []
        for a, b in cells:
            reg = fcluster(ref_reg, counts[a], 'maxclust') - 1
            hm = fcluster(ref_hm, counts[b], 'maxclust') - 1
            slow.append(len(undecodable_pairs(reg, hm, 'deepfashion2')))
        return slow

    timing = time_callable(baseline, repeats=1, warmup=0)
    t_cell, slow = timing.min / args.sample, timing.output
    agree = all(amb[a, b] == s for (a, b), s in zip(cells, slow))
    t_slow = t_cell * amb.size

    print(f'keypoints {k}, counts {counts[0]}..{counts[-1]} for both heads '
          f'({amb.size} cells)')
    print(f'fast (2 linkages + matrix), best of {args.repeats}: '
          f'{t_fast:.3f} s')
    print(f'baseline per cell: {t_cell * 1e3:.2f} ms -> full matrix '
          f'~{t_slow:.0f} s (extrapolated from {args.sample} cells)')
    print(f'speed-up ~{t_slow / t_fast:.0f}x; sampled cells agree: {agree}')
    n_zero = int((amb == 0).sum())
    print(f'decodable cells: {n_zero} of {amb.size}')
    write_json(args.json, dict(
        cells=amb.size, fast_s=t_fast, baseline_cell_s=t_cell,
        baseline_full_s=t_slow, sampled_cells_agree=agree,
        decodable_cells=n_zero))


if __name__ == '__main__':
    main()

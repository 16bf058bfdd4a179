"""Compare two training configs over several seeds with the same budget.

Each config (optionally with its own ``--cfg-options``) is trained with
mmpose's stock ``tools/train.py`` once per training seed
(``randomness.seed``), every run with the same schedule overrides and the
same data; the metric of each run's final validation is parsed from its
log. The script prints, per config, the metric of every seed and its mean
+- sample standard deviation, then the paired differences (B - A, same
seed) with their mean +- std, a paired t-test and a sign count with its
exact two-sided sign-test p-value, and writes the same as json.

    python benchmarks/toy_compare.py CONFIG_A CONFIG_B \
        [--seeds 0 1 2] [--metric coco/AP] [--data-root data/toy_persons] \
        [--cfg-options k=v ...] [--a-options k=v ...] [--b-options k=v ...] \
        [--work-dir work_dirs/toy_compare] [--labels A B]

``--data-root`` points every split of a toy config at a generated dataset
(``tools/dataset_converters/make_toy_dataset.py`` layout). ``--cfg-options`` apply to both
runs (e.g. ``train_cfg.max_epochs=20`` for the budget), ``--a-options`` /
``--b-options`` to one (so A and B may be one config with one option
changed). Runs use one thread each (``OMP_NUM_THREADS=1``) unless the
environment says otherwise.

With three seeds a paired t-test has two degrees of freedom and a sign test
cannot go below p = 0.25: read the numbers as "is the difference larger
than the seed-to-seed spread", not as proof.
"""
import argparse
import json
import math
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List, Sequence

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def mean_std(values: Sequence[float]):
    """(mean, sample standard deviation with n - 1; 0.0 for one value)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError('mean_std needs at least one value')
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    var = sum((v - mean)**2 for v in values) / (n - 1)
    return mean, math.sqrt(var)


def paired_summary(a: Sequence[float], b: Sequence[float]) -> Dict:
    """Statistics of the paired differences ``d_i = b_i - a_i``.

    Returns a dict with ``n``, ``diffs``, ``mean_diff``, ``std_diff``
    (sample, n - 1), ``t`` (paired t statistic ``mean / (std / sqrt(n))``;
    +-inf when every difference is equal and non-zero, nan when all are
    zero or n < 2), ``df`` (n - 1), ``p_t`` (two-sided p-value of the t
    statistic under Student's t with ``df`` degrees of freedom; nan where t
    is nan), ``wins_b`` / ``wins_a`` / ``ties`` (seeds where b > a, a > b,
    equal) and ``p_sign`` (exact two-sided sign test on the non-tied pairs:
    ``min(1, 2 * P[X <= min(wins)])`` for X ~ Binomial(wins_a + wins_b,
    1/2); 1.0 without non-tied pairs).

    Raises:
        ValueError: if ``a`` and ``b`` differ in length or are empty.
    """
    if len(a) != len(b):
        raise ValueError(f'paired samples need equal lengths, got {len(a)} '
                         f'and {len(b)}')
    if not len(a):
        raise ValueError('paired_summary needs at least one pair')
    diffs = [float(y) - float(x) for x, y in zip(a, b)]
    n = len(diffs)
    mean, std = mean_std(diffs)
    if n < 2:
        t = float('nan')
    elif std == 0.0:
        t = float('nan') if mean == 0.0 else math.copysign(math.inf, mean)
    else:
        t = mean / (std / math.sqrt(n))
    if math.isnan(t):
        p_t = float('nan')
    elif math.isinf(t):
        p_t = 0.0
    else:
        from scipy.stats import t as student_t
        p_t = float(2.0 * student_t.sf(abs(t), n - 1))
    wins_b = sum(d > 0 for d in diffs)
    wins_a = sum(d < 0 for d in diffs)
    m = wins_a + wins_b
    if m == 0:
        p_sign = 1.0
    else:
        k = min(wins_a, wins_b)
        tail = sum(math.comb(m, i) for i in range(k + 1)) / 2.0**m
        p_sign = min(1.0, 2.0 * tail)
    return dict(n=n, diffs=diffs, mean_diff=mean, std_diff=std, t=t,
                df=n - 1, p_t=p_t, wins_b=wins_b, wins_a=wins_a,
                ties=n - m, p_sign=p_sign)


def format_report(labels: Sequence[str], metric: str, seeds: Sequence[int],
                  values_a: Sequence[float],
                  values_b: Sequence[float]) -> str:
    """The printed table: per-seed metric of both configs, mean +- std of
    each, and the paired summary of B - A."""
    la, lb = labels
    width = max(len(la), len(lb), len('B - A'), 6)
    lines = [f'{metric} over seeds {list(seeds)}']
    header = f'{"":{width}}  ' + '  '.join(f'seed {s:<4}' for s in seeds)
    lines.append(header + '  mean +- std')
    stats = paired_summary(values_a, values_b)
    for name, vals in ((la, values_a), (lb, values_b),
                       ('B - A', stats['diffs'])):
        m, s = mean_std(vals)
        lines.append(f'{name:{width}}  ' +
                     '  '.join(f'{v:<9.4f}' for v in vals) +
                     f'  {m:.4f} +- {s:.4f}')
    lines.append(
        f'paired t = {stats["t"]:.3f} (df {stats["df"]}, two-sided p = '
        f'{stats["p_t"]:.3f}); B better on {stats["wins_b"]}, A better on '
        f'{stats["wins_a"]}, ties {stats["ties"]} (sign test p = '
        f'{stats["p_sign"]:.3f})')
    return '\n'.join(lines)


def toy_data_options(root: str) -> List[str]:
    from mmkp_ext.utils import toy_data_options as options
    return options(root)


def train_once(config: str, work_dir: str, seed: int, options: List[str],
               metric: str) -> float:
    """One stock train.py run; returns the metric of its last validation
    (the run's log is kept in ``work_dir/train.log``)."""
    from mmkp_ext.utils import parse_metric
    os.makedirs(work_dir, exist_ok=True)
    cmd = [sys.executable, osp.join(ROOT, 'tools/train.py'), config,
           '--work-dir', work_dir, '--cfg-options',
           f'randomness.seed={seed}', *options]
    env = dict(os.environ)
    env.setdefault('OMP_NUM_THREADS', '1')
    env.setdefault('MKL_NUM_THREADS', '1')
    start = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    with open(osp.join(work_dir, 'train.log'), 'w') as f:
        f.write(proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(f'train.py failed ({proc.returncode}) for '
                           f'{config} seed {seed}; log: '
                           f'{osp.join(work_dir, "train.log")}\n'
                           + proc.stdout[-3000:])
    value = parse_metric(proc.stdout, metric)
    print(f'  {osp.basename(config)} seed {seed}: {metric} {value:.4f} '
          f'({time.time() - start:.0f} s)', flush=True)
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Train two configs over N seeds (stock train.py, same '
        'budget) and compare their metric.')
    parser.add_argument('config_a')
    parser.add_argument('config_b')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--metric', default='coco/AP')
    parser.add_argument('--data-root', default=None)
    parser.add_argument('--cfg-options', nargs='*', default=[])
    parser.add_argument('--a-options', nargs='*', default=[])
    parser.add_argument('--b-options', nargs='*', default=[])
    parser.add_argument('--labels', nargs=2, default=None)
    parser.add_argument('--work-dir', default='work_dirs/toy_compare')
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        parser.error(f'--seeds must be distinct, got {args.seeds}')
    labels = args.labels or [
        osp.splitext(osp.basename(args.config_a))[0] + ' (A)',
        osp.splitext(osp.basename(args.config_b))[0] + ' (B)'
    ]
    shared = list(args.cfg_options)
    if args.data_root:
        shared = toy_data_options(args.data_root) + shared
    values = {'a': [], 'b': []}
    for seed in args.seeds:
        for key, config, own in (('a', args.config_a, args.a_options),
                                 ('b', args.config_b, args.b_options)):
            work = osp.join(args.work_dir, key, f'seed{seed}')
            values[key].append(
                train_once(config, work, seed, shared + list(own),
                           args.metric))
    report = format_report(labels, args.metric, args.seeds, values['a'],
                           values['b'])
    print(report)
    summary = dict(labels=labels, metric=args.metric, seeds=args.seeds,
                   a=dict(config=args.config_a, options=args.a_options,
                          values=values['a']),
                   b=dict(config=args.config_b, options=args.b_options,
                          values=values['b']),
                   shared_options=shared,
                   paired=paired_summary(values['a'], values['b']))
    os.makedirs(args.work_dir, exist_ok=True)
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1, default=str)
    return summary


if __name__ == '__main__':
    main()

"""benchmarks/toy_compare.py: its statistics on hand-worked numbers (and
scipy's paired t-test), and the report / summary it writes from the runs'
metrics (the training runs replaced by fixed values)."""
import importlib.util
import json
import math
import os.path as osp

import pytest
from _helpers import REPO_ROOT
from scipy import stats


def _module():
    path = osp.join(REPO_ROOT, 'benchmarks', 'toy_compare.py')
    spec = importlib.util.spec_from_file_location('toy_compare', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tc = _module()


def test_mean_std_is_the_sample_standard_deviation():
    # sum of squared deviations from the mean 5 is 32; n - 1 = 7
    assert tc.mean_std([2, 4, 4, 4, 5, 5, 7, 9]) == pytest.approx(
        (5.0, math.sqrt(32 / 7)))
    assert tc.mean_std([0.3]) == (0.3, 0.0)
    with pytest.raises(ValueError, match='at least one'):
        tc.mean_std([])


def test_paired_summary_hand_worked():
    """d = (0.05, 0.02, 0.06): mean 0.13/3, sum of squared deviations
    0.0065 - 0.0169/3 = 0.0026/3, so var 0.0013/3 and t^2 = 3 mean^2 / var
    = 0.0169/0.0013 = 13. With 2 degrees of freedom P(|T| > t) = 1 -
    t / sqrt(t^2 + 2) = 1 - sqrt(13/15). All three favour B: sign test
    p = 2 / 2^3."""
    a, b = [0.10, 0.20, 0.30], [0.15, 0.22, 0.36]
    s = tc.paired_summary(a, b)
    assert s['n'] == 3 and s['df'] == 2
    assert s['diffs'] == pytest.approx([0.05, 0.02, 0.06])
    assert s['mean_diff'] == pytest.approx(0.13 / 3)
    assert s['std_diff'] == pytest.approx(math.sqrt(0.0013 / 3))
    assert s['t'] == pytest.approx(math.sqrt(13))
    assert s['p_t'] == pytest.approx(1 - math.sqrt(13 / 15))
    assert (s['wins_b'], s['wins_a'], s['ties']) == (3, 0, 0)
    assert s['p_sign'] == pytest.approx(0.25)
    # scipy's paired t-test agrees (B - A)
    ref = stats.ttest_rel(b, a)
    assert s['t'] == pytest.approx(ref.statistic)
    assert s['p_t'] == pytest.approx(ref.pvalue)


def test_paired_summary_mixed_signs_and_ties():
    """d = (-0.1, 0.1, -0.2, 0, -0.3): one tie, A better 3 times of 4
    non-tied: sign test p = 2 (C(4,0) + C(4,1)) / 2^4 = 10/16."""
    a = [0.5, 0.4, 0.3, 0.2, 0.6]
    b = [0.4, 0.5, 0.1, 0.2, 0.3]
    s = tc.paired_summary(a, b)
    assert (s['wins_b'], s['wins_a'], s['ties']) == (1, 3, 1)
    assert s['p_sign'] == pytest.approx(10 / 16)
    assert s['mean_diff'] == pytest.approx(-0.1)
    ref = stats.ttest_rel(b, a)
    assert s['t'] == pytest.approx(ref.statistic)
    assert s['p_t'] == pytest.approx(ref.pvalue)
    assert stats.binomtest(1, 4, 0.5).pvalue == pytest.approx(s['p_sign'])


def test_paired_summary_degenerate_cases():
    same = tc.paired_summary([1, 2, 3], [1, 2, 3])
    assert math.isnan(same['t']) and math.isnan(same['p_t'])
    assert same['ties'] == 3 and same['p_sign'] == 1.0
    shifted = tc.paired_summary([1, 2, 3], [2, 3, 4])  # d = 1, 1, 1
    assert shifted['t'] == math.inf and shifted['p_t'] == 0.0
    one = tc.paired_summary([0.2], [0.3])
    assert one['std_diff'] == 0.0 and math.isnan(one['t'])
    with pytest.raises(ValueError, match='equal lengths'):
        tc.paired_summary([1, 2], [1])
    with pytest.raises(ValueError, match='at least one pair'):
        tc.paired_summary([], [])


def test_main_reports_and_writes_the_paired_comparison(
        tmp_path, monkeypatch, capsys):
    metric = {('a.py', 0): 0.10, ('a.py', 1): 0.20, ('a.py', 2): 0.30,
              ('b.py', 0): 0.15, ('b.py', 1): 0.22, ('b.py', 2): 0.36}
    calls = []

    def fake_train(config, work_dir, seed, options, metric_name):
        calls.append((config, seed, tuple(options), metric_name))
        return metric[(config, seed)]

    monkeypatch.setattr(tc, 'train_once', fake_train)
    summary = tc.main([
        'a.py', 'b.py', '--work-dir', str(tmp_path), '--cfg-options',
        'train_cfg.max_epochs=2', '--b-options', 'model.x=1',
        '--labels', 'plain', 'new'])
    # same seeds and budget for both, own options only for B
    assert calls == [
        ('a.py', 0, ('train_cfg.max_epochs=2', ), 'coco/AP'),
        ('b.py', 0, ('train_cfg.max_epochs=2', 'model.x=1'), 'coco/AP'),
        ('a.py', 1, ('train_cfg.max_epochs=2', ), 'coco/AP'),
        ('b.py', 1, ('train_cfg.max_epochs=2', 'model.x=1'), 'coco/AP'),
        ('a.py', 2, ('train_cfg.max_epochs=2', ), 'coco/AP'),
        ('b.py', 2, ('train_cfg.max_epochs=2', 'model.x=1'), 'coco/AP')]
    out = capsys.readouterr().out
    assert 'plain   0.1000     0.2000     0.3000     0.2000 +- 0.1000' in out
    assert 'new     0.1500     0.2200     0.3600' in out
    assert 'paired t = 3.606 (df 2, two-sided p = 0.069)' in out
    assert 'B better on 3, A better on 0, ties 0 (sign test p = 0.250)' \
        in out
    with open(tmp_path / 'summary.json') as f:
        saved = json.load(f)
    assert saved['a']['values'] == [0.10, 0.20, 0.30]
    assert saved['paired']['t'] == pytest.approx(math.sqrt(13))
    assert summary['labels'] == ['plain', 'new']


def test_repeated_seeds_are_refused(tmp_path):
    with pytest.raises(SystemExit):
        tc.main(['a.py', 'b.py', '--seeds', '0', '0', '--work-dir',
                 str(tmp_path)])

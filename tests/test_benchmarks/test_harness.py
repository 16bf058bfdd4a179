"""benchmarks/_harness.py: medians, warm-up, interleaving order, thread
restoration, peak memory, tables, arguments. No timing assertions: the
clocks here are fakes that return chosen numbers."""
import argparse
import functools
import json
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from _helpers import REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'benchmarks'))
# the spawned children of peak_rss_in_subprocess import the steps from here
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import _harness as H  # noqa: E402
from _rss_steps import prepare_fails, prepare_ones  # noqa: E402


class FakeClock:
    """Returns the given readings one by one."""

    def __init__(self, readings):
        self.readings = list(readings)

    def __call__(self):
        return self.readings.pop(0)


def clock_for(durations):
    """A clock whose consecutive (start, stop) pairs differ by
    ``durations``."""
    readings, t = [], 100.0
    for d in durations:
        readings += [t, t + d]
        t += d + 1.0
    return FakeClock(readings)


# ---------------------------------------------------------------- timing


def test_time_callable_median_skips_warmup_and_keeps_output():
    calls = []

    def fn():
        calls.append(len(calls))
        return len(calls)

    # 2 warm-up calls (99 s each, must not count) then 5 timed calls
    clock = clock_for([99.0, 99.0, 3.0, 1.0, 9.0, 2.0, 4.0])
    t = H.time_callable(fn, repeats=5, warmup=2, clock=clock)
    assert calls == list(range(7))
    assert t.times == [3.0, 1.0, 9.0, 2.0, 4.0]
    assert t.median == 3.0
    assert t.min == 1.0
    assert t.median_ms == 3000.0
    assert t.output == 7
    assert clock.readings == []  # exactly one start and one stop per call


def test_time_callable_even_count_median_and_setup_sync():
    events = []

    def setup():
        events.append('setup')
        return len(events)

    def fn(arg):
        events.append(('fn', arg))

    t = H.time_callable(fn, repeats=2, warmup=0, setup=setup,
                        sync=lambda: events.append('sync'),
                        clock=clock_for([2.0, 6.0]))
    assert t.median == 4.0
    # setup outside the clock, a sync before start and before stop
    assert events == ['setup', 'sync', ('fn', 1), 'sync',
                      'setup', 'sync', ('fn', 5), 'sync']


@pytest.mark.parametrize('kw, msg', [
    (dict(repeats=0), 'repeats must be an integer >= 1'),
    (dict(warmup=-1), 'warmup must be an integer >= 0'),
    (dict(repeats=2.5), 'repeats must be an integer >= 1'),
])
def test_time_callable_rejects_bad_counts(kw, msg):
    with pytest.raises(ValueError, match=msg):
        H.time_callable(lambda: None, **kw)


def test_interleaved_order_and_medians():
    order = []
    fns = {n: (lambda n=n: order.append(n)) for n in 'ABC'}
    # per call, in call order: warm-up round (A, B, C), then 3 rounds
    durations = [9, 9, 9,
                 1.0, 2.0, 4.0,
                 3.0, 3.0, 3.0,
                 2.0, 8.0, 1.0]
    res = H.interleaved(fns, rounds=3, warmup=1, clock=clock_for(durations))
    assert order == list('ABC' * 4)
    assert res.baseline == 'A'
    assert res.timings['A'].times == [1.0, 3.0, 2.0]
    assert res.timings['B'].times == [2.0, 3.0, 8.0]
    assert res.timings['C'].times == [4.0, 3.0, 1.0]
    assert res.medians == dict(A=2.0, B=3.0, C=3.0)
    assert res.medians_ms['B'] == 3000.0
    assert res.round_ratios('B') == [2.0, 1.0, 4.0]
    assert res.median_ratio('B') == 2.0
    assert res.round_ratios('A', base='C') == [0.25, 1.0, 2.0]


def test_interleaved_alternate_reverses_every_other_round():
    order = []
    fns = {n: (lambda n=n: order.append(n)) for n in 'AB'}
    res = H.interleaved(fns, rounds=3, warmup=1, alternate=True,
                        clock=clock_for([1.0] * 8))
    assert order == ['A', 'B', 'B', 'A', 'A', 'B', 'B', 'A']
    # times land with the callable that was called, not by position
    assert res.timings['A'].times == [1.0] * 3


def test_interleaved_alternate_times_go_to_the_right_name():
    fns = {'A': lambda: 'a', 'B': lambda: 'b'}
    # round 0: A=1, B=2; round 1 (reversed): B=20, A=10
    res = H.interleaved(fns, rounds=2, warmup=0, alternate=True,
                        clock=clock_for([1.0, 2.0, 20.0, 10.0]))
    assert res.timings['A'].times == [1.0, 10.0]
    assert res.timings['B'].times == [2.0, 20.0]
    assert res.timings['B'].output == 'b'


def test_interleaved_rejects_empty_and_bad_rounds():
    with pytest.raises(ValueError, match='at least one callable'):
        H.interleaved({})
    with pytest.raises(ValueError, match='rounds must be'):
        H.interleaved({'A': lambda: None}, rounds=0)


# --------------------------------------------------------------- threads


def test_torch_threads_sets_and_restores():
    before = torch.get_num_threads()
    target = 2 if before != 2 else 1
    with H.torch_threads(target) as n:
        assert n == target
        assert torch.get_num_threads() == target
    assert torch.get_num_threads() == before


def test_torch_threads_restores_after_error_and_none_is_no_op():
    before = torch.get_num_threads()
    target = 2 if before != 2 else 1
    with pytest.raises(KeyError):
        with H.torch_threads(target):
            raise KeyError('inside')
    assert torch.get_num_threads() == before
    with H.torch_threads(None) as n:
        assert n is None
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match='num_threads must be'):
        with H.torch_threads(0):
            pass


# ---------------------------------------------------------------- memory


def test_peak_tensor_mib_counts_each_allocation_once():
    keep = []

    def fn():
        a = torch.zeros(1 << 20)  # 4 MiB, kept
        # randn (4 MiB) -> * 2 (4 MiB, randn's freed) -> + 1 (4 MiB):
        # live a + randn + mul = 12 MiB at the peak
        b = torch.randn(1 << 20) * 2 + 1
        keep.append(a)
        return (a + b).sum()  # a + b + sum: 12 MiB again

    peak = H.peak_tensor_mib(fn)
    # nested operators (zeros -> empty) must not count the 4 MiB twice
    assert abs(peak - 12.0) < 0.01


def test_peak_tensor_mib_ignores_what_was_live_before():
    big = torch.ones(1 << 22)  # 16 MiB live before the call
    peak = H.peak_tensor_mib(lambda: torch.empty(1 << 18).fill_(1.0))
    assert abs(peak - 1.0) < 0.01
    del big


def test_peak_rss_in_subprocess_sees_the_step_only():
    n = 8 << 20  # 64 MiB of float64
    out, peak = H.peak_rss_in_subprocess(prepare_ones, n, True)
    assert out == float(n)
    # the 64 MiB array was resident (a high-water mark: part of it may
    # fill room below an earlier peak of the child, hence not > 64)
    assert peak > 48
    out, peak = H.peak_rss_in_subprocess(prepare_ones, n, touch=False)
    assert out == 0.0
    assert peak < 32


def test_peak_rss_in_subprocess_reports_child_errors():
    with pytest.raises(RuntimeError, match='broken prepare'):
        H.peak_rss_in_subprocess(prepare_fails)


# ---------------------------------------------------------------- tables


def test_markdown_table_layout_and_alignment():
    text = H.markdown_table(['model', 'ms', 'ratio'],
                            [['a', '1.0', 1], ['b', 2.5, '2.50']], 'lrc')
    assert text.splitlines() == [
        '| model | ms | ratio |',
        '|---|---:|:---:|',
        '| a | 1.0 | 1 |',
        '| b | 2.5 | 2.50 |',
    ]
    assert H.markdown_table(['x'], []).splitlines() == ['| x |', '|---|']
    assert H.table_header(['a', 'b']) == '| a | b |\n|---|---|'


def test_markdown_table_errors_name_the_problem():
    with pytest.raises(ValueError, match='row 1 has 1 cells, the table 2'):
        H.markdown_table(['a', 'b'], [['1', '2'], ['3']])
    with pytest.raises(ValueError, match='align must be 2 letters'):
        H.markdown_table(['a', 'b'], [], 'l')
    with pytest.raises(ValueError, match='align must be 2 letters'):
        H.markdown_table(['a', 'b'], [], 'lx')


def test_print_table_prints_the_table(capsys):
    H.print_table(['a'], [['1']])
    assert capsys.readouterr().out == '| a |\n|---|\n| 1 |\n'


# ------------------------------------------------------------- arguments


def test_common_arguments_defaults_and_values():
    p = H.script_parser('Doc line.\n\n    python x.py --repeats 3\n',
                        repeats=3, warmup=0, threads=2)
    args = p.parse_args([])
    assert (args.repeats, args.warmup, args.threads, args.json) == \
        (3, 0, 2, None)
    args = p.parse_args(['--repeats', '7', '--warmup', '2', '--threads',
                         '1', '--json', 'out.json'])
    assert (args.repeats, args.warmup, args.threads, args.json) == \
        (7, 2, 1, 'out.json')
    # the whole docstring, example command included, is the description
    assert 'python x.py --repeats 3' in p.format_help()


def test_common_arguments_aliases_and_no_threads():
    p = H.script_parser('d', repeats=5, repeats_aliases=('--rounds', ),
                        threads_arg=False)
    assert p.parse_args(['--rounds', '4']).repeats == 4
    assert p.parse_args(['--repeats', '6']).repeats == 6
    assert not hasattr(p.parse_args([]), 'threads')
    assert H.script_parser('d').parse_args([]).threads is None


@pytest.mark.parametrize('argv', [['--repeats', '0'], ['--warmup', '-1'],
                                  ['--threads', '0'], ['--repeats', 'x']])
def test_common_arguments_reject_bad_values(argv, capsys):
    p = H.script_parser('d')
    with pytest.raises(SystemExit):
        p.parse_args(argv)
    assert argv[0] in capsys.readouterr().err


def test_common_parser_is_a_parent():
    parent = H.common_parser(repeats=9)
    assert not parent.add_help
    p = argparse.ArgumentParser(parents=[parent])
    p.add_argument('--batch', type=int, default=1)
    args = p.parse_args(['--batch', '4'])
    assert (args.batch, args.repeats) == (4, 9)


def test_write_json_plain_values(tmp_path):
    path = tmp_path / 'out.json'
    H.write_json(str(path), {('train', 'none'): dict(
        t=np.float32(0.5), n=np.int64(3), a=np.arange(3)), 2: (1, 2)})
    assert json.loads(path.read_text()) == {
        'train/none': dict(t=0.5, n=3, a=[0, 1, 2]), '2': [1, 2]}
    H.write_json(None, {'nothing': 'written'})  # no path: no file, no error


def test_config_path_resolution(tmp_path, monkeypatch):
    import mmpose
    rel = 'body_2d_keypoint/topdown_heatmap/coco/' \
        'td-hm_res50_8xb64-210e_coco-256x192.py'
    got = H.config_path('mmpose::' + rel)
    assert got == osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs',
                           rel)
    assert osp.isfile(got)
    monkeypatch.chdir(tmp_path)  # repo-relative paths work from elsewhere
    cfg = 'configs/hrnetpp/coco/td-hm_hrnetpp-w32_8xb64-150e_coco-256x192.py'
    assert H.config_path(cfg) == osp.join(REPO_ROOT, cfg)
    (tmp_path / 'local.py').write_text('')
    assert H.config_path('local.py') == str(tmp_path / 'local.py')


def test_functools_partial_prepare_is_accepted():
    # prepare may be any picklable callable, not only a plain function
    out, _ = H.peak_rss_in_subprocess(
        functools.partial(prepare_ones, 16), True)
    assert out == 16.0

"""mmkp_ext.utils: the metric parser shared by tools/demo/run_demo.py and the
tests, and the locator of mmpose's stock scripts."""
import os.path as osp
import sys

import pytest

from mmkp_ext.utils import (mmpose_tool_path, parse_metric, parse_metric_values,
                            run_streaming)

# Verbatim excerpt of a stock train.py log (mmengine 0.10.7, mmpose 1.3.2,
# CocoMetric; validation after epochs 2 and 12): xtcocotools' own summary
# table sits right before mmengine's metric line.
TRAIN_LOG = """\
11/22 19:21:29 - mmengine - INFO - Epoch(val) [2][3/3]    coco/AP: 0.000742  coco/AP .5: 0.006003  coco/AP .75: 0.000000  coco/AP (M): 0.000618  coco/AP (L): -1.000000  coco/AR: 0.005682  coco/AR .5: 0.045455  coco/AR .75: 0.000000  coco/AR (M): 0.006667  coco/AR (L): -1.000000  data_time: 0.021575  time: 0.122177
11/22 19:22:28 - mmengine - INFO - Epoch(train) [12][24/24]  lr: 9.501506e-05  eta: 0:00:00  time: 0.112291  data_time: 0.023942  loss: 0.004565  loss_kpt: 0.004565  acc_pose: 0.508053
11/22 19:22:28 - mmengine - INFO - Saving checkpoint at 12 epochs
Accumulating evaluation results...
DONE (t=0.00s).
 Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets= 20 ] =  0.259
 Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets= 20 ] =  0.641
 Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 20 ] =  0.298
11/22 19:22:29 - mmengine - INFO - Epoch(val) [12][3/3]    coco/AP: 0.259476  coco/AP .5: 0.640584  coco/AP .75: 0.158660  coco/AP (M): 0.216840  coco/AP (L): -1.000000  coco/AR: 0.297727  coco/AR .5: 0.670455  coco/AR .75: 0.227273  coco/AR (M): 0.262222  coco/AR (L): -1.000000  data_time: 0.023519  time: 0.138512
"""  # noqa: E501


def test_parse_metric_returns_last_value_of_the_exact_key():
    assert parse_metric(TRAIN_LOG) == 0.259476
    assert parse_metric_values(TRAIN_LOG) == [0.000742, 0.259476]
    # Neighbouring names are different metrics, not prefixes of this one.
    assert parse_metric(TRAIN_LOG, 'coco/AP .5') == 0.640584
    assert parse_metric(TRAIN_LOG, 'coco/AP (M)') == 0.216840
    assert parse_metric_values(TRAIN_LOG, 'coco/AP (L)') == [-1.0, -1.0]
    assert parse_metric(TRAIN_LOG, 'coco/AR') == 0.297727
    # A key matches whole item names only: 'AP' is not 'coco/AP', and
    # 'loss' is not 'loss_kpt'.
    assert parse_metric_values(TRAIN_LOG, 'AP') == []
    assert parse_metric(TRAIN_LOG, 'loss') == 0.004565
    assert parse_metric(TRAIN_LOG, 'acc_pose') == 0.508053
    assert parse_metric(TRAIN_LOG, 'lr') == pytest.approx(9.501506e-05)


def test_parse_metric_reads_a_test_py_line_and_special_values():
    test_line = ('11/22 19:33:43 - mmengine - INFO - Epoch(test) [3/3]    '
                 'coco/AP: 0.179903  coco/AP .5: 0.569097')
    assert parse_metric(test_line) == 0.179903
    # Line start, nan, a value at the very end of the text.
    assert parse_metric('coco/AP: 0.5\nfoo/AP: 1.0') == 0.5
    nan = parse_metric('Epoch(val) [1][1/1]    coco/AP: nan  coco/AR: 0.1')
    assert nan != nan
    assert parse_metric('x  coco/AP: 1.000000') == 1.0


def test_parse_metric_errors_name_the_problem():
    log = 'Traceback (most recent call last):\nKeyError: boom\n'
    with pytest.raises(ValueError,
                       match=r"(?s)no 'coco/AP' value.*KeyError: boom"):
        parse_metric(log)
    # A value that is not a number is not taken.
    with pytest.raises(ValueError, match='no'):
        parse_metric('coco/AP: n/a')
    with pytest.raises(TypeError, match='str'):
        parse_metric(b'coco/AP: 0.5')
    with pytest.raises(ValueError, match='key'):
        parse_metric('coco/AP: 0.5', key='')


def test_mmpose_tool_path():
    assert osp.isfile(mmpose_tool_path('train.py'))
    with pytest.raises(FileNotFoundError, match='no_such_tool.py'):
        mmpose_tool_path('no_such_tool.py')


def test_run_streaming_echoes_returns_and_fails_clearly(tmp_path, capsys):
    out = run_streaming([sys.executable, '-c',
                         'import os; print("a"); print(os.getcwd())'],
                        str(tmp_path))
    assert out.splitlines() == ['a', str(tmp_path)]
    assert 'a\n' in capsys.readouterr().out
    with pytest.raises(RuntimeError, match='exit code 3'):
        run_streaming([sys.executable, '-c', 'raise SystemExit(3)'],
                      str(tmp_path))


def test_toy_data_options_point_every_split_and_evaluator_at_root():
    from mmkp_ext.utils import toy_data_options
    opts = toy_data_options('/data/toy')  # no trailing slash on purpose
    assert sorted(opts) == sorted([
        'train_dataloader.dataset.data_root=/data/toy/',
        'val_dataloader.dataset.data_root=/data/toy/',
        'test_dataloader.dataset.data_root=/data/toy/',
        'val_evaluator.ann_file=/data/toy/annotations/val.json',
        'test_evaluator.ann_file=/data/toy/annotations/val.json'])
    assert toy_data_options('r/', splits=('train', ))[0] == \
        'train_dataloader.dataset.data_root=r/'


def test_run_or_exit_returns_output_or_exits_with_the_command(tmp_path):
    from mmkp_ext.utils import run_or_exit
    out = run_or_exit([sys.executable, '-c', 'print("hello")'], str(tmp_path))
    assert out.strip() == 'hello'
    with pytest.raises(SystemExit) as exc:
        run_or_exit([sys.executable, '-c', 'raise SystemExit(3)'],
                    str(tmp_path))
    assert 'exit code 3' in str(exc.value.code)

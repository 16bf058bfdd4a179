"""tools/model_converters/init_grouped_head.py --config: the converted checkpoint is checked
against the grouped model before anything is written. Before the check, a
checkpoint whose other tensors did not fit (here: an ungrouped model with
another ``head_conv``) was converted and written anyway and only failed
(or, loaded non-strictly, silently kept random weights) later."""
import os.path as osp

import pytest
import torch
from _helpers import REPO_ROOT, load_tool
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import load_checkpoint

import mmkp_ext  # noqa: F401
from mmkp_ext.converters.grouped_centernet_head import (check_fits_model,
                                                        grouped_model_state)
from mmkp_ext.grouping import save_grouping
from mmpose.registry import MODELS

CONFIG = osp.join(
    REPO_ROOT, 'configs/centernet_grouping/toy_fashion/'
    'cn-pose_dla34-tiny_1xb16-80e_toy-fashion-128x128.py')
K = 32


def _model(head_conv=None, grouping=None):
    cfg = Config.fromfile(CONFIG)
    if head_conv is not None:
        cfg.model.head.head_conv = head_conv
    if grouping is not None:
        cfg.model.head.grouping_file = grouping
        cfg.model.head.pop('decoder')  # would need the same grouping
    with DefaultScope.overwrite_default_scope('mmpose'):
        return MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('init_grouped_check')
    grouping = str(tmp / 'g.json')
    save_grouping(grouping, [k % 10 for k in range(K)],
                  [(k * 7) % 10 for k in range(K)], 'manual', 'test')
    fits = str(tmp / 'fits.pth')
    torch.save(dict(state_dict=_model().state_dict()), fits)
    default = _model().head.head_conv
    other = str(tmp / 'other_head_conv.pth')
    torch.save(dict(state_dict=_model(head_conv=default // 2).state_dict()),
               other)
    return dict(tmp=tmp, grouping=grouping, fits=fits, other=other,
                head_conv=default)


def _tool():
    return load_tool('model_converters/init_grouped_head.py')


def test_fitting_checkpoint_is_written_and_loads(files, capsys):
    dst = str(files['tmp'] / 'grouped.pth')
    info = _tool().main(
        [files['fits'], files['grouping'], dst, '--config', CONFIG])
    assert info['checked'] and osp.isfile(dst)
    assert 'fits the model of --config' in capsys.readouterr().out
    grouped = _model(grouping=files['grouping'])
    load_checkpoint(grouped, dst, strict=True)


def test_checkpoint_of_another_architecture_is_refused(files):
    dst = files['tmp'] / 'refused.pth'
    hc, half = files['head_conv'], files['head_conv'] // 2
    with pytest.raises(SystemExit) as e:
        _tool().main(
            [files['other'], files['grouping'], str(dst), '--config', CONFIG])
    msg = str(e.value.code)
    assert msg.startswith(f"error: checkpoint {files['other']!r} does not "
                          'fit the grouped model: ')
    # a tensor outside the grouped rows, with both shapes
    assert '18 tensor(s) of other shapes: ' in msg  # 6 branches x 3
    assert (f"'head.center_heatmap.0.weight' ({half}, 32, 3, 3) vs model "
            f'({hc}, 32, 3, 3)') in msg
    assert 'nothing was written' in msg
    assert not dst.exists()


def test_without_config_it_is_not_checked_but_loading_refuses(files, capsys):
    dst = str(files['tmp'] / 'unchecked.pth')
    info = _tool().main([files['other'], files['grouping'], dst])
    assert not info['checked']
    assert 'not checked against a model (pass --config)' in \
        capsys.readouterr().out
    # the load-time check of CenterNetPoseEstimator still refuses it
    with pytest.raises(RuntimeError, match='head.center_heatmap.0.weight'):
        load_checkpoint(_model(grouping=files['grouping']), dst)


def test_check_fits_model_lists_shapes_missing_and_extra():
    model = {'a': torch.zeros(2, 3), 'b': torch.zeros(4), 'c': torch.zeros(1)}
    check_fits_model({k: v.clone() for k, v in model.items()}, model)
    ckpt = {'a': torch.zeros(3, 3), 'b': torch.zeros(4), 'x': torch.zeros(1)}
    with pytest.raises(ValueError) as e:
        check_fits_model(ckpt, model, 'ckpt.pth')
    msg = str(e.value)
    assert msg.startswith('ckpt.pth does not fit the grouped model: ')
    assert "1 tensor(s) of other shapes: 'a' (3, 3) vs model (2, 3)" in msg
    assert "1 tensor(s) of the model missing: 'c'" in msg
    assert "1 tensor(s) the model does not have: 'x'" in msg


def test_grouped_model_state_needs_a_centernet_config(files):
    sa = osp.join(REPO_ROOT, 'configs/soft_argmax/toy_persons/'
                  'td-sa_res18-s8_1xb16-4e_toy-persons-64x48.py')
    with pytest.raises(ValueError, match='is not a CenterNetPoseHead'):
        grouped_model_state(sa, files['grouping'])

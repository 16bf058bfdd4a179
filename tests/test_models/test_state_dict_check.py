"""Checkpoints whose tensors do not fit the model are refused at load time
(``mmkp_ext.models.utils.state_dict_check``).

mmengine's ``load_checkpoint`` loads non-strictly: before this check a
17-keypoint checkpoint in a 14-keypoint config (or an ungrouped CenterNet
checkpoint in a grouped config) only logged a size-mismatch warning, kept
the random head and ``tools/test.py`` reported AP 0.000 with exit 0. Now
each of our heads, the soft-gated backbone (its last layers are per
keypoint) and our estimators (CenterNet, TTA, ensemble: whole model) raise
:class:`CheckpointShapeError` naming the tensor, both shapes and the fix.
"""
import os.path as osp

import pytest
import torch
from _helpers import REPO_ROOT, run_python
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import load_checkpoint
from torch import nn

import mmkp_ext  # noqa: F401
from mmkp_ext.datasets import make_toy_dataset
from mmkp_ext.grouping import save_grouping
from mmkp_ext.models.utils import (CheckpointShapeError,
                                   refuse_mismatched_shapes)
from mmkp_ext.utils import mmpose_tool_path
from mmpose.registry import MODELS

SA_CONFIG = osp.join(
    REPO_ROOT, 'configs/soft_argmax/toy_persons/'
    'td-sa_res18-s8_1xb16-4e_toy-persons-64x48.py')
CN_CONFIG = osp.join(
    REPO_ROOT, 'configs/centernet_grouping/toy_fashion/'
    'cn-pose_dla34-tiny_1xb16-80e_toy-fashion-128x128.py')


def _build(cfg):
    with DefaultScope.overwrite_default_scope('mmpose'):
        return MODELS.build(cfg)


class _Holder(nn.Module):
    """A model with the component under ``head.`` (as in an estimator)."""

    def __init__(self, head):
        super().__init__()
        self.head = head


def _save(module, path):
    torch.save(dict(meta=dict(), state_dict=module.state_dict()), path)
    return str(path)


def test_mechanism_on_a_plain_module():
    """Shape mismatches are refused (strict or not, listing all of them);
    absent keys and matching shapes load as before."""
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    refuse_mismatched_shapes(m, fix='do X')
    good = {k: torch.full_like(v, 7.0) for k, v in m.state_dict().items()}
    m.load_state_dict(good)
    assert torch.all(m[0].weight == 7)
    # absent keys stay allowed in non-strict loads (partial initialisation)
    res = m.load_state_dict({'0.weight': torch.zeros(3, 2)}, strict=False)
    assert '0.bias' in res.missing_keys and torch.all(m[0].weight == 0)
    bad = dict(good)
    bad['0.weight'] = torch.zeros(4, 2)
    bad['1.running_mean'] = torch.zeros(4)
    for strict in (True, False):
        with pytest.raises(CheckpointShapeError) as e:
            m.load_state_dict(bad, strict=strict)
        msg = str(e.value)
        assert msg.startswith('Sequential: the checkpoint does not fit')
        assert "2 tensor(s) with other shapes" in msg
        assert "'0.weight' checkpoint (4, 2) vs model (3, 2)" in msg
        assert "'1.running_mean' checkpoint (4,) vs model (3,)" in msg
        assert msg.endswith('Fix: do X')
    assert torch.all(m[0].weight == 0)  # nothing was loaded


def _soft_argmax(k):
    return dict(type='SoftArgmaxHead', in_channels=8, num_joints=k,
                conv_out_channels=(8, ), conv_kernel_sizes=(3, ))


def _poseur(k):
    return dict(type='PoseurHead', num_joints=k, in_channels=32,
                num_feature_levels=1, num_decoder_layers=1, num_heads=4,
                num_points=2, feedforward_channels=64)


def _higherhrnet(k):
    return dict(type='HigherHRNetHead', in_channels=8, num_keypoints=k,
                deconv_channels=8, num_basic_blocks=1)


def _soft_gated(k):
    return dict(type='SoftGatedHourglass', num_stacks=1, channels=16,
                depth=1, num_keypoints=k, stem_channels=(8, 16))


@pytest.mark.parametrize('make,key', [
    (_soft_argmax, 'head.final_layer.weight'),
    (_poseur, None),
    (_higherhrnet, 'head.final_layers.0.weight'),
    (_soft_gated, None),
])
def test_17_keypoint_checkpoint_into_14_keypoint_component(
        make, key, tmp_path):
    """mmengine's (non-strict) load_checkpoint refuses it, naming the
    tensor and both shapes; the 17-keypoint model loads its own."""
    ckpt = _save(_Holder(_build(make(17))), tmp_path / 'k17.pth')
    load_checkpoint(_Holder(_build(make(17))), ckpt)  # fits: no error
    model = _Holder(_build(make(14)))
    with pytest.raises(CheckpointShapeError) as e:
        load_checkpoint(model, ckpt)
    msg = str(e.value)
    assert 'the checkpoint does not fit this model' in msg
    assert 'use a checkpoint trained with this config' in msg
    ours = dict(model.state_dict())
    state = torch.load(ckpt, weights_only=True)['state_dict']
    if key is None:  # the first per-keypoint tensor
        key = next(k for k, v in ours.items() if v.shape != state[k].shape)
    theirs, mine = tuple(state[key].shape), tuple(ours[key].shape)
    assert f'{key!r} checkpoint {theirs} vs model {mine}' in msg
    # the keypoint dimension: 17 (x2 for x/y rows) against 14 (x2)
    diff = [(a, b) for a, b in zip(theirs, mine) if a != b]
    assert len(diff) == 1 and diff[0][0] * 14 == diff[0][1] * 17
    # every mismatch is listed
    n = sum(v.shape != state[k].shape for k, v in ours.items())
    assert f'{n} tensor(s) with other shapes' in msg


def _centernet(grouping=None):
    cfg = Config.fromfile(CN_CONFIG)
    cfg.model.head.head_conv = 8
    cfg.model.head.pop('decoder')
    if grouping is not None:
        cfg.model.head.grouping_file = grouping
    return _build(cfg.model)


def test_ungrouped_centernet_checkpoint_into_grouped_config(tmp_path):
    grouping = str(tmp_path / 'g.json')
    save_grouping(grouping, [k % 10 for k in range(32)],
                  [(k * 7) % 10 for k in range(32)], 'manual', 'test')
    ckpt = _save(_centernet(), tmp_path / 'ungrouped.pth')
    grouped = _centernet(grouping)
    with pytest.raises(CheckpointShapeError) as e:
        load_checkpoint(grouped, ckpt)
    msg = str(e.value)
    assert msg.startswith('CenterNetPoseEstimator: the checkpoint does not')
    assert "'head.keypoint_reg.2.weight' checkpoint (64, 8, 1, 1) vs " \
           "model (20, 8, 1, 1)" in msg
    assert "'head.keypoint_heatmap.2.weight' checkpoint (32, 8, 1, 1)" in msg
    assert 'tools/model_converters/init_grouped_head.py' in msg


@pytest.mark.parametrize('name,owner,key', [
    ('td-sa-tta_hrnetpp-w16-tiny_1xb16-6e_toy-persons-128x96',
     'TopdownTTAPoseEstimator', 'backbone.conv1.weight'),
    ('td-ensemble-hm-sa_hrnetpp-w16-tiny_toy-persons-128x96',
     'EnsemblePoseEstimator', 'members.0.backbone.conv1.weight'),
])
def test_tta_and_ensemble_estimators_refuse(name, owner, key, tmp_path):
    """Whole-model check of our estimators: a mismatch outside any head
    (the backbone's stem) is refused too."""
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, f'configs/hrnetpp/toy_persons/{name}.py'))
    model = _build(cfg.model)
    sd = model.state_dict()
    sd[key] = torch.zeros(3, 3, 3, 3)
    path = tmp_path / 'x.pth'
    torch.save(dict(state_dict=sd), path)
    with pytest.raises(CheckpointShapeError) as e:
        load_checkpoint(model, str(path))
    assert str(e.value).startswith(f'{owner}: the checkpoint does not fit')
    assert f"'{key}' checkpoint (3, 3, 3, 3) vs model " in str(e.value)


def test_stock_test_py_fails_at_load_with_the_message(tmp_path):
    """mmpose's own tools/test.py on a 14-keypoint soft-argmax config with
    a 17-keypoint checkpoint: non-zero exit at load, the message, no
    metric. (Without the check the load only warns and the run goes on to
    inference, here failing in the first batch on the 17-keypoint data.)"""
    root = tmp_path / 'toy'
    make_toy_dataset('persons', str(root), num_images=2, val_fraction=0.5,
                     image_size=64)
    cfg = Config.fromfile(SA_CONFIG)
    ckpt = _save(_build(cfg.model), tmp_path / 'k17.pth')
    opts = ['model.head.num_joints=14',
            f'test_dataloader.dataset.data_root={root}/',
            'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False',
            f'test_evaluator.ann_file={root}/annotations/val.json']
    proc = run_python([mmpose_tool_path('test.py'), SA_CONFIG, ckpt,
                       '--work-dir', str(tmp_path / 'work'),
                       '--cfg-options', *opts], check=False, timeout=300)
    out = proc.stdout
    assert proc.returncode != 0, out[-3000:]
    assert 'CheckpointShapeError: SoftArgmaxHead: the checkpoint does not ' \
           'fit this model' in out, out[-3000:]
    assert "'head.final_layer.weight' checkpoint (17, " in out
    assert 'coco/AP' not in out

"""Ungrouped -> grouped CenterNet checkpoint
(``mmkp_ext.converters.grouped_centernet_head``): grouped rows are the
member means, the grouped model loads it with strict=True and computes the
same features, and mismatched inputs fail with errors that name the
mismatch."""
import numpy as np
import pytest
import torch
from _helpers import REPO_ROOT, randomise_
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmkp_ext.converters.grouped_centernet_head import (
    convert_checkpoint, group_head_state_dict, load_checkpoint_file,
    read_head_rows)
from mmkp_ext.grouping import save_grouping
from mmpose.registry import MODELS

CONFIG = (REPO_ROOT + '/configs/centernet_grouping/toy_fashion/'
          'cn-pose_dla34-tiny_1xb16-80e_toy-fashion-128x128.py')
K = 32
# Regression groups mix categories and merge neighbours; heatmap groups
# differ from them (10 groups each, none empty).
REG = [k % 10 for k in range(K)]
HM = [(k * 7) % 10 for k in range(K)]


def build(grouping=None):
    cfg = Config.fromfile(CONFIG)
    cfg.model.head.head_conv = 8
    cfg.model.head.pop('decoder')
    if grouping is not None:
        cfg.model.head.grouping_file = grouping
    with DefaultScope.overwrite_default_scope('mmpose'):
        return MODELS.build(cfg.model).eval()


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('grouped_init')
    grouping = str(tmp / 'g.json')
    save_grouping(grouping, REG, HM, 'manual', 'test')
    model = randomise_(build(), seed=1)
    src = str(tmp / 'ungrouped.pth')
    torch.save(dict(meta=dict(epoch=3), state_dict=model.state_dict(),
                    optimizer=dict(state={})), src)
    dst = str(tmp / 'grouped.pth')
    info = convert_checkpoint(src, grouping, dst)
    return dict(model=model, grouping=grouping, src=src, dst=dst, info=info,
                tmp=tmp)


def test_grouped_rows_are_member_means(converted):
    ckpt, state = load_checkpoint_file(converted['dst'])
    assert set(ckpt) == {'meta', 'state_dict'}  # no optimizer state
    assert ckpt['meta']['epoch'] == 3
    assert ckpt['meta']['grouping_init']['num_reg_groups'] == 10
    old = converted['model'].state_dict()
    w_reg, b_reg = (state['head.keypoint_reg.2.weight'],
                    state['head.keypoint_reg.2.bias'])
    w_hm, b_hm = (state['head.keypoint_heatmap.2.weight'],
                  state['head.keypoint_heatmap.2.bias'])
    assert w_reg.shape[0] == 20 and w_hm.shape[0] == 10
    for g in range(10):
        reg_members = [k for k in range(K) if REG[k] == g]
        hm_members = [k for k in range(K) if HM[k] == g]
        for c in (0, 1):  # x rows, then y rows, separately
            rows = [2 * k + c for k in reg_members]
            want = old['head.keypoint_reg.2.weight'][rows].double().mean(0)
            assert torch.equal(w_reg[2 * g + c], want.float())
            want = old['head.keypoint_reg.2.bias'][rows].double().mean()
            assert b_reg[2 * g + c] == want.float()
        want = old['head.keypoint_heatmap.2.weight'][hm_members].double()
        assert torch.equal(w_hm[g], want.mean(0).float())
        want = old['head.keypoint_heatmap.2.bias'][hm_members].double()
        assert b_hm[g] == want.mean().float()
    # Everything else is copied unchanged.
    changed = {f'head.{b}.2.{p}' for b in ('keypoint_reg', 'keypoint_heatmap')
               for p in ('weight', 'bias')}
    assert set(state) == set(old)
    for key in set(old) - changed:
        assert torch.equal(state[key], old[key]), key
    assert converted['info']['copied'] == len(old) - 4


def test_grouped_model_loads_strict_and_matches(converted):
    grouped = build(converted['grouping'])
    _, state = load_checkpoint_file(converted['dst'])
    grouped.load_state_dict(state, strict=True)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        f_old = converted['model'].extract_feat(x)
        f_new = grouped.extract_feat(x)
        out_old = converted['model'].head.forward(f_old)
        out_new = grouped.head.forward(f_new)
    for a, b in zip(f_old, f_new):
        assert torch.equal(a, b)
    for key in ('center_heatmap', 'center_offset', 'box_size',
                'keypoint_offset'):
        assert torch.equal(out_old[key], out_new[key])
    # The last layer is linear: a grouped channel is the mean of its
    # members' ungrouped channels (regression x and y separately).
    reg_old = out_old['keypoint_reg'].view(2, K, 2, 16, 16)
    hm_old = out_old['keypoint_heatmap']
    # Random weights give outputs of a few hundred: float32 summation order
    # differs between the two products, so compare relative to that scale.
    tol = dict(rtol=0, atol=1e-5 * float(reg_old.abs().max()))
    for g in range(10):
        members = [k for k in range(K) if REG[k] == g]
        torch.testing.assert_close(out_new['keypoint_reg'][:, 2 * g:2 * g + 2],
                                   reg_old[:, members].mean(1), **tol)
        members = [k for k in range(K) if HM[k] == g]
        torch.testing.assert_close(out_new['keypoint_heatmap'][:, g],
                                   hm_old[:, members].mean(1), **tol)


def test_mismatches_are_named(converted):
    tmp = converted['tmp']
    other = str(tmp / 'g31.json')
    save_grouping(other, list(range(31)), list(range(31)), 'identity', '')
    _, state = load_checkpoint_file(converted['src'])
    with pytest.raises(ValueError, match='32 keypoint heatmap channels and '
                       '64 regression channels, but the grouping is for 31'):
        convert_checkpoint(converted['src'], other, str(tmp / 'x.pth'))
    # An already grouped checkpoint: 10 / 20 rows for a 32-keypoint grouping.
    with pytest.raises(ValueError, match='10 keypoint heatmap channels'):
        convert_checkpoint(converted['dst'], converted['grouping'],
                           str(tmp / 'x.pth'))
    no_head = {k: v for k, v in state.items() if 'keypoint_reg' not in k}
    with pytest.raises(KeyError, match='keypoint_reg.2.weight'):
        group_head_state_dict(no_head, converted['grouping'])
    with pytest.raises(KeyError, match=r"head keys \['model.head."):
        read_head_rows(state, prefix='model.head.')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_checkpoint_file(str(tmp / 'missing.pth'))
    rows = read_head_rows(state)
    assert rows['reg_weight'].shape == (64, 8, 1, 1)
    np.testing.assert_array_equal(rows['hm_bias'],
                                  state['head.keypoint_heatmap.2.bias'])

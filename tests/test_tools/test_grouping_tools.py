"""tools/analysis_tools/group_keypoints.py and tools/model_converters/init_grouped_head.py end to end (one
subprocess run to show the script works as a command; the rest in-process
through the tools' ``main``, which is what the command runs)."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from _helpers import load_tool, run_python
from sklearn.metrics import adjusted_rand_score

from mmkp_ext.grouping import (build_linkage, cut, euclidean_distances,
                               head_row_features, inconsistent_pairs,
                               keypoint_categories, load_grouping,
                               save_grouping)

K = 32


def tool(name):
    folder = ('analysis_tools' if name == 'group_keypoints' else
              'model_converters')
    return load_tool(f'{folder}/{name}.py')


def head_checkpoint(path, seed):
    """A checkpoint holding the two ungrouped keypoint branches."""
    g = torch.Generator().manual_seed(seed)
    state = {
        'head.keypoint_reg.2.weight': torch.randn(2 * K, 6, 1, 1, generator=g),
        'head.keypoint_reg.2.bias': torch.randn(2 * K, generator=g),
        'head.keypoint_heatmap.2.weight': torch.randn(K, 6, 1, 1, generator=g),
        'head.keypoint_heatmap.2.bias': torch.randn(K, generator=g),
        'backbone.conv.weight': torch.randn(3, 3, generator=g),
    }
    torch.save(dict(meta=dict(seed=seed), state_dict=state), path)
    return state


def test_group_keypoints_from_checkpoints(tmp_path):
    a, b = str(tmp_path / 'a.pth'), str(tmp_path / 'b.pth')
    state_a, state_b = head_checkpoint(a, 0), head_checkpoint(b, 1)
    out = str(tmp_path / 'g.json')
    proc = run_python([
        'tools/analysis_tools/group_keypoints.py', out, '--checkpoint', a,
        '--consensus-checkpoint', b, '--layout', 'toy_fashion', '--plots',
        str(tmp_path / 'plots')
    ])
    assert 'wrote' in proc.stdout
    g = load_grouping(out, num_keypoints=K)
    assert g['method'] == 'conv_weights' and g['source'] == a
    for field in ('reg_group', 'hm_group'):
        assert inconsistent_pairs(g[field], 'toy_fashion') == []
    # Independent: scipy average linkage of the restricted conv-row
    # distances, cut at the written counts.
    cat = keypoint_categories('toy_fashion', K)
    for kind, key, field in (('reg', 'keypoint_reg', 'reg_group'),
                             ('hm', 'keypoint_heatmap', 'hm_group')):
        d = euclidean_distances(head_row_features(
            state_a[f'head.{key}.2.weight'].numpy(), kind, K))
        n = max(g[field]) + 1
        assert g[field] == cut(build_linkage(d, categories=cat), n).tolist()
        d_b = euclidean_distances(head_row_features(
            state_b[f'head.{key}.2.weight'].numpy(), kind, K))
        other = cut(build_linkage(d_b, categories=cat), n)
        assert g['meta']['consensus'][kind]['ari_at_chosen'] == \
            pytest.approx(adjusted_rand_score(g[field], other))
    for name in ('dendrogram_reg', 'dendrogram_hm', 'ambiguity_matrix',
                 'ari_curve'):
        png = tmp_path / 'plots' / f'{name}.png'
        assert png.read_bytes()[:4] == b'\x89PNG'


def test_group_keypoints_annotations_in_process(tmp_path):
    coco = dict(annotations=[
        dict(bbox=[0, 0, 10, 10], keypoints=np.c_[
            np.arange(17) % 10, np.arange(17) // 2, np.full(17, 2)].ravel()
            .tolist())])
    ann = tmp_path / 'ann.json'
    ann.write_text(json.dumps(coco))
    out = tmp_path / 'coco.json'
    tool('group_keypoints').main([
        str(out), '--ann-file', str(ann), '--layout', 'coco', '--restrict',
        'none', '--reg-clusters', '17', '--hm-clusters', '10'])
    g = load_grouping(out, num_keypoints=17)
    assert g['method'] == 'reg:offsets,hm:anti_offsets'
    assert g['reg_group'] == list(range(17)) and max(g['hm_group']) == 9
    assert g['meta']['hm_linkage'] == 'complete'
    assert 'group_keypoints.py' in g['meta']['command']
    with pytest.raises(SystemExit, match='conv distances need --checkpoint'):
        tool('group_keypoints').main([str(out), '--ann-file', str(ann),
                                      '--layout', 'coco', '--reg-distance',
                                      'conv'])


def test_init_grouped_head_cli(tmp_path, capsys):
    src = str(tmp_path / 'a.pth')
    state = head_checkpoint(src, 0)
    grouping = str(tmp_path / 'g.json')
    reg = [k % 14 for k in range(K)]
    save_grouping(grouping, reg, list(range(K)), 'manual', 'test')
    dst = str(tmp_path / 'grouped.pth')
    tool('init_grouped_head').main([src, grouping, dst])
    assert '14 regression / 32 heatmap groups' in capsys.readouterr().out
    new = torch.load(dst, weights_only=False)['state_dict']
    w = new['head.keypoint_reg.2.weight']
    assert w.shape == (28, 6, 1, 1)
    members = [k for k in range(K) if reg[k] == 3]
    old = state['head.keypoint_reg.2.weight']
    assert torch.equal(w[7], old[[2 * k + 1 for k in members]].double()
                       .mean(0).float())  # y row of group 3
    assert torch.equal(new['backbone.conv.weight'],
                       state['backbone.conv.weight'])
    # Mismatched grouping: the error names both keypoint counts.
    bad = str(tmp_path / 'g17.json')
    save_grouping(bad, list(range(17)), list(range(17)), 'identity', '')
    with pytest.raises(SystemExit, match='but the grouping is for 17'):
        tool('init_grouped_head').main([src, bad, str(tmp_path / 'x.pth')])


def test_group_keypoints_df2_62_from_real_fixture(tmp_path):
    """The documented DF2 command on the shared DF2 fixture."""
    from _helpers import shared_data_dir
    ann = osp.join(shared_data_dir(), 'deepfashion2', 'deepfashion2.json')
    if not osp.isfile(ann):
        pytest.skip('shared DF2 fixture absent')
    out = tmp_path / 'df2_62.json'
    tool('group_keypoints').main([
        str(out), '--ann-file', ann, '--layout', 'deepfashion2',
        '--reg-clusters', '62', '--hm-clusters', '62'])
    g = load_grouping(out, num_keypoints=294)
    assert max(g['reg_group']) == max(g['hm_group']) == 61
    assert g['method'] == 'reg:offsets,hm:anti_offsets'
    assert inconsistent_pairs(g['reg_group'], 'deepfashion2') == []
    assert inconsistent_pairs(g['hm_group'], 'deepfashion2') == []
    # The fixture labels only category 11 (keypoints 219-255): the others
    # are reported as never labelled.
    never = g['meta']['annotations']['never_labelled']
    assert len(never) == 263 and 0 in never and 219 not in never

"""Tests of the DeepFashion2 metainfo with official sigmas and of
``DeepFashion2FullDataset``."""
import copy
import fnmatch
import json
import os.path as osp

import mmpose
import numpy as np
import pytest
from _helpers import REPO_ROOT, load_json, shared_data_dir

import mmkp_ext  # noqa: F401
from mmkp_ext.datasets import (DEEPFASHION2_CATEGORY_RANGES,
                               DEEPFASHION2_FULL_METAINFO_FILE,
                               DeepFashion2FullDataset)
from mmpose.datasets.datasets.utils import parse_pose_metainfo
from mmpose.registry import DATASETS

MMPOSE_DF2_META_FILE = osp.join(
    osp.dirname(mmpose.__file__), '.mim', 'configs', '_base_', 'datasets',
    'deepfashion2.py')


def _shared(*parts):
    path = osp.join(shared_data_dir(), *parts)
    if not osp.exists(path):
        pytest.skip(f'real-data fixture not found at {path}')
    return path


@pytest.fixture(scope='module')
def meta():
    return parse_pose_metainfo(dict(from_file=DEEPFASHION2_FULL_METAINFO_FILE))


def test_metainfo_has_294_sigmas_and_mmpose_layout(meta):
    assert osp.isabs(DEEPFASHION2_FULL_METAINFO_FILE)
    assert meta['dataset_name'] == 'deepfashion2'
    assert meta['num_keypoints'] == 294
    sigmas = np.asarray(meta['sigmas'])
    assert sigmas.shape == (294, )
    assert np.all((sigmas > 0.005) & (sigmas < 0.1))
    # everything else is mmpose's own DeepFashion2 metainfo (inherited)
    mmpose_meta = parse_pose_metainfo(dict(from_file=MMPOSE_DF2_META_FILE))
    assert len(mmpose_meta['sigmas']) == 0
    for key in ('keypoint_id2name', 'skeleton_links', 'num_skeleton_links'):
        assert meta[key] == mmpose_meta[key], key
    # ... except one repaired swap: mmpose gives vest_kpt13 (140) no partner
    # while vest_kpt9 (136) points at it
    ours, theirs = meta['flip_indices'], mmpose_meta['flip_indices']
    assert [i for i in range(294) if ours[i] != theirs[i]] == [140]
    assert (theirs[136], theirs[140]) == (140, 140)
    assert (ours[136], ours[140]) == (140, 136)
    np.testing.assert_array_equal(meta['dataset_keypoint_weights'],
                                  mmpose_meta['dataset_keypoint_weights'])


def test_flip_and_skeleton_stay_within_categories(meta):
    owner = np.concatenate([
        np.full(last - first + 1, c)
        for c, (first, last) in enumerate(DEEPFASHION2_CATEGORY_RANGES)
    ])
    assert owner.shape == (294, )
    flip = np.asarray(meta['flip_indices'])
    assert np.all(owner[flip] == owner)
    # a permutation that undoes itself: flipping twice is the identity
    assert np.all(flip[flip] == np.arange(294))
    links = np.asarray(meta['skeleton_links'])
    assert np.all(owner[links[:, 0]] == owner[links[:, 1]])


def test_sigmas_and_ranges_match_official_figures(meta):
    official = load_json(_shared('deepfashion2_meta.json'))
    # the file holds the figures exactly; mmpose parses them to float32
    from mmengine import Config
    raw = Config.fromfile(DEEPFASHION2_FULL_METAINFO_FILE).dataset_info
    assert list(raw.sigmas) == official['sigmas']
    np.testing.assert_array_equal(meta['sigmas'],
                                  np.float32(official['sigmas']))
    cats = sorted(official['categories'], key=lambda c: c['category_id'])
    assert [c['category_id'] for c in cats] == list(range(1, 14))
    assert [(c['first_index'], c['last_index'])
            for c in cats] == list(DEEPFASHION2_CATEGORY_RANGES)
    # the category table in the metainfo file's header agrees too
    with open(DEEPFASHION2_FULL_METAINFO_FILE) as f:
        text = f.read()
    for c in cats:
        assert (f"{c['name']:<22} {c['first_index']:>3}-{c['last_index']}"
                in text), c['name']


def test_metainfo_file_is_package_data():
    # setup.py ships datasets/metainfo/*.py of the mmkp_ext package
    with open(osp.join(REPO_ROOT, 'setup.py')) as f:
        assert "'datasets/metainfo/*.py'" in f.read()
    pkg_root = osp.join(REPO_ROOT, 'mmkp_ext')
    rel = osp.relpath(DEEPFASHION2_FULL_METAINFO_FILE, pkg_root)
    assert fnmatch.fnmatch(rel, 'datasets/metainfo/*.py')
    assert osp.isfile(DEEPFASHION2_FULL_METAINFO_FILE)


@pytest.mark.parametrize('data_mode', ['bottomup', 'topdown'])
def test_dataset_loads_real_fixture(data_mode):
    root = _shared('deepfashion2')
    dataset = DATASETS.build(
        dict(
            type='DeepFashion2FullDataset',
            data_mode=data_mode,
            ann_file=osp.join(root, 'deepfashion2.json'),
            data_prefix=dict(img=root + '/')))
    assert isinstance(dataset, DeepFashion2FullDataset)
    assert len(dataset) == 2
    assert len(dataset.metainfo['sigmas']) == 294
    raw = load_json(osp.join(root, 'deepfashion2.json'))
    for idx in range(2):
        info = dataset.get_data_info(idx)
        ann = [a for a in raw['annotations']
               if a['image_id'] == info['img_id']]
        assert len(ann) == 1
        kpts = np.asarray(ann[0]['keypoints'], np.float32).reshape(294, 3)
        if data_mode == 'bottomup':
            # per-instance category ids arrive as an (N,) int array
            assert info['category_id'].shape == (1, )
            assert info['category_id'].dtype.kind == 'i'
            assert info['category_id'].tolist() == [ann[0]['category_id']]
            assert info['keypoints'].shape == (1, 294, 2)
            np.testing.assert_array_equal(info['keypoints'][0], kpts[:, :2])
        else:
            assert int(info['category_id']) == ann[0]['category_id']
        assert osp.isfile(info['img_path'])


def _broken_copy(tmp_path, edit):
    root = _shared('deepfashion2')
    data = load_json(osp.join(root, 'deepfashion2.json'))
    data = copy.deepcopy(data)
    edit(data)
    path = tmp_path / 'broken.json'
    path.write_text(json.dumps(data))
    return str(path)


def test_unknown_category_id_is_refused(tmp_path):

    def edit(data):
        data['annotations'][1]['category_id'] = 14
        data['categories'].append(dict(id=14, name='cape'))

    ann_file = _broken_copy(tmp_path, edit)
    with pytest.raises(ValueError) as err:
        DeepFashion2FullDataset(ann_file=ann_file, data_mode='bottomup')
    msg = str(err.value)
    assert 'unknown category_id 14' in msg
    assert 'annotation ' in msg and '000265.jpg' in msg and '1..13' in msg


def test_wrong_keypoint_count_is_refused(tmp_path):

    def edit(data):
        data['annotations'][0]['keypoints'] = [0] * (17 * 3)

    ann_file = _broken_copy(tmp_path, edit)
    # checked when the file is loaded: file, annotation id, both counts
    ann_id = load_json(ann_file)['annotations'][0]['id']
    with pytest.raises(
            ValueError,
            match=(r"broken\.json:\n  1 annotation\(s\) has a keypoint count "
                   r"other than the dataset metainfo's 294 \(882 values\): "
                   rf'ids {ann_id} \(17 keypoints, 51 values\)')):
        DeepFashion2FullDataset(ann_file=ann_file, data_mode='bottomup')

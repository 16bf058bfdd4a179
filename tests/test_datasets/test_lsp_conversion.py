"""LSP / LSP-extended joints.mat -> COCO json, on tiny joints.mat files
written here in both official layouts (3x14xN with an occlusion flag,
14x3xN with a visibility flag), then loaded by mmpose's CocoDataset with
the LSP metainfo."""
import json
import os.path as osp
import runpy

import cv2
import numpy as np
import pytest
from _helpers import REPO_ROOT
from scipy.io import savemat

from mmkp_ext.datasets.lsp_conversion import (LSP_KEYPOINT_NAMES,
                                              convert_lsp, load_lsp_joints)

METAINFO = osp.join(REPO_ROOT, 'mmkp_ext/datasets/metainfo/lsp.py')
SIZES = [(60, 80), (50, 40), (70, 90)]  # (w, h) of the three images


def _people():
    """Three people: 0-based x, y (N, 14) and visibility (N, 14).
    Person 1 has joint 13 outside its 50x40 image (-> v = 0) and person 2
    has no joint inside its image at all (-> skipped)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(5, 40, size=(3, 14)).round(2)
    y = rng.uniform(5, 35, size=(3, 14)).round(2)
    vis = rng.random((3, 14)) > 0.3
    x[1, 13] = 55.0  # beyond width 50
    x[2, :] = -10.0  # nothing inside
    return x, y, vis


def _write(tmp_path, layout):
    x, y, vis = _people()
    n = len(x)
    # MATLAB coordinates are 1-based.
    if layout == 'lsp':  # 3 x 14 x N, third row = occlusion flag
        arr = np.stack([x + 1, y + 1, (~vis).astype(float)])  # (3, N, 14)
        arr = arr.transpose(0, 2, 1)
        names = [f'im{k:04d}.jpg' for k in range(1, n + 1)]
    else:  # 14 x 3 x N, third column = visibility flag
        arr = np.stack([x + 1, y + 1, vis.astype(float)])  # (3, N, 14)
        arr = arr.transpose(2, 0, 1)
        names = [f'im{k:05d}.jpg' for k in range(1, n + 1)]
    img_dir = tmp_path / 'images'
    img_dir.mkdir()
    for name, (w, h) in zip(names, SIZES):
        cv2.imwrite(str(img_dir / name), np.full((h, w, 3), 128, np.uint8))
    mat = tmp_path / 'joints.mat'
    savemat(mat, {'joints': arr})
    return mat, img_dir, arr.shape


@pytest.mark.parametrize('layout,shape', [('lsp', (3, 14, 3)),
                                          ('lspet', (14, 3, 3))])
def test_both_layouts_convert_to_the_same_people(tmp_path, layout, shape):
    mat, img_dir, written = _write(tmp_path, layout)
    assert written == shape
    xy, visible, detected = load_lsp_joints(str(mat))
    x, y, vis = _people()
    assert detected == layout
    np.testing.assert_allclose(xy[..., 0], x)
    np.testing.assert_allclose(xy[..., 1], y)
    np.testing.assert_array_equal(visible, vis)

    out = tmp_path / 'ann' / 'out.json'
    summary = convert_lsp(str(mat), str(img_dir), str(out))
    assert summary == dict(layout=layout, num_images=3, num_annotations=2,
                           num_skipped=1, out_file=str(out))
    coco = json.loads(out.read_text())
    assert [im['width'] for im in coco['images']] == [w for w, _ in SIZES]
    assert [im['height'] for im in coco['images']] == [h for _, h in SIZES]
    assert coco['categories'][0]['keypoints'] == LSP_KEYPOINT_NAMES
    for ann in coco['annotations']:
        i = ann['image_id'] - 1
        k = np.array(ann['keypoints']).reshape(14, 3)
        inside = np.ones(14, bool)
        if i == 1:
            inside[13] = False
        expected_v = np.where(inside, np.where(vis[i], 2, 1), 0)
        np.testing.assert_array_equal(k[:, 2], expected_v)
        np.testing.assert_allclose(k[inside, 0], x[i, inside], atol=1e-3)
        np.testing.assert_allclose(k[inside, 1], y[i, inside], atol=1e-3)
        assert np.all(k[~inside, :2] == 0)
        assert ann['num_keypoints'] == int(inside.sum())
        # Box: tight box of the usable joints + 10% per side, clipped.
        w, h = SIZES[i]
        x0, x1 = x[i, inside].min(), x[i, inside].max()
        y0, y1 = y[i, inside].min(), y[i, inside].max()
        px, py = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
        bx0, by0 = max(x0 - px, 0), max(y0 - py, 0)
        bx1, by1 = min(x1 + px, w - 1), min(y1 + py, h - 1)
        np.testing.assert_allclose(ann['bbox'],
                                   [bx0, by0, bx1 - bx0, by1 - by0],
                                   atol=2e-3)
        assert ann['area'] == pytest.approx((bx1 - bx0) * (by1 - by0),
                                            abs=0.01)

    # mmpose reads it with the LSP metainfo (flip pairs: 14 joints).
    from mmpose.datasets import CocoDataset
    ds = CocoDataset(data_root=str(tmp_path), ann_file=str(out),
                     data_prefix=dict(img=str(img_dir) + '/'),
                     metainfo=dict(from_file=METAINFO), data_mode='topdown',
                     test_mode=True, pipeline=[])
    assert len(ds) == 2
    assert ds.metainfo['flip_indices'] == [5, 4, 3, 2, 1, 0, 11, 10, 9, 8,
                                           7, 6, 12, 13]
    info = ds.get_data_info(0)
    np.testing.assert_allclose(info['keypoints'][0, :, 0], x[0], atol=1e-3)


def test_split_range_and_cli(tmp_path, capsys):
    mat, img_dir, _ = _write(tmp_path, 'lsp')
    out = tmp_path / 'test.json'
    # The CLI's main() in-process (a subprocess would re-import mmpose).
    cli = runpy.run_path(osp.join(REPO_ROOT, 'tools/dataset_converters/convert_lsp.py'))
    cli['main']([str(mat), str(img_dir), str(out), '--start', '1',
                 '--image-prefix', 'images/'])
    assert 'lsp: 2 images, 1 people (1 without usable joints)' in \
        capsys.readouterr().out
    coco = json.loads(out.read_text())
    assert [im['id'] for im in coco['images']] == [2, 3]
    assert coco['images'][0]['file_name'] == 'images/im0002.jpg'


def test_bad_files_fail_clearly(tmp_path):
    bad = tmp_path / 'bad.mat'
    savemat(bad, {'joints': np.zeros((2, 14, 3))})
    with pytest.raises(ValueError, match='neither the LSP layout'):
        load_lsp_joints(str(bad))
    savemat(bad, {'points': np.zeros((3, 14, 2))})
    with pytest.raises(ValueError, match='no variable "joints"'):
        load_lsp_joints(str(bad))
    mat, img_dir, _ = _write(tmp_path, 'lspet')
    with pytest.raises(ValueError, match="not in the requested 'lsp'"):
        load_lsp_joints(str(mat), layout='lsp')
    arr = np.zeros((14, 3, 2))
    arr[:, 2, :] = 0.5
    savemat(bad, {'joints': arr})
    with pytest.raises(ValueError, match='must be 0 or 1'):
        load_lsp_joints(str(bad))
    with pytest.raises(FileNotFoundError, match='im00001.jpg'):
        convert_lsp(str(mat), str(tmp_path), str(tmp_path / 'o.json'))

"""Convert the official Leeds Sports Pose annotations (``joints.mat``) to the
COCO-style keypoint json that mmpose's ``CocoDataset`` reads (top-down mode,
with the LSP metainfo ``mmkp_ext/datasets/metainfo/lsp.py``).

The two releases store the same 14 joints differently:

=========  ===============  ==========================================
release    array ``joints``  third value per joint
=========  ===============  ==========================================
LSP        ``3 x 14 x N``   an OCCLUSION flag: 0 = visible, 1 = occluded
           (N = 2000)       (the README calls it "visibility", but it is
                            inverted: the LSP tools of CPM/DeepCut use
                            ``1 - flag``)
LSPET      ``14 x 3 x N``   a VISIBILITY flag: 1 = visible, 0 = occluded
           (N = 10000)
=========  ===============  ==========================================

(``x, y`` are 1-based MATLAB pixel coordinates in both; the converter
subtracts 1 so that they are 0-based like COCO's.) Images are
``im%04d.jpg`` (LSP) and ``im%05d.jpg`` (LSPET), numbered from 1.

Written per person (one per image): ``keypoints`` as COCO triplets with
``v = 2`` visible, ``v = 1`` occluded, ``v = 0`` not usable (non-finite or
outside the image; then ``x = y = 0``), ``bbox`` the tight box of the usable
joints grown by ``box_padding`` of its size on each side and clipped to the
image, ``area`` = box area. People without a usable joint are skipped.
"""
import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'LSP_LAYOUTS', 'LSP_KEYPOINT_NAMES', 'LSP_SKELETON', 'load_lsp_joints',
    'lsp_to_coco', 'convert_lsp'
]

#: layout name -> (array shape pattern, image file pattern)
LSP_LAYOUTS = {
    'lsp': ('3x14xN', 'im{:04d}.jpg'),
    'lspet': ('14x3xN', 'im{:05d}.jpg'),
}

#: Joint names in joints.mat order (the person's right/left).
LSP_KEYPOINT_NAMES = [
    'right_ankle', 'right_knee', 'right_hip', 'left_hip', 'left_knee',
    'left_ankle', 'right_wrist', 'right_elbow', 'right_shoulder',
    'left_shoulder', 'left_elbow', 'left_wrist', 'neck', 'head_top'
]

#: Limbs as 0-based joint index pairs (the metainfo's skeleton).
LSP_SKELETON = [(0, 1), (1, 2), (3, 4), (4, 5), (2, 3), (2, 8), (3, 9),
                (8, 7), (7, 6), (9, 10), (10, 11), (8, 12), (9, 12),
                (12, 13)]


def _detect_layout(shape: Tuple[int, ...]) -> str:
    if len(shape) == 3 and shape[0] == 3 and shape[1] == 14:
        return 'lsp'
    if len(shape) == 3 and shape[0] == 14 and shape[1] == 3:
        return 'lspet'
    raise ValueError(
        f'joints array of shape {shape} is neither the LSP layout 3x14xN '
        'nor the LSP-extended layout 14x3xN')


def load_lsp_joints(mat_path: str,
                    layout: str = 'auto'
                    ) -> Tuple[np.ndarray, np.ndarray, str]:
    """Read ``joints`` from an LSP / LSPET ``joints.mat``.

    Args:
        mat_path: path of the .mat file (variable ``joints``).
        layout: ``'lsp'``, ``'lspet'`` or ``'auto'`` (from the shape).

    Returns:
        tuple: ``xy`` ``(N, 14, 2)`` float64 0-based pixel coordinates,
        ``visible`` ``(N, 14)`` bool (True = visible, False = occluded,
        whatever the file's flag convention), and the layout name.

    Raises:
        ValueError: no ``joints`` variable, a shape that fits neither layout
            (or not the given one), or flags other than 0/1.
    """
    from scipy.io import loadmat
    mat = loadmat(mat_path)
    if 'joints' not in mat:
        keys = sorted(k for k in mat if not k.startswith('__'))
        raise ValueError(f'{mat_path}: no variable "joints" (found {keys})')
    arr = np.asarray(mat['joints'], dtype=np.float64)
    detected = _detect_layout(arr.shape)
    if layout == 'auto':
        layout = detected
    elif layout not in LSP_LAYOUTS:
        raise ValueError(f'unknown layout {layout!r}; choose one of '
                         f"{tuple(LSP_LAYOUTS)} or 'auto'")
    elif layout != detected:
        raise ValueError(
            f'{mat_path}: joints of shape {arr.shape} are in the '
            f'{detected!r} layout ({LSP_LAYOUTS[detected][0]}), not in the '
            f'requested {layout!r} layout ({LSP_LAYOUTS[layout][0]})')
    # -> (N, 14, 3)
    per_person = arr.transpose(2, 1, 0) if layout == 'lsp' else \
        arr.transpose(2, 0, 1)
    flag = per_person[..., 2]
    if not np.all(np.isin(flag, (0.0, 1.0))):
        raise ValueError(f'{mat_path}: the third joint value must be 0 or 1,'
                         f' got {np.unique(flag)[:10]}')
    visible = flag == 0 if layout == 'lsp' else flag == 1
    xy = per_person[..., :2] - 1.0  # MATLAB 1-based -> 0-based pixels
    return xy, visible, layout


def lsp_to_coco(xy: np.ndarray,
                visible: np.ndarray,
                file_names: Sequence[str],
                image_sizes: Sequence[Tuple[int, int]],
                image_ids: Optional[Sequence[int]] = None,
                box_padding: float = 0.1) -> Dict[str, list]:
    """Build the COCO keypoint dict of single-person images.

    Args:
        xy: ``(N, 14, 2)`` 0-based pixel coordinates.
        visible: ``(N, 14)`` bool visibility.
        file_names: N image file names.
        image_sizes: N ``(width, height)`` in pixels.
        image_ids: N ids (default 1..N).
        box_padding: fraction of the joints' box size added on each side.

    Returns:
        dict with ``images``, ``annotations`` (one per person with a usable
        joint, ``id`` = image id) and ``categories`` (person, 14 keypoints,
        1-based skeleton).
    """
    xy = np.asarray(xy, dtype=np.float64)
    visible = np.asarray(visible, dtype=bool)
    n = len(file_names)
    if xy.shape != (n, 14, 2) or visible.shape != (n, 14) or \
            len(image_sizes) != n:
        raise ValueError(
            f'expected xy (N, 14, 2), visible (N, 14) and N file names and '
            f'sizes, got {xy.shape}, {visible.shape}, {n}, '
            f'{len(image_sizes)}')
    if box_padding < 0:
        raise ValueError(f'box_padding must be >= 0, got {box_padding}')
    ids = list(range(1, n + 1)) if image_ids is None else list(image_ids)
    sizes = np.asarray(image_sizes, dtype=np.float64).reshape(n, 2)
    w, h = sizes[:, 0:1], sizes[:, 1:2]  # (N, 1)
    x, y = xy[..., 0], xy[..., 1]
    usable = np.isfinite(x) & np.isfinite(y) & (x >= 0) & (y >= 0) & \
        (x <= w - 1) & (y <= h - 1)
    v = np.where(usable, np.where(visible, 2, 1), 0)
    kx = np.where(usable, x, 0.0)
    ky = np.where(usable, y, 0.0)

    # Tight boxes of the usable joints, vectorised over people.
    big = np.inf
    x0 = np.where(usable, kx, big).min(1)
    y0 = np.where(usable, ky, big).min(1)
    x1 = np.where(usable, kx, -big).max(1)
    y1 = np.where(usable, ky, -big).max(1)
    pad_x = box_padding * (x1 - x0)
    pad_y = box_padding * (y1 - y0)
    bx0 = np.clip(x0 - pad_x, 0, None)
    by0 = np.clip(y0 - pad_y, 0, None)
    bx1 = np.minimum(x1 + pad_x, w[:, 0] - 1)
    by1 = np.minimum(y1 + pad_y, h[:, 0] - 1)

    images, annotations = [], []
    for i in range(n):
        images.append(dict(id=int(ids[i]), file_name=str(file_names[i]),
                           width=int(sizes[i, 0]), height=int(sizes[i, 1])))
        num = int(usable[i].sum())
        if num == 0:
            continue
        bw = float(bx1[i] - bx0[i])
        bh = float(by1[i] - by0[i])
        kpts = np.stack([kx[i], ky[i], v[i]], axis=1)
        annotations.append(
            dict(id=int(ids[i]), image_id=int(ids[i]), category_id=1,
                 iscrowd=0, num_keypoints=num,
                 keypoints=[round(float(t), 3) for t in kpts.ravel()],
                 bbox=[round(float(bx0[i]), 3), round(float(by0[i]), 3),
                       round(bw, 3), round(bh, 3)],
                 area=round(max(bw * bh, 1.0), 3)))
    categories = [
        dict(id=1, name='person', supercategory='person',
             keypoints=list(LSP_KEYPOINT_NAMES),
             skeleton=[[a + 1, b + 1] for a, b in LSP_SKELETON])
    ]
    return dict(images=images, annotations=annotations,
                categories=categories)


def _image_size(path: str) -> Tuple[int, int]:
    try:
        from PIL import Image
        with Image.open(path) as im:
            return im.size
    except ImportError:  # pragma: no cover - PIL comes with mmcv's deps
        import cv2
        arr = cv2.imread(path)
        if arr is None:
            raise OSError(f'cannot read image {path}')
        return arr.shape[1], arr.shape[0]


def convert_lsp(mat_path: str,
                image_dir: str,
                out_file: str,
                layout: str = 'auto',
                start: int = 0,
                stop: Optional[int] = None,
                box_padding: float = 0.1,
                image_prefix: str = '') -> Dict[str, object]:
    """Convert one ``joints.mat`` (or the people ``start:stop`` of it, e.g.
    LSP's standard 0:1000 train / 1000:2000 test split) to COCO json.

    Args:
        mat_path: the official ``joints.mat``.
        image_dir: folder of the release's images (read for their sizes).
        out_file: json to write (folders are created).
        layout: ``'lsp'``, ``'lspet'`` or ``'auto'``.
        start, stop: 0-based person range (``stop=None``: to the end).
        box_padding: see :func:`lsp_to_coco`.
        image_prefix: prepended to each ``file_name`` (e.g. ``'images/'``
            when the config's ``data_prefix`` is the release folder).

    Returns:
        dict with ``layout``, ``num_images``, ``num_annotations``,
        ``num_skipped`` (people without a usable joint) and ``out_file``.
    """
    xy, visible, layout = load_lsp_joints(mat_path, layout)
    n = len(xy)
    stop = n if stop is None else stop
    if not 0 <= start < stop <= n:
        raise ValueError(f'person range {start}:{stop} is not inside the '
                         f'{n} people of {mat_path}')
    pattern = LSP_LAYOUTS[layout][1]
    numbers = list(range(start + 1, stop + 1))  # 1-based image numbers
    names = [pattern.format(k) for k in numbers]
    sizes = []
    for i, name in enumerate(names):
        path = osp.join(image_dir, name)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'image {path} of person {start + i} not found (expected '
                f'the {layout} naming {pattern})')
        sizes.append(_image_size(path))
    coco = lsp_to_coco(xy[start:stop], visible[start:stop],
                       [image_prefix + s for s in names], sizes,
                       image_ids=numbers, box_padding=box_padding)
    out_dir = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    with open(out_file, 'w') as f:
        json.dump(coco, f)
    return dict(layout=layout, num_images=len(coco['images']),
                num_annotations=len(coco['annotations']),
                num_skipped=len(coco['images']) - len(coco['annotations']),
                out_file=out_file)

"""The ``fashion`` toy dataset: multi-class garment landmarks, DeepFashion2
style.

Every category owns a contiguous slice of ONE global keypoint list (as
DeepFashion2's 294 keypoints over 13 categories); an annotation of category
``c`` has ``x = y = v = 0`` outside ``c``'s slice. The layout:

=====  ===================  =====  ===========
 id     name                start  keypoints
=====  ===================  =====  ===========
 1      short_sleeved_top     0     14
 2      trousers             14     10
 3      skirt                24      8
=====  ===================  =====  ===========

Each category's keypoints run around the garment outline (so its skeleton is
the closed outline, and the keypoints are the polygon's vertices), and are
left/right symmetric: ``left_*`` (the wearer's left, the image's right when
the garment faces the camera) swaps with ``right_*`` of the same category.
Everything about the layout (names, order, swaps, outline skeleton, OKS
sigmas, colours) is defined once, in this module; the mmpose metainfo is
derived from it (:func:`fashion_dataset_info`, also behind the config file
:data:`FASHION_METAINFO_FILE`).
"""
import math
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .common import (Painter, annotate_instances, compose_image,
                         log_uniform, random_color, random_pattern,
                         rotation_matrix, sample_anchor, size_bounds)

#: (category name, keypoint-name prefix, BGR colour of its keypoints and
#: links in visualisations, local keypoint names in outline order, OKS sigma
#: per keypoint). The order of this tuple fixes ids (1-based) and slices.
#: Sigmas are keyed by the name without its ``left_`` / ``right_`` side, so
#: mirror partners share one by construction: tight at collars and waists,
#: looser at hems and at points whose position along an edge is ambiguous
#: (knees, sleeve ends).
_LAYOUT: Tuple[Tuple[str, str, Tuple[int, int, int], Tuple[str, ...],
                     Dict[str, float]], ...] = (
    ('short_sleeved_top', 'sst', (255, 128, 0),
     ('collar_center', 'left_neck', 'left_shoulder', 'left_sleeve_outer',
      'left_sleeve_inner', 'left_armpit', 'left_hem', 'hem_center',
      'right_hem', 'right_armpit', 'right_sleeve_inner',
      'right_sleeve_outer', 'right_shoulder', 'right_neck'),
     dict(collar_center=0.025, neck=0.025, shoulder=0.035,
          sleeve_outer=0.040, sleeve_inner=0.040, armpit=0.035, hem=0.045,
          hem_center=0.045)),
    ('trousers', 'trs', (128, 0, 128),
     ('waist_center', 'left_waist', 'left_knee_outer', 'left_hem_outer',
      'left_hem_inner', 'crotch', 'right_hem_inner', 'right_hem_outer',
      'right_knee_outer', 'right_waist'),
     dict(waist_center=0.030, waist=0.030, knee_outer=0.050,
          hem_outer=0.045, hem_inner=0.045, crotch=0.035)),
    ('skirt', 'skt', (64, 128, 128),
     ('waist_center', 'left_waist', 'left_hip', 'left_hem', 'hem_center',
      'right_hem', 'right_hip', 'right_waist'),
     dict(waist_center=0.030, waist=0.030, hip=0.040, hem=0.045,
          hem_center=0.045)),
)

_SIDES = ('left_', 'right_')


def _unsided(name: str) -> str:
    """Local keypoint name without its ``left_`` / ``right_`` prefix."""
    for side in _SIDES:
        if name.startswith(side):
            return name[len(side):]
    return name


def _swap_name(name: str) -> str:
    """Mirror partner of a local keypoint name (itself if unpaired)."""
    if name.startswith('left_'):
        return 'right_' + name[len('left_'):]
    if name.startswith('right_'):
        return 'left_' + name[len('right_'):]
    return name


def _build_layout() -> Tuple[List[dict], Tuple[str, ...], Tuple[int, ...]]:
    """Categories with global slices, global names and global flip indices
    from :data:`_LAYOUT`."""
    categories, names, flip = [], [], []
    start = 0
    for cat_id, (name, prefix, color, local, sigmas) in enumerate(
            _LAYOUT, start=1):
        num = len(local)
        global_names = [f'{prefix}_{n}' for n in local]
        for n in local:
            flip.append(start + local.index(_swap_name(n)))
        categories.append(
            dict(
                id=cat_id,
                name=name,
                prefix=prefix,
                start=start,
                num_keypoints=num,
                keypoints=tuple(global_names),
                # Closed outline, as global 0-based index pairs.
                skeleton=tuple((start + i, start + (i + 1) % num)
                               for i in range(num)),
                color=color,
                sigmas=tuple(sigmas[_unsided(n)] for n in local)))
        names.extend(global_names)
        start += num
    return categories, tuple(names), tuple(flip)


#: One dict per category: ``id`` (1-based), ``name``, ``prefix``, ``start``
#: (first global keypoint index), ``num_keypoints``, ``keypoints`` (global
#: names of its slice), ``skeleton`` (global 0-based index pairs),
#: ``color`` (BGR of its keypoints and links in visualisations) and
#: ``sigmas`` (OKS sigma per keypoint of its slice).
FASHION_CATEGORIES: List[dict]
#: All global keypoint names, ``<prefix>_<local name>``.
FASHION_KEYPOINT_NAMES: Tuple[str, ...]
#: Global index of each keypoint's mirror partner (itself if unpaired).
FASHION_FLIP_INDICES: Tuple[int, ...]
FASHION_CATEGORIES, FASHION_KEYPOINT_NAMES, FASHION_FLIP_INDICES = (
    _build_layout())
#: Length of the global keypoint list.
FASHION_NUM_KEYPOINTS = len(FASHION_KEYPOINT_NAMES)

#: mmpose metainfo config file of this layout (absolute path), for
#: ``metainfo=dict(from_file=FASHION_METAINFO_FILE)`` in configs. It holds
#: no data of its own: its ``dataset_info`` is :func:`fashion_dataset_info`.
FASHION_METAINFO_FILE = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'metainfo',
    'toy_fashion.py')


def fashion_dataset_info() -> dict:
    """mmpose ``dataset_info`` of the layout, built from
    :data:`FASHION_CATEGORIES` (the one source of keypoint names, swaps,
    skeleton, colours and sigmas).

    Returns:
        a new dict with ``dataset_name`` (``'toy_fashion'``),
        ``paper_info``, ``keypoint_info`` (global index -> ``name``, ``id``,
        ``color``, ``type`` (empty: garments have no upper/lower body),
        ``swap``), ``skeleton_info`` (link index -> ``link`` (name pair),
        ``id``, ``color``; each category's closed outline),
        ``joint_weights`` (all 1.0) and ``sigmas`` (one per keypoint), as
        :func:`mmpose.datasets.datasets.utils.parse_pose_metainfo` reads
        them.
    """
    names = FASHION_KEYPOINT_NAMES
    keypoint_info, skeleton_info, sigmas = {}, {}, []
    for cat in FASHION_CATEGORIES:
        color = list(cat['color'])
        for i, sigma in enumerate(cat['sigmas'], start=cat['start']):
            partner = FASHION_FLIP_INDICES[i]
            keypoint_info[i] = dict(
                name=names[i],
                id=i,
                color=color,
                type='',
                swap='' if partner == i else names[partner])
            sigmas.append(sigma)
        for a, b in cat['skeleton']:
            link_id = len(skeleton_info)
            skeleton_info[link_id] = dict(
                link=(names[a], names[b]), id=link_id, color=color)
    return dict(
        dataset_name='toy_fashion',
        paper_info=dict(
            author='mmkp_ext contributors',
            title='Synthetic multi-class garment landmarks laid out like '
            'DeepFashion2 (procedurally generated toy data)',
            container='mmkp_ext',
            year='2026',
            homepage='',
        ),
        keypoint_info=keypoint_info,
        skeleton_info=skeleton_info,
        joint_weights=[1.0] * FASHION_NUM_KEYPOINTS,
        sigmas=sigmas)


def category_slice(category_id: int) -> slice:
    """Slice of the global keypoint list owned by ``category_id``."""
    for cat in FASHION_CATEGORIES:
        if cat['id'] == category_id:
            return slice(cat['start'], cat['start'] + cat['num_keypoints'])
    raise ValueError(f'unknown fashion category id {category_id!r}; valid: '
                     f'{[c["id"] for c in FASHION_CATEGORIES]}')


def coco_categories() -> List[dict]:
    """COCO ``categories`` records: every category lists all global keypoint
    names (annotations carry the full global vector) and its own outline as
    1-based skeleton, plus its slice as ``keypoint_start`` /
    ``keypoint_count``."""
    return [
        dict(
            id=cat['id'],
            name=cat['name'],
            supercategory='clothes',
            keypoints=list(FASHION_KEYPOINT_NAMES),
            skeleton=[[a + 1, b + 1] for a, b in cat['skeleton']],
            keypoint_start=cat['start'],
            keypoint_count=cat['num_keypoints']) for cat in FASHION_CATEGORIES
    ]


# --------------------------------------------------------------------------
# garment outlines, in garment units (y down, x positive = wearer's left)
# --------------------------------------------------------------------------
def _top_outline(rng: np.random.Generator) -> np.ndarray:
    """Short-sleeved top, (14, 2) in outline order; about 1 unit tall."""
    half = rng.uniform(0.4, 0.5)
    neck_w = rng.uniform(0.13, 0.2)
    neck_depth = rng.uniform(0.05, 0.17)
    drop = rng.uniform(0.03, 0.1)
    armpit_y = rng.uniform(0.27, 0.35)
    length = rng.uniform(0.85, 1.1)
    flare = rng.uniform(-0.03, 0.06)
    sides = {}
    for sign in (1.0, -1.0):
        # Sleeve axis from the sleeve root, 35-75 deg from straight down.
        a = math.radians(rng.uniform(35, 75))
        axis = np.array([sign * math.sin(a), math.cos(a)])
        normal = np.array([sign * math.cos(a), -math.sin(a)])
        shoulder = np.array([sign * (half + 0.04), drop])
        armpit = np.array([sign * half, armpit_y])
        cuff = (shoulder + armpit) / 2 + axis * rng.uniform(0.2, 0.33)
        cuff_half = rng.uniform(0.1, 0.14)
        sides[sign] = dict(
            neck=np.array([sign * neck_w, -0.04]),
            shoulder=shoulder,
            sleeve_outer=cuff + normal * cuff_half,
            sleeve_inner=cuff - normal * cuff_half,
            armpit=armpit,
            hem=np.array([sign * (half + flare), length]))
    left, right = sides[1.0], sides[-1.0]
    order = [np.array([0.0, neck_depth])]
    order += [left[k] for k in ('neck', 'shoulder', 'sleeve_outer',
                                'sleeve_inner', 'armpit', 'hem')]
    order += [np.array([0.0, length])]
    order += [right[k] for k in ('hem', 'armpit', 'sleeve_inner',
                                 'sleeve_outer', 'shoulder', 'neck')]
    return np.stack(order)


def _trousers_outline(rng: np.random.Generator) -> np.ndarray:
    """Trousers, (10, 2) in outline order; 0.8-1.2 units tall."""
    waist = rng.uniform(0.36, 0.45)
    crotch = rng.uniform(0.26, 0.36)
    length = rng.uniform(0.8, 1.2)
    sides = {}
    for sign in (1.0, -1.0):
        spread = math.tan(math.radians(rng.uniform(0, 12)))
        outer_x = waist + length * spread
        # Keep a gap between the legs at the hem.
        hem_w = min(rng.uniform(0.28, 0.4), outer_x - 0.04)
        hem_outer = np.array([sign * outer_x, length])
        waist_pt = np.array([sign * waist, 0.0])
        knee = waist_pt + 0.55 * (hem_outer - waist_pt) + np.array(
            [sign * rng.uniform(0.0, 0.03), 0.0])
        sides[sign] = dict(
            waist=waist_pt,
            knee_outer=knee,
            hem_outer=hem_outer,
            hem_inner=np.array([sign * (outer_x - hem_w), length]))
    left, right = sides[1.0], sides[-1.0]
    order = [np.array([0.0, 0.0])]
    order += [left[k] for k in ('waist', 'knee_outer', 'hem_outer',
                                'hem_inner')]
    order += [np.array([0.0, crotch])]
    order += [right[k] for k in ('hem_inner', 'hem_outer', 'knee_outer',
                                 'waist')]
    return np.stack(order)


def _skirt_outline(rng: np.random.Generator) -> np.ndarray:
    """Skirt, (8, 2) in outline order; 0.5-1 units tall."""
    waist = rng.uniform(0.28, 0.36)
    hip_y = rng.uniform(0.18, 0.28)
    length = rng.uniform(0.5, 0.95)
    curve = rng.uniform(0.0, 0.06)
    hip_out = rng.uniform(0.04, 0.1)
    flare = rng.uniform(0.03, 0.35)
    sides = {}
    for sign in (1.0, -1.0):
        # Shared shape with a mild per-side jitter: skirts are near
        # symmetric, and the jitter keeps mirror images distinguishable.
        hip = waist + hip_out * rng.uniform(0.85, 1.15)
        sides[sign] = dict(
            waist=np.array([sign * waist, 0.0]),
            hip=np.array([sign * hip, hip_y]),
            hem=np.array(
                [sign * (hip + flare * rng.uniform(0.85, 1.15)), length]))
    left, right = sides[1.0], sides[-1.0]
    order = [np.array([0.0, 0.0])]
    order += [left[k] for k in ('waist', 'hip', 'hem')]
    order += [np.array([0.0, length + curve])]
    order += [right[k] for k in ('hem', 'hip', 'waist')]
    return np.stack(order)


_OUTLINES = {1: _top_outline, 2: _trousers_outline, 3: _skirt_outline}


@dataclass
class Garment:
    """A placed garment.

    Attributes:
        category_id: 1-based category id (see :data:`FASHION_CATEGORIES`).
        keypoints: (K_c, 2) pixel positions of the category's keypoints, in
            outline order; they are also the vertices of the drawn polygon.
        pattern: fill pattern (see :func:`~.common.render_pattern`).
        line_color: BGR colour of the outline and seams, (3,).
        line_width: outline thickness in pixels.
    """
    category_id: int
    keypoints: np.ndarray
    pattern: dict
    line_color: np.ndarray
    line_width: float


def garment_outline(category_id: int,
                    rng: np.random.Generator) -> np.ndarray:
    """Random outline of a garment of ``category_id`` in garment units,
    (K_c, 2), top centre near the origin, y down, about one unit tall."""
    if category_id not in _OUTLINES:
        category_slice(category_id)  # raises a ValueError naming valid ids
    return _OUTLINES[category_id](rng)


def place_garment(category_id: int,
                  outline: np.ndarray,
                  size: float,
                  center: Sequence[float],
                  rotation_deg: float = 0.0,
                  aspect: float = 1.0,
                  pattern: Optional[dict] = None,
                  line_color: Optional[Sequence[float]] = None) -> Garment:
    """Place an outline in the image.

    Args:
        category_id: category of the outline.
        outline: (K_c, 2) outline in garment units (from
            :func:`garment_outline`).
        size: pixels per garment unit (about the garment's height).
        center: (2,) pixel position of the outline's box centre.
        rotation_deg: in-plane rotation about ``center``, degrees.
        aspect: horizontal stretch factor applied before rotation.
        pattern: fill; mid-grey solid when ``None``.
        line_color: outline colour; darker than the fill when ``None``.
    """
    outline = np.asarray(outline, dtype=np.float64)
    sl = category_slice(category_id)  # also rejects unknown ids
    expected = sl.stop - sl.start
    if outline.shape != (expected, 2):
        raise ValueError(f'category {category_id} needs a ({expected}, 2) '
                         f'outline, got shape {outline.shape}')
    mid = (outline.min(0) + outline.max(0)) / 2
    local = (outline - mid) * np.array([aspect, 1.0]) * size
    pts = np.asarray(center, dtype=np.float64) + local @ rotation_matrix(
        rotation_deg).T
    if pattern is None:
        pattern = dict(
            kind='solid', color=[128.0] * 3, color2=[128.0] * 3, angle=0.0,
            period=8.0, duty=0.5)
    if line_color is None:
        line_color = np.asarray(pattern['color']) * 0.45
    return Garment(
        category_id=int(category_id),
        keypoints=pts,
        pattern=pattern,
        line_color=np.asarray(line_color, dtype=np.float64),
        line_width=max(1.0, 0.012 * size))


def draw_garment(image: np.ndarray, garment: Garment) -> np.ndarray:
    """Draw ``garment`` into ``image`` (H, W, 3) uint8 in place: textured
    polygon, outline, and seams (trousers: waistband and fly; skirt:
    waistband; top: collar).

    Returns:
        (H, W) bool mask of the pixels the garment covers.
    """
    p = Painter(image)
    k = garment.keypoints
    p.polygon(k, garment.pattern['color'], garment.pattern)
    p.polyline(k, garment.line_width, garment.line_color, closed=True)
    names = FASHION_CATEGORIES[garment.category_id - 1]['keypoints']
    idx = {n.split('_', 1)[1]: i for i, n in enumerate(names)}
    if garment.category_id == 1:
        collar = k[[idx['right_neck'], idx['collar_center'],
                    idx['left_neck']]]
        p.polyline(collar, 2.5 * garment.line_width, garment.line_color)
    else:
        # Waistband: a line parallel to the waist, inside the garment by 6 %
        # of its box diagonal. ``across`` points to the wearer's left, so
        # its normal (-y, x) points down the garment.
        extent = np.linalg.norm(k.max(0) - k.min(0))
        across = k[idx['left_waist']] - k[idx['right_waist']]
        normal = np.array([-across[1], across[0]])
        normal /= max(np.linalg.norm(normal), 1e-6)
        band = np.stack([k[idx['right_waist']], k[idx['left_waist']]
                         ]) + normal * 0.06 * extent
        p.polyline(band, garment.line_width, garment.line_color)
        if garment.category_id == 2:
            p.polyline(k[[idx['waist_center'], idx['crotch']]],
                       garment.line_width, garment.line_color)
    return p.mask.astype(bool)


def render_garments(image: np.ndarray,
                    garments: Sequence[Garment]) -> List[np.ndarray]:
    """Draw ``garments`` in list order (later ones in front).

    Returns:
        per garment its (H, W) bool mask.
    """
    return [draw_garment(image, g) for g in garments]


def annotate_garments(garments: Sequence[Garment],
                      masks: Sequence[np.ndarray],
                      occluder_mask: Optional[np.ndarray] = None
                      ) -> List[Optional[dict]]:
    """COCO labels of rendered garments on the global keypoint list.

    Visibility comes from :func:`~.common.annotate_instances`; the
    category's (K_c, 3) labels are written into its slice of a
    (:data:`FASHION_NUM_KEYPOINTS`, 3) zero array.

    Returns:
        per garment ``None`` (fewer than three labelled keypoints) or a dict
        with ``category_id``, ``keypoints`` (FASHION_NUM_KEYPOINTS, 3),
        ``bbox``, ``area``, ``num_keypoints``.
    """
    anns = annotate_instances([g.keypoints for g in garments], masks,
                              occluder_mask)
    out: List[Optional[dict]] = []
    for g, ann in zip(garments, anns):
        if ann is None:
            out.append(None)
            continue
        full = np.zeros((FASHION_NUM_KEYPOINTS, 3), dtype=np.float64)
        full[category_slice(g.category_id)] = ann['keypoints']
        out.append(dict(ann, keypoints=full, category_id=g.category_id))
    return out


def _extent(garment: Garment) -> float:
    """Diagonal of the box of a garment's keypoints, in pixels."""
    k = garment.keypoints
    return float(np.linalg.norm(k.max(0) - k.min(0)))


def sample_garment(rng: np.random.Generator,
                   width: int,
                   height: int,
                   near: Optional[Garment] = None) -> Garment:
    """A random garment placed in a ``width`` x ``height`` image.

    Category uniform; size log-uniform from ~30 px to ~85 % of the shorter
    side; rotation within +-30 degrees; aspect 0.8-1.2. A quarter may extend
    past the border. With ``near`` it is placed overlapping that garment.
    """
    category_id = int(rng.integers(1, len(FASHION_CATEGORIES) + 1))
    outline = garment_outline(category_id, rng)
    s_min, s_max = size_bounds(0.85 * min(width, height))
    size = log_uniform(rng, s_min, s_max)
    if near is not None:
        ref = _extent(near) / math.sqrt(2)
        size = float(np.clip(ref * rng.uniform(0.7, 1.3), s_min, s_max))
        center = near.keypoints.mean(0) + rng.uniform(-0.6, 0.6, 2) * ref
    else:
        center = sample_anchor(rng, width, height, (0.5 * size, 0.5 * size))
    pattern = random_pattern(rng, size, random_color(rng))
    return place_garment(
        category_id,
        outline,
        size,
        center,
        rotation_deg=float(rng.uniform(-30, 30)),
        aspect=float(rng.uniform(0.8, 1.2)),
        pattern=pattern)


def generate_fashion_image(rng: np.random.Generator, width: int,
                           height: int) -> Tuple[np.ndarray, List[dict]]:
    """One image of the fashion dataset.

    Background texture and clutter, 1-3 garments (sometimes overlapping),
    sometimes occluders on top, then pixel noise.

    Returns:
        image (height, width, 3) uint8 BGR and the annotations of garments
        with at least three labelled keypoints (dicts as from
        :func:`annotate_garments`).
    """
    return compose_image(
        rng,
        width,
        height,
        count_probs=(0.4, 0.35, 0.25),
        sample_object=sample_garment,
        render_objects=render_garments,
        annotate_objects=annotate_garments,
        keypoints_of=lambda g: g.keypoints,
        occluder_size_of=_extent)

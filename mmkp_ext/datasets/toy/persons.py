"""The ``persons`` toy dataset: frontal articulated figures, COCO keypoints.

Each figure is built from a small kinematic skeleton (torso lean, head tilt,
shoulder / elbow / hip / knee angles, crouching) in *body units* (standing
height = about 1), then scaled, rotated in-plane and placed in the image.
Figures always face the camera: the person's left side appears on the image's
right when upright, as in COCO. Nothing distinguishes left from right except
that geometry (no colour coding), so a horizontally flipped image is again a
valid frontal figure with the left/right keypoints swapped, which is what
mmpose's flip augmentation and flip test assume.

Drawing order inside one figure: legs, pelvis band, torso, arms, neck, head
(hair, ears, face, eyes, nose, mouth). Occlusion between figures and by
occluders drawn on top is labelled from the rendered masks
(:func:`~.common.annotate_instances`); self-occlusion is not labelled.
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .common import (Painter, annotate_instances, compose_image,
                         log_uniform, random_color, random_pattern,
                         rotation_matrix, sample_anchor, size_bounds,
                         skin_color)

#: The 17 COCO keypoints, in COCO order.
COCO_KEYPOINT_NAMES = ('nose', 'left_eye', 'right_eye', 'left_ear',
                       'right_ear', 'left_shoulder', 'right_shoulder',
                       'left_elbow', 'right_elbow', 'left_wrist',
                       'right_wrist', 'left_hip', 'right_hip', 'left_knee',
                       'right_knee', 'left_ankle', 'right_ankle')

#: COCO skeleton, 1-based keypoint indices as in COCO json files.
COCO_SKELETON = ((16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12),
                 (7, 13), (6, 7), (6, 8), (7, 9), (8, 10), (9, 11), (2, 3),
                 (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7))

#: COCO ``categories`` record of the persons dataset.
PERSON_CATEGORIES = [
    dict(
        id=1,
        name='person',
        supercategory='person',
        keypoints=list(COCO_KEYPOINT_NAMES),
        skeleton=[list(link) for link in COCO_SKELETON])
]

_KPT = {name: i for i, name in enumerate(COCO_KEYPOINT_NAMES)}

# Body proportions in body units (standing height ~0.95: head top at
# -0.47, ankles at +0.48 relative to the pelvis centre).
_NECK_HEIGHT = 0.30
_HEAD_OFFSET = 0.105  # neck -> head centre
_HEAD_RADIUS = 0.066
_UPPER_ARM, _FOREARM = 0.17, 0.155
_THIGH, _SHIN = 0.245, 0.235

# Full thicknesses of the drawn parts, in body units.
_WIDTH = dict(
    thigh=0.095,
    shin=0.07,
    upper_arm=0.065,
    forearm=0.052,
    neck=0.055,
    foot=0.045)


@dataclass
class PersonFigure:
    """A posed figure in image coordinates.

    Attributes:
        keypoints: (17, 2) COCO keypoints in pixels.
        head_center: (2,) head centre in pixels.
        neck: (2,) base of the neck in pixels.
        pelvis: (2,) pelvis centre in pixels (the figure's origin).
        height: nominal standing height in pixels; sets all thicknesses.
        body_rotation: in-plane rotation of the whole figure, degrees.
        head_rotation: body rotation + torso lean + head tilt, degrees.
        torso_rotation: body rotation + torso lean, degrees.
        colors: BGR colours (3,) keyed by ``skin``, ``hair``, ``shirt``,
            ``trousers``, ``shoes``, ``eyes``.
        shirt_pattern: fill pattern of the torso (see
            :func:`~.common.render_pattern`).
        long_sleeves: forearms in shirt colour instead of skin.
        long_trousers: shins in trouser colour instead of skin.
        shoulder_width: half shoulder width, body units.
        hip_width: half hip width, body units.
        extras: pixel positions (2,) of ``left_hand``, ``right_hand``,
            ``left_foot`` and ``right_foot`` (ends of the drawn hands/feet).
    """
    keypoints: np.ndarray
    head_center: np.ndarray
    neck: np.ndarray
    pelvis: np.ndarray
    height: float
    body_rotation: float
    head_rotation: float
    torso_rotation: float
    colors: Dict[str, np.ndarray]
    shirt_pattern: Optional[dict] = None
    long_sleeves: bool = True
    long_trousers: bool = True
    shoulder_width: float = 0.12
    hip_width: float = 0.085
    extras: Dict[str, np.ndarray] = field(default_factory=dict)


def neutral_pose() -> Dict[str, float]:
    """An upright standing pose (angles in degrees, widths in body units):
    arms hanging slightly away from the body, legs straight."""
    return dict(
        lean=0.0,
        head_tilt=0.0,
        face_shift=0.0,
        shoulder_width=0.12,
        hip_width=0.085,
        left_upper_arm=15.0,
        right_upper_arm=15.0,
        left_elbow=0.0,
        right_elbow=0.0,
        left_thigh=5.0,
        right_thigh=5.0,
        left_knee=0.0,
        right_knee=0.0,
        crouch=0.0)


def _arm_angle(rng: np.random.Generator) -> float:
    """Upper-arm angle from hanging straight down, outward positive (deg):
    lowered, sideways or raised."""
    mode = rng.choice(3, p=(0.45, 0.35, 0.2))
    return float(rng.uniform(*((0, 40), (40, 110), (110, 175))[mode]))


def sample_pose(rng: np.random.Generator) -> Dict[str, float]:
    """Random joint angles (degrees) and widths (body units) for
    :func:`figure_from_pose`.

    Limb angles are measured from pointing straight down, positive away from
    the body's midline; ``*_elbow`` / ``*_knee`` are relative bends.
    ``crouch`` in [0, 1] shortens the thighs (foreshortening), spreads the
    knees and brings the shins back in.
    """
    crouch = float(rng.uniform(0.3, 0.9)) if rng.random() < 0.25 else 0.0
    pose = dict(
        lean=float(rng.uniform(-15, 15)),
        head_tilt=float(rng.uniform(-20, 20)),
        face_shift=float(rng.uniform(-0.012, 0.012)),
        shoulder_width=float(rng.uniform(0.105, 0.135)),
        hip_width=float(rng.uniform(0.075, 0.095)),
        crouch=crouch)
    for side in ('left', 'right'):
        pose[f'{side}_upper_arm'] = _arm_angle(rng)
        pose[f'{side}_elbow'] = float(rng.uniform(-130, 100))
        pose[f'{side}_thigh'] = float(rng.uniform(-8, 30))
        pose[f'{side}_knee'] = float(rng.uniform(-25, 15))
    return pose


def _direction(angle_deg: float, sign: float) -> np.ndarray:
    """Unit vector at ``angle_deg`` from straight down, turned outward
    towards the side ``sign`` (+1: person's left = image right)."""
    a = math.radians(angle_deg)
    return np.array([sign * math.sin(a), math.cos(a)])


def body_points(pose: Dict[str, float]) -> Dict[str, np.ndarray]:
    """Joint positions in body units, pelvis centre at the origin, y down.

    Returns:
        dict mapping every COCO keypoint name plus ``neck``,
        ``head_center``, ``left_hand`` / ``right_hand`` and ``left_foot`` /
        ``right_foot`` to a (2,) array.
    """
    r_lean = rotation_matrix(pose['lean'])
    r_head = rotation_matrix(pose['lean'] + pose['head_tilt'])
    crouch = pose['crouch']
    pts = {}
    neck = r_lean @ np.array([0.0, -_NECK_HEIGHT])
    pts['neck'] = neck
    head = neck + r_head @ np.array([0.0, -_HEAD_OFFSET])
    pts['head_center'] = head
    shift = pose['face_shift']
    face = {
        'nose': (shift * 1.4, 0.018),
        'left_eye': (0.026 + shift, -0.012),
        'right_eye': (-0.026 + shift, -0.012),
        'left_ear': (0.061, 0.002),
        'right_ear': (-0.061, 0.002),
    }
    for name, offset in face.items():
        pts[name] = head + r_head @ np.array(offset)
    for sign, side in ((1.0, 'left'), (-1.0, 'right')):
        shoulder = neck + r_lean @ np.array(
            [sign * pose['shoulder_width'], 0.025])
        a1 = pose[f'{side}_upper_arm']
        a2 = a1 + pose[f'{side}_elbow']
        elbow = shoulder + _UPPER_ARM * (r_lean @ _direction(a1, sign))
        wrist = elbow + _FOREARM * (r_lean @ _direction(a2, sign))
        pts[f'{side}_shoulder'] = shoulder
        pts[f'{side}_elbow'] = elbow
        pts[f'{side}_wrist'] = wrist
        pts[f'{side}_hand'] = wrist + 0.03 * (r_lean @ _direction(a2, sign))
        hip = np.array([sign * pose['hip_width'], 0.0])
        t1 = pose[f'{side}_thigh'] + 25.0 * crouch
        t2 = t1 + pose[f'{side}_knee'] - 40.0 * crouch
        knee = hip + _THIGH * (1.0 - 0.5 * crouch) * _direction(t1, sign)
        ankle = knee + _SHIN * (1.0 - 0.1 * crouch) * _direction(t2, sign)
        pts[f'{side}_hip'] = hip
        pts[f'{side}_knee'] = knee
        pts[f'{side}_ankle'] = ankle
        pts[f'{side}_foot'] = ankle + np.array([sign * 0.045, 0.02])
    return pts


def default_colors() -> Dict[str, np.ndarray]:
    """Fixed clothing colours (BGR) for hand-built figures in tests/demos."""
    return dict(
        skin=np.array([150.0, 185.0, 230.0]),
        hair=np.array([30.0, 40.0, 60.0]),
        shirt=np.array([200.0, 90.0, 40.0]),
        trousers=np.array([60.0, 60.0, 60.0]),
        shoes=np.array([20.0, 20.0, 20.0]),
        eyes=np.array([25.0, 25.0, 25.0]))


def sample_colors(rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """Random skin tone, hair and clothing colours (BGR, (3,) each)."""
    return dict(
        skin=skin_color(rng),
        hair=random_color(rng, 0, 90),
        shirt=random_color(rng),
        trousers=random_color(rng),
        shoes=random_color(rng, 0, 80),
        eyes=random_color(rng, 0, 50))


def figure_from_pose(pose: Dict[str, float],
                     height: float,
                     pelvis: Sequence[float],
                     rotation_deg: float = 0.0,
                     colors: Optional[Dict[str, np.ndarray]] = None,
                     shirt_pattern: Optional[dict] = None,
                     long_sleeves: bool = True,
                     long_trousers: bool = True) -> PersonFigure:
    """Place a pose in the image.

    Args:
        pose: joint angles, see :func:`sample_pose` / :func:`neutral_pose`.
        height: standing height in pixels (body unit -> pixels).
        pelvis: (2,) pixel position of the pelvis centre.
        rotation_deg: in-plane rotation about the pelvis, degrees.
        colors: colours as from :func:`sample_colors`; fixed defaults when
            ``None``.
        shirt_pattern: torso fill pattern; solid shirt colour when ``None``.
        long_sleeves / long_trousers: clothing cut.

    Returns:
        PersonFigure with keypoints (17, 2) in pixels.
    """
    rot = rotation_matrix(rotation_deg)
    origin = np.asarray(pelvis, dtype=np.float64)
    body = body_points(pose)
    img = {name: origin + height * (rot @ p) for name, p in body.items()}
    keypoints = np.stack([img[name] for name in COCO_KEYPOINT_NAMES])
    extras = {
        name: img[name]
        for name in ('left_hand', 'right_hand', 'left_foot', 'right_foot')
    }
    return PersonFigure(
        keypoints=keypoints,
        head_center=img['head_center'],
        neck=img['neck'],
        pelvis=origin,
        height=float(height),
        body_rotation=float(rotation_deg),
        head_rotation=float(rotation_deg + pose['lean'] + pose['head_tilt']),
        torso_rotation=float(rotation_deg + pose['lean']),
        colors=default_colors() if colors is None else colors,
        shirt_pattern=shirt_pattern,
        long_sleeves=long_sleeves,
        long_trousers=long_trousers,
        shoulder_width=float(pose['shoulder_width']),
        hip_width=float(pose['hip_width']),
        extras=extras)


def draw_person(image: np.ndarray, figure: PersonFigure) -> np.ndarray:
    """Draw ``figure`` into ``image`` (H, W, 3) uint8 in place.

    Returns:
        (H, W) bool mask of the pixels the figure covers.
    """
    p = Painter(image)
    k = {name: figure.keypoints[i] for name, i in _KPT.items()}
    h = figure.height
    col = figure.colors
    body_rot = rotation_matrix(figure.body_rotation)
    torso_rot = rotation_matrix(figure.torso_rotation)
    head_rot = rotation_matrix(figure.head_rotation)

    def w(part: str) -> float:
        return _WIDTH[part] * h

    shin_color = col['trousers'] if figure.long_trousers else col['skin']
    for side in ('left', 'right'):
        p.capsule(k[f'{side}_hip'], k[f'{side}_knee'], w('thigh'),
                  col['trousers'])
        p.capsule(k[f'{side}_knee'], k[f'{side}_ankle'], w('shin'),
                  shin_color)
        p.capsule(k[f'{side}_ankle'], figure.extras[f'{side}_foot'],
                  w('foot'), col['shoes'])
    # Pelvis band joining the thighs under the shirt.
    hw = figure.hip_width
    band = np.array([[hw + 0.04, -0.03], [-hw - 0.04, -0.03],
                     [-hw - 0.02, 0.06], [hw + 0.02, 0.06]])
    p.polygon(figure.pelvis + h * band @ body_rot.T, col['trousers'])
    # Torso: shoulders out to the arm roots, down to slightly wider hips.
    sw = figure.shoulder_width
    top = np.array([[-sw - 0.03, 0.02], [-0.05, -0.01], [0.05, -0.01],
                    [sw + 0.03, 0.02]])
    torso_top = figure.neck + h * top @ torso_rot.T
    hips = np.array([[hw + 0.035, 0.02], [-hw - 0.035, 0.02]])
    torso_bottom = figure.pelvis + h * hips @ body_rot.T
    p.polygon(np.concatenate([torso_top, torso_bottom]), col['shirt'],
              figure.shirt_pattern)
    forearm_color = col['shirt'] if figure.long_sleeves else col['skin']
    for side in ('left', 'right'):
        p.capsule(k[f'{side}_shoulder'], k[f'{side}_elbow'], w('upper_arm'),
                  col['shirt'])
        p.capsule(k[f'{side}_elbow'], k[f'{side}_wrist'], w('forearm'),
                  forearm_color)
        p.disc(figure.extras[f'{side}_hand'], 0.03 * h, col['skin'])
    p.capsule(figure.neck, figure.head_center, w('neck'), col['skin'])
    # Head: hair disc shifted up behind the face disc, ears at the sides.
    p.disc(figure.head_center + h * head_rot @ np.array([0.0, -0.012]),
           0.071 * h, col['hair'])
    ear_color = np.clip(col['skin'] * 0.85, 0, 255)
    for side in ('left', 'right'):
        p.disc(k[f'{side}_ear'], 0.017 * h, ear_color)
    p.disc(figure.head_center, _HEAD_RADIUS * h, col['skin'])
    for side in ('left', 'right'):
        p.disc(k[f'{side}_eye'], 0.011 * h, col['eyes'])
    p.disc(k['nose'], 0.01 * h, np.clip(col['skin'] * 0.7, 0, 255))
    mouth = np.array([[-0.015, 0.038], [0.015, 0.038]])
    p.capsule(*(figure.head_center + h * mouth @ head_rot.T), 0.007 * h,
              np.clip(col['skin'] * 0.55, 0, 255))
    return p.mask.astype(bool)


def render_persons(image: np.ndarray,
                   figures: Sequence[PersonFigure]) -> List[np.ndarray]:
    """Draw ``figures`` into ``image`` in list order (later ones in front).

    Returns:
        per figure its (H, W) bool mask (all its pixels, also those that
        later figures cover).
    """
    return [draw_person(image, fig) for fig in figures]


def annotate_persons(figures: Sequence[PersonFigure],
                     masks: Sequence[np.ndarray],
                     occluder_mask: Optional[np.ndarray] = None
                     ) -> List[Optional[dict]]:
    """COCO labels of rendered figures (see
    :func:`~.common.annotate_instances`): per figure ``None`` (too few
    labelled keypoints) or a dict with ``category_id`` 1, ``keypoints``
    (17, 3), ``bbox``, ``area``, ``num_keypoints``."""
    anns = annotate_instances([f.keypoints for f in figures], masks,
                              occluder_mask)
    return [None if a is None else dict(a, category_id=1) for a in anns]


def sample_figure(rng: np.random.Generator,
                  width: int,
                  height: int,
                  near: Optional[PersonFigure] = None) -> PersonFigure:
    """A random figure placed in a ``width`` x ``height`` image.

    Height is log-uniform from ~30 px to ~92 % of the image height, rotation
    within +-35 degrees. A quarter of the figures may extend past the image
    border (truncation). With ``near``, the figure is put next to that one
    so that they overlap.
    """
    h_min, h_max = size_bounds(0.92 * height)
    size = log_uniform(rng, h_min, h_max)
    if near is not None:
        # Similar size and horizontally shifted by 20-60 % of the height.
        size = float(np.clip(near.height * rng.uniform(0.75, 1.3), h_min,
                             h_max))
        offset = np.array([
            rng.choice((-1.0, 1.0)) * rng.uniform(0.2, 0.6) * near.height,
            rng.uniform(-0.15, 0.15) * near.height
        ])
        pelvis = near.pelvis + offset
    else:
        # Truncated figures stand low: the pelvis at 20-115 % of the height.
        pelvis = sample_anchor(rng, width, height, (0.3 * size, 0.5 * size),
                               truncated_y=(0.2, 1.15))
    colors = sample_colors(rng)
    pattern = (
        random_pattern(rng, 0.3 * size, colors['shirt'])
        if rng.random() < 0.5 else None)
    return figure_from_pose(
        sample_pose(rng),
        size,
        pelvis,
        rotation_deg=float(rng.uniform(-35, 35)),
        colors=colors,
        shirt_pattern=pattern,
        long_sleeves=bool(rng.random() < 0.5),
        long_trousers=bool(rng.random() < 0.6))


def generate_persons_image(rng: np.random.Generator, width: int,
                           height: int) -> Tuple[np.ndarray, List[dict]]:
    """One image of the persons dataset.

    Background texture and clutter, 1-4 figures (sometimes overlapping,
    lower = nearer = drawn later), sometimes occluders on top, then pixel
    noise.

    Returns:
        image (height, width, 3) uint8 BGR and the annotations of the
        figures that keep at least three labelled keypoints (dicts as from
        :func:`annotate_persons`).
    """
    return compose_image(
        rng,
        width,
        height,
        count_probs=(0.35, 0.3, 0.2, 0.15),
        sample_object=sample_figure,
        render_objects=render_persons,
        annotate_objects=annotate_persons,
        keypoints_of=lambda f: f.keypoints,
        occluder_size_of=lambda f: f.height,
        draw_order=lambda f: f.pelvis[1])

"""Shared pieces of the deterministic synthetic ("toy") keypoint datasets.

The generators in :mod:`.toy_persons` and :mod:`.toy_fashion` draw one image
at a time from a :class:`numpy.random.Generator` and return the image plus
per-instance annotations; this module supplies what they have in common:

* textured backgrounds, clutter and occluders (:func:`textured_background`,
  :func:`draw_distractors`, :func:`draw_occluders`, :func:`render_pattern`),
* a :class:`Painter` that draws into an image and records the covered pixels
  in a mask, so that occlusion, boxes and areas come from what was really
  drawn,
* object sizes and positions (:func:`size_bounds`, :func:`log_uniform`,
  :func:`sample_anchor`) and the scene recipe that turns a generator's
  object sampler and renderer into an image (:func:`compose_image`),
* visibility labelling from the rendered masks (:func:`annotate_instances`),
* COCO-keypoints json assembly, the train/val split by image and writing the
  files (:func:`write_coco_dataset`).

Only numpy and OpenCV are used. Coordinates are pixels with the COCO / mmpose
convention: ``(x, y)`` with ``x`` the column and ``y`` the row of the pixel
centre, so the image covers ``0 <= x <= W - 1`` and ``0 <= y <= H - 1``.
"""
import json
import math
import os
import os.path as osp
from typing import (Callable, Dict, List, Optional, Sequence, Tuple, TypeVar,
                    Union)

import cv2
import numpy as np

#: Smallest accepted image side in pixels: below this the smallest figures
#: (about 30 px) no longer fit together with clutter and truncation.
MIN_IMAGE_SIDE = 64

#: Smallest object size (a person's height, a garment's size) in pixels,
#: unless the image is too small for it (see :func:`size_bounds`).
MIN_OBJECT_SIZE = 30.0

#: Annotations with fewer labelled (v > 0) keypoints are not written.
MIN_LABELLED_KEYPOINTS = 3

#: Image file formats that :func:`write_coco_dataset` can write.
IMAGE_EXTENSIONS = ('jpg', 'png')

#: OpenCV fixed-point shift used for sub-pixel drawing (coordinates * 16).
_SHIFT = 4
_ONE = 1 << _SHIFT

#: A few skin tones (BGR) that the figures and limb-like clutter share, so
#: that skin colour alone does not tell people from clutter.
SKIN_TONES = np.array(
    [[190, 210, 245], [150, 185, 230], [110, 150, 205], [80, 120, 175],
     [60, 90, 140], [45, 65, 100], [170, 200, 235]],
    dtype=np.float64)

#: A placed object of one generator (a person figure, a garment).
T = TypeVar('T')

#: ``generate_image(rng, width, height) -> (image, annotations)`` as used by
#: :func:`write_coco_dataset`.
GenerateFn = Callable[[np.random.Generator, int, int],
                      Tuple[np.ndarray, List[dict]]]


# --------------------------------------------------------------------------
# argument checking
# --------------------------------------------------------------------------
def normalize_image_size(image_size: Union[int, Sequence[int]]
                         ) -> Tuple[int, int]:
    """Return ``(width, height)`` in pixels from an int (square) or a pair.

    Raises:
        ValueError: if the size is not one or two integers, or a side is
            smaller than :data:`MIN_IMAGE_SIDE`.
    """
    if isinstance(image_size, (int, np.integer)) and not isinstance(
            image_size, bool):
        width = height = int(image_size)
    else:
        try:
            width, height = (int(v) for v in image_size)
        except (TypeError, ValueError):
            raise ValueError('image_size must be an int or a (width, height) '
                             f'pair of ints, got {image_size!r}') from None
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ValueError(f'image too small: {width}x{height}; each side must '
                         f'be at least {MIN_IMAGE_SIDE} px')
    return width, height


def check_generation_args(num_images: int, seed: int, val_fraction: float,
                          image_ext: str) -> None:
    """Raise ``ValueError`` for arguments a dataset cannot be built from."""
    if isinstance(num_images, bool) or not isinstance(
            num_images, (int, np.integer)) or num_images < 1:
        raise ValueError(
            f'num_images must be an integer >= 1, got {num_images!r}')
    if isinstance(seed, bool) or not isinstance(
            seed, (int, np.integer)) or seed < 0:
        raise ValueError(f'seed must be an integer >= 0, got {seed!r}')
    if not isinstance(val_fraction, (int, float, np.floating)) or not (
            0.0 <= float(val_fraction) < 1.0):
        raise ValueError(
            f'val_fraction must be in [0, 1), got {val_fraction!r}')
    if image_ext not in IMAGE_EXTENSIONS:
        raise ValueError(f'image_ext must be one of {IMAGE_EXTENSIONS}, '
                         f'got {image_ext!r}')


# --------------------------------------------------------------------------
# geometry and colour helpers
# --------------------------------------------------------------------------
def rotation_matrix(angle_deg: float) -> np.ndarray:
    """2x2 matrix rotating ``(x, y)`` column vectors by ``angle_deg``.

    In image coordinates (y pointing down) a positive angle turns clockwise
    on screen.
    """
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s], [s, c]])


def random_color(rng: np.random.Generator, low: int = 0,
                 high: int = 256) -> np.ndarray:
    """A random BGR colour, shape (3,), float64 values in ``[low, high)``."""
    return rng.uniform(low, high, size=3)


def skin_color(rng: np.random.Generator) -> np.ndarray:
    """A jittered skin tone (BGR, shape (3,), float64 in [0, 255])."""
    base = SKIN_TONES[rng.integers(len(SKIN_TONES))]
    return np.clip(base + rng.normal(0.0, 8.0, size=3), 0, 255)


def _bgr(color: Sequence[float]) -> Tuple[int, int, int]:
    """Colour as the int tuple OpenCV drawing functions expect."""
    return tuple(int(round(float(c))) for c in color)


def _fixed(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates (..., 2) as OpenCV fixed-point int32 (x 16)."""
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(
        np.int32)


# --------------------------------------------------------------------------
# fill patterns
# --------------------------------------------------------------------------
def random_pattern(rng: np.random.Generator, scale: float,
                   color: Optional[np.ndarray] = None) -> dict:
    """Sample a fill pattern description for :func:`render_pattern`.

    Args:
        rng: random generator.
        scale: size in pixels of the object to fill; sets the period.
        color: base BGR colour (3,); random when ``None``.

    Returns:
        dict with ``kind`` in ``{'solid', 'stripes', 'checks', 'dots'}``,
        ``color`` and ``color2`` (BGR lists), ``angle`` (degrees),
        ``period`` (pixels, >= 3) and ``duty`` (fraction of the period taken
        by ``color2``).
    """
    if color is None:
        color = random_color(rng)
    kind = ('solid', 'stripes', 'checks', 'dots')[rng.choice(
        4, p=(0.4, 0.3, 0.15, 0.15))]
    color2 = np.clip(color + rng.uniform(-110, 110, size=3), 0, 255)
    return dict(
        kind=kind,
        color=[float(c) for c in color],
        color2=[float(c) for c in color2],
        angle=float(rng.uniform(0, 180)),
        period=float(max(3.0, scale * rng.uniform(0.06, 0.2))),
        duty=float(rng.uniform(0.25, 0.5)))


def render_pattern(pattern: dict, x0: int, y0: int, width: int,
                   height: int) -> np.ndarray:
    """Render ``pattern`` over the image window ``[x0, x0 + width) x [y0,
    y0 + height)``.

    The pattern is defined in absolute image coordinates, so neighbouring
    windows join seamlessly.

    Returns:
        (height, width, 3) uint8 BGR patch.
    """
    color = np.asarray(pattern['color'], dtype=np.float64)
    if pattern['kind'] == 'solid':
        patch = np.broadcast_to(color, (height, width, 3))
        return np.round(patch).astype(np.uint8)
    yy, xx = np.mgrid[y0:y0 + height, x0:x0 + width].astype(np.float64)
    a = math.radians(pattern['angle'])
    u = xx * math.cos(a) + yy * math.sin(a)
    v = -xx * math.sin(a) + yy * math.cos(a)
    period, duty = pattern['period'], pattern['duty']
    if pattern['kind'] == 'stripes':
        second = np.mod(u, period) < duty * period
    elif pattern['kind'] == 'checks':
        second = (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    elif pattern['kind'] == 'dots':
        du = np.mod(u, period) - period / 2
        dv = np.mod(v, period) - period / 2
        second = du * du + dv * dv < (duty * period)**2
    else:
        raise ValueError(f'unknown pattern kind {pattern["kind"]!r}')
    color2 = np.asarray(pattern['color2'], dtype=np.float64)
    patch = np.where(second[..., None], color2, color)
    return np.round(patch).astype(np.uint8)


# --------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------
class Painter:
    """Draws filled primitives into an image and marks them in a mask.

    Every primitive is drawn with identical geometry into ``image`` (in
    colour) and into ``mask`` (value 1), so the mask is exactly the set of
    pixels this painter changed. One painter is used per object; the
    object's mask then decides occlusion, its box and its area.

    Args:
        image: (H, W, 3) uint8 BGR image, drawn into in place.
    """

    def __init__(self, image: np.ndarray):
        self.image = image
        self.mask = np.zeros(image.shape[:2], dtype=np.uint8)

    def capsule(self, p0: Sequence[float], p1: Sequence[float], width: float,
                color: Sequence[float]) -> None:
        """Thick segment with round ends from ``p0`` to ``p1`` (pixels);
        ``width`` is the full thickness in pixels (at least 1)."""
        a, b = (tuple(int(v) for v in _fixed(p)) for p in (p0, p1))
        t = max(1, int(round(width)))
        cv2.line(self.image, a, b, _bgr(color), t, cv2.LINE_8, _SHIFT)
        cv2.line(self.mask, a, b, 1, t, cv2.LINE_8, _SHIFT)

    def polyline(self, points: np.ndarray, width: float,
                 color: Sequence[float], closed: bool = False) -> None:
        """Thick polyline through ``points`` (N, 2) pixels."""
        pts = [_fixed(points).reshape(-1, 1, 2)]
        t = max(1, int(round(width)))
        cv2.polylines(self.image, pts, closed, _bgr(color), t, cv2.LINE_8,
                      _SHIFT)
        cv2.polylines(self.mask, pts, closed, 1, t, cv2.LINE_8, _SHIFT)

    def disc(self, center: Sequence[float], radius: float,
             color: Sequence[float]) -> None:
        """Filled circle; ``radius`` in pixels (drawn as at least 1 px)."""
        c = tuple(int(v) for v in _fixed(center))
        r = max(_ONE // 2, int(round(radius * _ONE)))
        cv2.circle(self.image, c, r, _bgr(color), -1, cv2.LINE_8, _SHIFT)
        cv2.circle(self.mask, c, r, 1, -1, cv2.LINE_8, _SHIFT)

    def polygon(self, points: np.ndarray, color: Sequence[float],
                pattern: Optional[dict] = None) -> None:
        """Filled polygon with vertices ``points`` (N, 2) pixels, in a solid
        ``color`` or, when given, textured with ``pattern`` (see
        :func:`render_pattern`)."""
        pts = _fixed(points).reshape(-1, 2)
        if pattern is None or pattern['kind'] == 'solid':
            if pattern is not None:
                color = pattern['color']
            cv2.fillPoly(self.image, [pts], _bgr(color), cv2.LINE_8, _SHIFT)
            cv2.fillPoly(self.mask, [pts], 1, cv2.LINE_8, _SHIFT)
            return
        h, w = self.mask.shape
        lo = np.floor(pts.min(0) / _ONE).astype(int) - 1
        hi = np.ceil(pts.max(0) / _ONE).astype(int) + 2
        x0, y0 = max(lo[0], 0), max(lo[1], 0)
        x1, y1 = min(hi[0], w), min(hi[1], h)
        if x1 <= x0 or y1 <= y0:
            return
        # Rasterise into a window-sized mask, then copy the pattern through
        # it: same pixels as a full-image fillPoly, at the window's cost.
        local = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
        offset = np.array([x0, y0], dtype=np.int32) * _ONE
        cv2.fillPoly(local, [pts - offset], 1, cv2.LINE_8, _SHIFT)
        sel = local.astype(bool)
        patch = render_pattern(pattern, x0, y0, x1 - x0, y1 - y0)
        self.image[y0:y1, x0:x1][sel] = patch[sel]
        self.mask[y0:y1, x0:x1] |= local


def textured_background(rng: np.random.Generator, width: int,
                        height: int) -> np.ndarray:
    """A random textured background, (height, width, 3) uint8 BGR.

    Sum of a two-colour linear gradient, smooth low-frequency blobs,
    optionally a sinusoidal stripe pattern, and a few flat blobs. Pixel noise
    is added to the finished image by :func:`add_sensor_noise`.
    """
    # Gradient and smooth blobs are both built on a coarse grid and brought
    # to full size by one cubic resize (which keeps a linear gradient
    # linear): much cheaper than full-size arithmetic on (H, W, 3).
    gh, gw = (int(v) for v in rng.integers(3, 10, size=2))
    gy = np.linspace(0.0, 1.0, gh)[:, None]
    gx = np.linspace(0.0, 1.0, gw)[None, :]
    a = rng.uniform(0, 2 * math.pi)
    t = gx * math.cos(a) * width + gy * math.sin(a) * height
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    c0, c1 = random_color(rng, 20, 236), random_color(rng, 20, 236)
    coarse = c0 + t[..., None] * (c1 - c0)
    coarse += rng.normal(0.0, 1.0, size=(gh, gw, 3)) * rng.uniform(8, 40)
    img = cv2.resize(coarse.astype(np.float32), (width, height),
                     interpolation=cv2.INTER_CUBIC)
    xs = np.arange(width, dtype=np.float32)[None, :]
    ys = np.arange(height, dtype=np.float32)[:, None]
    if rng.random() < 0.5:
        b = rng.uniform(0, math.pi)
        period = rng.uniform(5, 40)
        phase = (xs * np.float32(math.cos(b)) + ys * np.float32(math.sin(b))
                 ) * np.float32(2 * math.pi / period)
        wave = np.sin(phase + np.float32(rng.uniform(0, 2 * math.pi)))
        direction = rng.normal(0.0, 1.0, size=3)
        direction /= max(np.linalg.norm(direction), 1e-6)
        img += wave[..., None] * (direction * rng.uniform(8, 35)).astype(
            np.float32)
    out = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    # Flat blobs: large soft-coloured ellipses blended into the texture.
    for _ in range(int(rng.integers(0, 5))):
        overlay = out.copy()
        center = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        axes = (int(rng.uniform(5, width / 3)), int(rng.uniform(5,
                                                                height / 3)))
        cv2.ellipse(overlay, center, axes, float(rng.uniform(0, 180)), 0, 360,
                    _bgr(random_color(rng)), -1, cv2.LINE_8)
        alpha = float(rng.uniform(0.3, 0.8))
        out = cv2.addWeighted(overlay, alpha, out, 1.0 - alpha, 0.0)
    return out


def _draw_shape(painter: Painter, rng: np.random.Generator,
                center: np.ndarray, size: float) -> None:
    """Draw one random clutter shape of about ``size`` pixels around
    ``center`` (2,): a thick bar, a limb-like bent capsule chain, a disc, a
    rotated box or a ring."""
    kind = rng.choice(5, p=(0.25, 0.3, 0.15, 0.2, 0.1))
    limb_color = skin_color(rng) if rng.random() < 0.5 else random_color(rng)
    color = random_color(rng)
    if kind == 0:  # bar
        d = rotation_matrix(rng.uniform(0, 360)) @ np.array([size / 2, 0.0])
        painter.capsule(center - d, center + d, size * rng.uniform(0.08, 0.3),
                        color)
    elif kind == 1:  # two-segment "limb" with a joint and a hand-like end
        angle = rng.uniform(0, 360)
        length = size * rng.uniform(0.35, 0.55)
        width = size * rng.uniform(0.07, 0.13)
        p0 = center
        p1 = p0 + rotation_matrix(angle) @ np.array([length, 0.0])
        p2 = p1 + rotation_matrix(angle + rng.uniform(-110, 110)) @ np.array(
            [length * 0.9, 0.0])
        painter.capsule(p0, p1, width, limb_color)
        painter.capsule(p1, p2, width * 0.8, limb_color)
        painter.disc(p2, width * 0.6, limb_color)
    elif kind == 2:  # disc
        painter.disc(center, size * rng.uniform(0.15, 0.5), color)
    elif kind == 3:  # rotated box
        box = cv2.boxPoints(((float(center[0]), float(center[1])),
                             (float(size * rng.uniform(0.2, 1.0)),
                              float(size * rng.uniform(0.1, 0.6))),
                             float(rng.uniform(0, 180))))
        painter.polygon(box, color)
    else:  # ring: a circle outline drawn as a closed polyline
        radius = size * rng.uniform(0.2, 0.5)
        t = np.linspace(0, 2 * math.pi, 25)[:-1]
        ring = center + radius * np.stack([np.cos(t), np.sin(t)], axis=1)
        painter.polyline(ring, max(1.0, size * rng.uniform(0.03, 0.1)), color,
                         closed=True)


def draw_distractors(painter: Painter, rng: np.random.Generator, count: int,
                     size_range: Tuple[float, float]) -> None:
    """Draw ``count`` clutter shapes at uniform positions in the image.

    Sizes are log-uniform in ``size_range`` (pixels). About a third are
    limb-like capsule chains in skin or clothing colours so that "thick
    elongated blob" alone does not identify a person.
    """
    h, w = painter.mask.shape
    for _ in range(int(count)):
        center = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        size = math.exp(rng.uniform(math.log(size_range[0]),
                                    math.log(size_range[1])))
        _draw_shape(painter, rng, center, size)


def draw_occluders(painter: Painter, rng: np.random.Generator,
                   anchors: np.ndarray, sizes: np.ndarray) -> None:
    """Draw one clutter shape near each anchor point, on top of objects.

    Args:
        painter: painter whose mask collects the occluded pixels.
        rng: random generator.
        anchors: (N, 2) pixel positions to cover (e.g. keypoints).
        sizes: (N,) reference sizes in pixels (e.g. the object's height);
            each occluder is 15-35 % of its reference size.
    """
    for anchor, ref in zip(np.asarray(anchors, dtype=np.float64),
                           np.asarray(sizes, dtype=np.float64)):
        size = ref * rng.uniform(0.15, 0.35)
        center = anchor + rng.normal(0.0, size * 0.25, size=2)
        _draw_shape(painter, rng, center, size)


def add_sensor_noise(image: np.ndarray, rng: np.random.Generator) -> None:
    """Add Gaussian luminance noise (sigma 2-9) and, sometimes, a light blur to
    ``image`` (H, W, 3) uint8 in place. Geometry (and so the labels) does not
    change."""
    sigma = np.float32(rng.uniform(2.0, 9.0))
    noisy = image.astype(np.float32)
    # One noise plane shared by the channels (luminance noise): half the
    # cost of per-channel noise, which dominated the generation time.
    noise = rng.standard_normal(image.shape[:2], dtype=np.float32)
    noisy += (noise * sigma)[..., None]
    image[...] = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        image[...] = cv2.GaussianBlur(image, (3, 3), 0)


# --------------------------------------------------------------------------
# placing objects and composing an image
# --------------------------------------------------------------------------
def size_bounds(max_size: float,
                min_size: float = MIN_OBJECT_SIZE) -> Tuple[float, float]:
    """``(low, high)`` object size in pixels for a largest size of
    ``max_size``: ``low`` is ``min_size`` unless that exceeds half of
    ``max_size`` (small images)."""
    return min(min_size, 0.5 * max_size), max_size


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A size drawn log-uniformly from ``[low, high)`` (both > 0): as many
    small objects as large ones per octave."""
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def sample_anchor(rng: np.random.Generator,
                  width: int,
                  height: int,
                  half_extent: Tuple[float, float],
                  truncated_y: Tuple[float, float] = (-0.1, 1.1),
                  truncate_prob: float = 0.25) -> np.ndarray:
    """Pixel position ``(x, y)``, shape (2,), of a new object's anchor.

    With probability ``truncate_prob`` the anchor is uniform over the image
    widened by 10 % on the left and right and over the fractions
    ``truncated_y`` of the height vertically, so the object may be cut by the
    border; otherwise it is uniform over the positions that keep a box of
    half-size ``half_extent = (half_w, half_h)`` pixels around it inside the
    image (if the box is wider than the image, x is ``half_w``: the box
    starts at the left border; the same for y).
    """
    if rng.random() < truncate_prob:
        return np.array([
            rng.uniform(-0.1, 1.1) * width,
            rng.uniform(*truncated_y) * height
        ])
    half_w, half_h = half_extent
    return np.array([
        rng.uniform(half_w, max(half_w, width - half_w)),
        rng.uniform(half_h, max(half_h, height - half_h))
    ])


def compose_image(
        rng: np.random.Generator,
        width: int,
        height: int,
        count_probs: Sequence[float],
        sample_object: Callable[[np.random.Generator, int, int, Optional[T]],
                                T],
        render_objects: Callable[[np.ndarray, Sequence[T]],
                                 List[np.ndarray]],
        annotate_objects: Callable[
            [Sequence[T], Sequence[np.ndarray], np.ndarray],
            List[Optional[dict]]],
        keypoints_of: Callable[[T], np.ndarray],
        occluder_size_of: Callable[[T], float],
        draw_order: Optional[Callable[[T], float]] = None
) -> Tuple[np.ndarray, List[dict]]:
    """One image of a toy dataset: the scene recipe the generators share.

    In order, all from ``rng``: a textured background; 2-8 clutter shapes
    (sizes 8-50 % of the shorter side); ``n`` objects with
    ``P(n = i + 1) = count_probs[i]``, each placed next to a random earlier
    one (``near``) with probability 0.4; the objects drawn (sorted by
    ``draw_order`` first when given: later = in front); with probability
    0.35 one or two occluders on top, each near a random keypoint of a
    random object and sized from ``occluder_size_of`` (see
    :func:`draw_occluders`); sensor noise; labels from the rendered masks.

    Args:
        rng: random generator of this image.
        width, height: image size in pixels.
        count_probs: probabilities of 1, 2, ... objects (sum 1).
        sample_object: ``(rng, width, height, near) -> object``.
        render_objects: ``(image, objects) -> masks`` drawing in list order,
            one (H, W) bool mask per object.
        annotate_objects: ``(objects, masks, occluder_mask) -> annotations``
            (``None`` for an object to drop).
        keypoints_of: ``object -> (K, 2)`` keypoints in pixels.
        occluder_size_of: ``object -> reference size`` in pixels.
        draw_order: sort key of the objects before drawing; ``None`` keeps
            the sampling order.

    Returns:
        image (height, width, 3) uint8 BGR and the annotations that are not
        ``None``.
    """
    image = textured_background(rng, width, height)
    clutter = Painter(image)
    side = min(width, height)
    draw_distractors(clutter, rng, int(rng.integers(2, 9)),
                     (0.08 * side, 0.5 * side))
    count = int(rng.choice(len(count_probs), p=count_probs)) + 1
    objects: List[T] = []
    for _ in range(count):
        near = (objects[int(rng.integers(len(objects)))]
                if objects and rng.random() < 0.4 else None)
        objects.append(sample_object(rng, width, height, near))
    if draw_order is not None:
        objects.sort(key=draw_order)
    masks = render_objects(image, objects)
    occluders = Painter(image)
    if rng.random() < 0.35:
        picks = rng.integers(len(objects), size=int(rng.integers(1, 3)))
        anchors = []
        for i in picks:
            kpts = keypoints_of(objects[i])
            anchors.append(kpts[rng.integers(len(kpts))])
        sizes = np.array([occluder_size_of(objects[i]) for i in picks])
        draw_occluders(occluders, rng, np.stack(anchors), sizes)
    add_sensor_noise(image, rng)
    anns = annotate_objects(objects, masks, occluders.mask)
    return image, [a for a in anns if a is not None]


# --------------------------------------------------------------------------
# labelling
# --------------------------------------------------------------------------
def annotate_instances(keypoints: Sequence[np.ndarray],
                       masks: Sequence[np.ndarray],
                       occluder_mask: Optional[np.ndarray] = None,
                       min_labelled: int = MIN_LABELLED_KEYPOINTS
                       ) -> List[Optional[dict]]:
    """Label keypoint visibility and boxes from rendered masks.

    Objects are assumed drawn in list order, followed by the occluders. A
    keypoint of object ``i`` is

    * ``v=0`` with ``x=y=0`` if it lies outside the image
      (``0 <= x <= W-1`` and ``0 <= y <= H-1`` after rounding to 0.01 px),
    * ``v=1`` (labelled, occluded) if its pixel is covered by the mask of any
      object drawn after ``i`` or by ``occluder_mask``,
    * ``v=2`` otherwise.

    Args:
        keypoints: per object a (K_i, 2) array of pixel coordinates.
        masks: per object an (H, W) bool/uint8 mask of its rendered pixels.
        occluder_mask: (H, W) mask of what was drawn on top of all objects.
        min_labelled: objects with fewer keypoints of ``v > 0`` get ``None``.

    Returns:
        Per object ``None`` (dropped) or a dict with ``keypoints`` (K_i, 3)
        float64 ``[x, y, v]``, ``bbox`` ``[x, y, w, h]`` (tight box of the
        mask in whole pixels), ``area`` (number of mask pixels) and
        ``num_keypoints`` (count of ``v > 0``).
    """
    if len(keypoints) != len(masks):
        raise ValueError(f'got {len(keypoints)} keypoint arrays but '
                         f'{len(masks)} masks')
    if not masks:
        return []
    h, w = masks[0].shape
    cover = (np.zeros((h, w), dtype=bool) if occluder_mask is None else
             occluder_mask.astype(bool).copy())
    results: List[Optional[dict]] = [None] * len(masks)
    # Walk back to front so that ``cover`` always holds exactly the union of
    # everything drawn after the current object.
    for i in range(len(masks) - 1, -1, -1):
        mask = masks[i].astype(bool)
        kpts = np.round(np.asarray(keypoints[i], dtype=np.float64), 2)
        labelled = np.zeros((len(kpts), 3), dtype=np.float64)
        x, y = kpts[:, 0], kpts[:, 1]
        inside = (np.isfinite(kpts).all(axis=1) & (x >= 0) & (x <= w - 1) &
                  (y >= 0) & (y <= h - 1))
        px = np.rint(x[inside]).astype(int)
        py = np.rint(y[inside]).astype(int)
        labelled[inside, :2] = kpts[inside]
        labelled[inside, 2] = np.where(cover[py, px], 1.0, 2.0)
        cover |= mask
        area = int(mask.sum())
        num_labelled = int(np.count_nonzero(labelled[:, 2]))
        if area == 0 or num_labelled < min_labelled:
            continue
        cols = np.flatnonzero(mask.any(axis=0))
        rows = np.flatnonzero(mask.any(axis=1))
        bbox = [
            float(cols[0]),
            float(rows[0]),
            float(cols[-1] - cols[0] + 1),
            float(rows[-1] - rows[0] + 1)
        ]
        results[i] = dict(
            keypoints=labelled,
            bbox=bbox,
            area=area,
            num_keypoints=num_labelled)
    return results


# --------------------------------------------------------------------------
# COCO files
# --------------------------------------------------------------------------
def coco_annotation(ann: dict, ann_id: int, image_id: int) -> dict:
    """COCO-keypoints annotation record from a generator annotation.

    Args:
        ann: dict with ``category_id``, ``keypoints`` (K, 3) ``[x, y, v]``,
            ``bbox``, ``area`` and ``num_keypoints``.
        ann_id: unique annotation id.
        image_id: id of the image it belongs to.
    """
    flat = []
    for x, y, v in np.asarray(ann['keypoints'], dtype=np.float64):
        flat.extend([round(float(x), 2), round(float(y), 2), int(v)])
    return dict(
        id=int(ann_id),
        image_id=int(image_id),
        category_id=int(ann['category_id']),
        bbox=[round(float(v), 2) for v in ann['bbox']],
        area=float(ann['area']),
        iscrowd=0,
        num_keypoints=int(ann['num_keypoints']),
        keypoints=flat)


def split_indices(num_images: int, val_fraction: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Boolean (num_images,) array, True for images of the val split.

    ``round(num_images * val_fraction)`` images are drawn at random; when
    ``val_fraction > 0`` and there are at least two images both splits get at
    least one image.
    """
    num_val = int(round(num_images * val_fraction))
    if val_fraction > 0 and num_images >= 2:
        num_val = min(max(num_val, 1), num_images - 1)
    elif num_images < 2:
        num_val = 0
    is_val = np.zeros(num_images, dtype=bool)
    is_val[rng.permutation(num_images)[:num_val]] = True
    return is_val


def write_coco_dataset(out_dir: str,
                       generate_image: GenerateFn,
                       categories: List[dict],
                       num_images: int,
                       seed: int = 0,
                       val_fraction: float = 0.2,
                       image_size: Union[int, Sequence[int]] = 256,
                       image_ext: str = 'jpg',
                       dataset_name: str = 'toy') -> Dict[str, object]:
    """Generate ``num_images`` images and write them as a COCO dataset.

    Writes ``out_dir/images/{train,val}/NNNNNN.<ext>`` and
    ``out_dir/annotations/{train,val}.json``; ``file_name`` is relative to
    ``images/<split>/``. Image ``i`` (0-based) gets id ``i + 1`` and is drawn
    from its own random stream (child ``i + 1`` of ``SeedSequence(seed)``;
    child 0 draws the split), so the output is a pure function of the
    arguments, and images do not depend on ``num_images``. Annotation ids
    are unique across both splits.

    Args:
        out_dir: output directory (created if needed).
        generate_image: ``(rng, width, height) -> (image, annotations)``;
            ``image`` is (H, W, 3) uint8 BGR and each annotation a dict for
            :func:`coco_annotation` (without ids).
        categories: COCO ``categories`` records.
        num_images: number of images (>= 1).
        seed: non-negative random seed.
        val_fraction: fraction of images in the val split, in ``[0, 1)``.
        image_size: int (square) or ``(width, height)`` in pixels.
        image_ext: ``'jpg'`` (quality 95) or ``'png'``.
        dataset_name: written into the json ``info`` record.

    Returns:
        dict with ``out_dir``, ``train_ann_file``, ``val_ann_file``,
        ``train_img_dir``, ``val_img_dir`` (absolute paths) and
        ``num_train_images``, ``num_val_images``, ``num_train_instances``,
        ``num_val_instances``.
    """
    check_generation_args(num_images, seed, val_fraction, image_ext)
    width, height = normalize_image_size(image_size)
    out_dir = osp.abspath(out_dir)
    root = np.random.SeedSequence(int(seed))
    streams = root.spawn(int(num_images) + 1)
    is_val = split_indices(int(num_images), float(val_fraction),
                           np.random.default_rng(streams[0]))
    splits = ('train', 'val')
    img_dirs = {s: osp.join(out_dir, 'images', s) for s in splits}
    ann_dir = osp.join(out_dir, 'annotations')
    for d in list(img_dirs.values()) + [ann_dir]:
        os.makedirs(d, exist_ok=True)
    records = {s: dict(images=[], annotations=[]) for s in splits}
    encode = ([int(cv2.IMWRITE_JPEG_QUALITY), 95]
              if image_ext == 'jpg' else [])
    ann_id = 0
    for index in range(int(num_images)):
        split = 'val' if is_val[index] else 'train'
        image_id = index + 1
        file_name = f'{image_id:06d}.{image_ext}'
        image, anns = generate_image(
            np.random.default_rng(streams[index + 1]), width, height)
        if not cv2.imwrite(osp.join(img_dirs[split], file_name), image,
                           encode):
            raise OSError(f'could not write {file_name} to {img_dirs[split]}')
        records[split]['images'].append(
            dict(
                id=image_id, file_name=file_name, width=width,
                height=height))
        for ann in anns:
            ann_id += 1
            records[split]['annotations'].append(
                coco_annotation(ann, ann_id, image_id))
    summary: Dict[str, object] = dict(out_dir=out_dir)
    for split in splits:
        ann_file = osp.join(ann_dir, f'{split}.json')
        content = dict(
            info=dict(
                description=f'{dataset_name} synthetic keypoint dataset '
                f'({split} split)',
                seed=int(seed),
                version='1.0'),
            licenses=[],
            images=records[split]['images'],
            annotations=records[split]['annotations'],
            categories=categories)
        with open(ann_file, 'w') as f:
            json.dump(content, f, separators=(',', ':'))
        summary[f'{split}_ann_file'] = ann_file
        summary[f'{split}_img_dir'] = img_dirs[split]
        summary[f'num_{split}_images'] = len(records[split]['images'])
        summary[f'num_{split}_instances'] = len(records[split]['annotations'])
    return summary

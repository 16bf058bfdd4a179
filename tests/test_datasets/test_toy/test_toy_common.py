"""Tests of the pieces the toy generators share
(:mod:`mmkp_ext.datasets.toy.common`): object sizes and positions and the
scene recipe :func:`compose_image`."""
import numpy as np
import pytest

from mmkp_ext.datasets.toy.common import (Painter, compose_image,
                                          log_uniform, sample_anchor,
                                          size_bounds)


def test_size_bounds():
    assert size_bounds(200.0) == (30.0, 200.0)
    # Small images: the lower bound drops to half the largest size.
    assert size_bounds(50.0) == (25.0, 50.0)
    assert size_bounds(100.0, min_size=10.0) == (10.0, 100.0)


def test_log_uniform_is_uniform_in_log_space():
    rng = np.random.default_rng(0)
    sizes = np.array([log_uniform(rng, 10.0, 1000.0) for _ in range(4000)])
    assert sizes.min() >= 10.0 and sizes.max() < 1000.0
    # Each decade holds half of the samples; a uniform draw would put 90 %
    # into the upper one.
    assert abs(np.mean(sizes < 100.0) - 0.5) < 0.03


def test_sample_anchor_keeps_the_box_inside_or_truncates():
    rng = np.random.default_rng(1)
    inside = np.array([
        sample_anchor(rng, 200, 100, (30.0, 20.0), truncate_prob=0.0)
        for _ in range(500)
    ])
    assert inside[:, 0].min() >= 30 and inside[:, 0].max() <= 170
    assert inside[:, 1].min() >= 20 and inside[:, 1].max() <= 80
    # A box wider than the image starts at the left border.
    wide = sample_anchor(rng, 200, 100, (150.0, 20.0), truncate_prob=0.0)
    assert wide[0] == 150.0
    cut = np.array([
        sample_anchor(rng, 200, 100, (30.0, 20.0), truncated_y=(0.2, 1.15),
                      truncate_prob=1.0) for _ in range(500)
    ])
    assert cut[:, 0].min() >= -20 and cut[:, 0].max() <= 220
    assert cut[:, 1].min() >= 20 and cut[:, 1].max() <= 115
    assert np.any(cut[:, 0] < 30) and np.any(cut[:, 1] > 100)


class _Disc:
    """A minimal object for compose_image: a disc with 3 keypoints."""

    def __init__(self, center, radius):
        self.center = np.asarray(center, dtype=np.float64)
        self.radius = radius
        self.keypoints = self.center + np.array([[0.0, 0.0], [0.5, 0.0],
                                                 [0.0, 0.5]]) * radius


def _compose(seed, count_probs, draw_order=None, log=None):
    log = {} if log is None else log

    def sample(rng, width, height, near):
        log.setdefault('near', []).append(near)
        return _Disc(rng.uniform(10, [width - 10, height - 10]),
                     rng.uniform(4, 10))

    def render(image, discs):
        log['rendered'] = list(discs)
        masks = []
        for d in discs:
            p = Painter(image)
            p.disc(d.center, d.radius, (255, 255, 255))
            masks.append(p.mask.astype(bool))
        return masks

    def annotate(discs, masks, occluder_mask):
        log['occluder_mask'] = occluder_mask
        # Drop every second object: compose_image must filter the None.
        return [
            None if i % 2 else dict(index=i, radius=d.radius)
            for i, d in enumerate(discs)
        ]

    return compose_image(
        np.random.default_rng(seed), 96, 64, count_probs, sample, render,
        annotate, keypoints_of=lambda d: d.keypoints,
        occluder_size_of=lambda d: 4 * d.radius, draw_order=draw_order)


def test_compose_image_recipe():
    log = {}
    image, anns = _compose(0, (0.0, 0.0, 1.0), log=log)
    assert image.shape == (64, 96, 3) and image.dtype == np.uint8
    # count_probs (0, 0, 1): always three objects; the first has no
    # earlier object to stand next to; the None annotation is dropped.
    assert len(log['rendered']) == 3 and log['near'][0] is None
    assert [a['index'] for a in anns] == [0, 2]
    assert log['occluder_mask'].shape == (64, 96)
    # draw_order sorts the objects before drawing (largest last here).
    log = {}
    _compose(0, (0.0, 0.0, 1.0), draw_order=lambda d: d.radius, log=log)
    radii = [d.radius for d in log['rendered']]
    assert radii == sorted(radii)
    # Deterministic per seed, different across seeds.
    a, _ = _compose(3, (0.5, 0.5))
    b, _ = _compose(3, (0.5, 0.5))
    c, _ = _compose(4, (0.5, 0.5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_compose_image_draws_occluders_sometimes():
    # Occluders come with probability 0.35 per image and are drawn on top
    # of the objects, so some images have a non-empty occluder mask.
    drawn = []
    for seed in range(20):
        log = {}
        _compose(seed, (1.0, ), log=log)
        drawn.append(bool(log['occluder_mask'].any()))
    assert 2 <= sum(drawn) <= 14


@pytest.mark.parametrize('probs', [(0.5, 0.6), (1.2, )])
def test_compose_image_rejects_bad_count_probs(probs):
    with pytest.raises(ValueError):
        _compose(0, probs)

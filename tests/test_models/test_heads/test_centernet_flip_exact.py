"""Flip test of ``CenterNetPoseHead`` checked against the IMAGE mirror, not
against the head's own idea of it.

The flipped pass is never built with the code under test: the annotations
of an image are mirrored by mmpose's own ``RandomFlip`` (``x' = w - 1 - x``,
keypoints swapped by ``flip_indices``, boxes mirrored), both annotation sets
go through ``GroupedCenterNetLabel.encode`` and ``targets_to_outputs``, and
the two "perfect" outputs (what an ideal network answers for the image and
for its mirror) are fused by the head.

Annotations lie on the input pixel grid (integer keypoints and box centres).
Under the image mirror a pixel-grid point of output cell ``j`` lands in cell
``W - 1 - j``, i.e. exactly in the index-mirrored cell, so per-cell fusion
can be exact there. (A sub-pixel point in the last ``1/stride`` of a cell,
between the cell's last pixel centre and the next cell, lands one cell
further: the quantisation that both modes share, and that the real-fixture
round trip in ``tests/test_tools/test_centernet_flip_roundtrip.py`` meets.)
"""
import numpy as np
import pytest
import torch
# the head tests' 4-keypoint two-class layout, mirror pairs (0, 1), (2, 3);
# its grouping merges across classes and is flip-consistent
from test_centernet_pose_head import FLIP, LAYOUT

import mmkp_ext  # noqa: F401  (registration)
from mmkp_ext.codecs import GroupedCenterNetLabel
from mmkp_ext.codecs.grouped_centernet_label import OUTPUT_KEYS
from mmpose.datasets.transforms import RandomFlip
from mmpose.registry import MODELS

W_IN, H_IN, STRIDE = 64, 48, 4
W_OUT, H_OUT = W_IN // STRIDE, H_IN // STRIDE


def codec_cfg(**kwargs):
    cfg = dict(
        input_size=(W_IN, H_IN),
        heatmap_size=(W_OUT, H_OUT),
        topk=1,
        rescore_sigma=2.0,
        **LAYOUT)
    cfg.update(kwargs)
    return cfg


def make_head(mode):
    head = MODELS.build(
        dict(
            type='CenterNetPoseHead',
            in_channels=4,
            head_conv=4,
            flip_mode=mode,
            decoder=dict(type='GroupedCenterNetLabel', **codec_cfg()),
            **LAYOUT))
    head.eval()
    return head


def random_image_annotations(rng):
    """One object on the pixel grid: integer box centre and half-size,
    box inside ``[3, w - stride]`` so that neither it nor its mirror is
    clipped by the codec (which clips to ``[0, W - 1]`` output px), and
    its two keypoints in two different cells of the box (one offset map
    cell per keypoint, as CenterNet has)."""
    cat = int(rng.integers(1, 3))
    while True:
        hw = rng.integers(4, 14, size=2)  # half width, half height
        cx = rng.integers(3 + hw[0], W_IN - STRIDE - hw[0] + 1)
        cy = rng.integers(hw[1], H_IN - STRIDE - hw[1] + 1)
        box = np.array([cx - hw[0], cy - hw[1], cx + hw[0], cy + hw[1]],
                       np.float32)
        kp = np.stack([
            rng.integers(box[0], box[2] + 1, 2),
            rng.integers(box[1], box[3] + 1, 2)
        ], -1).astype(np.float32)
        if len({tuple(c) for c in (kp // STRIDE).tolist()}) == 2:
            break
    kpts = np.zeros((1, 4, 2), np.float32)
    first = 2 * (cat - 1)
    kpts[0, first:first + 2] = kp
    vis = np.zeros((1, 4), np.float32)
    vis[0, first:first + 2] = 1
    return dict(
        img=np.zeros((H_IN, W_IN, 3), np.uint8),
        img_shape=(H_IN, W_IN),
        keypoints=kpts,
        keypoints_visible=vis,
        bbox=box[None],
        category_id=np.array([cat]),
        flip_indices=FLIP)


def perfect_outputs(codec, results):
    enc = codec.encode(results['keypoints'], results['keypoints_visible'],
                       results['bbox'], results['category_id'])
    return codec.targets_to_outputs(enc)


def batch_of_pairs(num=12, seed=0):
    """Perfect outputs of ``num`` images and of their mmpose mirrors,
    ``(B, ch, H, W)`` tensors, plus the annotations."""
    rng = np.random.default_rng(seed)
    codec = GroupedCenterNetLabel(**codec_cfg())
    flip = RandomFlip(prob=1.0, direction='horizontal')
    orig, mirr, anns = [], [], []
    for _ in range(num):
        res = random_image_annotations(rng)
        anns.append({k: np.copy(v) for k, v in res.items()})
        orig.append(perfect_outputs(codec, res))
        flipped = flip(dict(res))
        assert flipped['flip']
        mirr.append(perfect_outputs(codec, flipped))

    def stack(outs):
        return {
            k: torch.from_numpy(np.stack([o[k] for o in outs]))
            for k in OUTPUT_KEYS
        }

    return stack(orig), stack(mirr), anns


def decode(head, outputs, logits, mode='rescore', no_heatmap=False):
    """First (only) object per image: keypoints (B, 4, 2) in OUTPUT px,
    scores, boxes (B, 4) output px."""
    outputs = dict(outputs)
    if no_heatmap:
        # keypoint heatmaps of probability 0: 'nearest' then keeps every
        # coarse point (centre + regression)
        outputs['keypoint_heatmap'] = torch.full_like(
            outputs['keypoint_heatmap'], -30.0 if logits else 0.0)
    dec = head.decoder.batch_decode(
        **outputs, logits=logits, decode_mode=mode)
    return (dec['keypoints'][:, 0].numpy() / STRIDE,
            dec['keypoint_scores'][:, 0].numpy(),
            dec['bboxes'][:, 0].numpy() / STRIDE)


@pytest.fixture(scope='module')
def pairs():
    return batch_of_pairs()


@pytest.mark.parametrize('mode', ['exact', 'official'])
def test_unflipped_perfect_outputs_decode_to_the_annotations(pairs, mode):
    """Sanity of the reference the flip tests compare with."""
    orig, _, anns = pairs
    head = make_head(mode)
    kp, score, boxes = decode(head, orig, True)
    for b, ann in enumerate(anns):
        lab = ann['keypoints_visible'][0] > 0
        np.testing.assert_allclose(
            kp[b][lab] * STRIDE, ann['keypoints'][0][lab], atol=1e-4)
        assert (score[b][lab] > 0.99).all()
        np.testing.assert_allclose(
            boxes[b] * STRIDE, ann['bbox'][0], atol=1e-4)


@pytest.mark.parametrize('mode', ['exact', 'official'])
def test_heatmaps_of_the_mirror_fuse_into_the_original(pairs, mode):
    """On the pixel grid the image mirror maps a point's cell onto the
    index-mirrored cell: the mirror pass's heatmaps brought back by index
    ARE the original's. Official fuses them as they are (the fused maps are
    the original's); exact reads them 1/4 cell further right (the mirrored
    cells' centres sit 1/stride left), ``0.75 h[j] + 0.25 h[j + 1]``."""
    orig, mirr, _ = pairs
    head = make_head(mode)
    fused = head.flip_fuse(orig, mirr, FLIP)
    for key in ('center_heatmap', 'keypoint_heatmap'):
        h = orig[key].sigmoid()
        if mode == 'exact':
            nxt = torch.cat([h[..., 1:], h[..., -1:]], -1)
            expected = (h + 0.75 * h + 0.25 * nxt) / 2
        else:
            expected = h
        torch.testing.assert_close(fused[key], expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize('decode_mode', ['rescore', 'nearest'])
def test_exact_flip_fusion_decodes_where_the_unflipped_pass_does(
        pairs, decode_mode):
    orig, mirr, _ = pairs
    head = make_head('exact')
    fused = head.flip_fuse(orig, mirr, FLIP)
    kp0, s0, box0 = decode(head, orig, True, decode_mode)
    kp1, s1, box1 = decode(head, fused, False, decode_mode)
    lab = s0 > 0
    assert lab.sum() == 2 * len(kp0)
    err = np.abs(kp1 - kp0)[lab]
    assert err.max() < 0.1, err.max()  # output px (in fact ~1e-6)
    assert np.abs(box1 - box0).max() < 0.1
    # scores: the peak's average with the resampled mirror peak
    assert (s1[lab] > 0.8).all() and (s1[lab] <= s0[lab] + 1e-6).all()


def test_exact_flip_fusion_coarse_keypoints_and_centres(pairs):
    """Regression and centre offsets alone (keypoint heatmaps silenced, so
    every keypoint is its coarse point): exact mode lands on the unflipped
    coarse points and centres."""
    orig, mirr, _ = pairs
    head = make_head('exact')
    kp0, s0, box0 = decode(head, orig, True, 'nearest', no_heatmap=True)
    fused = head.flip_fuse(orig, mirr, FLIP)
    kp1, _, box1 = decode(head, fused, False, 'nearest', no_heatmap=True)
    lab = np.abs(kp0).sum(-1) > 0
    assert np.abs(kp1 - kp0)[lab].max() < 0.1
    assert np.abs(box1 - box0).max() < 0.1


@pytest.mark.parametrize('mode', ['exact', 'official'])
def test_what_the_mirror_pass_contributes(pairs, mode):
    """The original pass's regression and offsets set to 0: the fused
    values are half the mirror pass's, brought back to the original frame.
    Expected values from the annotations alone (output px): exact, a
    keypoint at ``(kp + floor(kp)) / 2`` (offset ``(kp - floor(kp)) / 2``),
    a centre at ``(ct + floor(ct)) / 2`` and a coarse point at ``(kp +
    floor(ct)) / 2``; official, the offsets are the original's (0) and the
    coarse x is 0.75 / 2 further left."""
    orig, mirr, anns = pairs
    head = make_head(mode)
    zeroed = dict(orig)
    for key in ('center_offset', 'keypoint_reg', 'keypoint_offset'):
        zeroed[key] = torch.zeros_like(orig[key])
    fused = head.flip_fuse(zeroed, mirr, FLIP)
    kp, _, box = decode(head, fused, False, 'rescore')
    coarse, _, _ = decode(head, fused, False, 'nearest', no_heatmap=True)
    shift = np.array([0.0 if mode == 'exact' else 0.75, 0.0])
    for b, ann in enumerate(anns):
        lab = ann['keypoints_visible'][0] > 0
        true = ann['keypoints'][0][lab] / STRIDE
        cell = np.floor(true)
        ct = (ann['bbox'][0, :2] + ann['bbox'][0, 2:]) / 2 / STRIDE
        centre = (box[b, :2] + box[b, 2:]) / 2
        if mode == 'exact':
            np.testing.assert_allclose(
                kp[b][lab], (true + cell) / 2, atol=1e-4)
            np.testing.assert_allclose(
                centre, (ct + np.floor(ct)) / 2, atol=1e-4)
        else:
            np.testing.assert_allclose(kp[b][lab], cell, atol=1e-4)
            np.testing.assert_allclose(centre, np.floor(ct), atol=1e-4)
        np.testing.assert_allclose(
            coarse[b][lab], (true - shift + np.floor(ct)) / 2, atol=1e-4)


def test_official_flip_fusion_shifts_coarse_keypoints_left(pairs):
    """CenterNet's fusion (x regression negated) puts the flipped pass's
    regressed keypoints 1 - 1/4 output px left of the mirror image, so the
    fused coarse keypoints move half of that: -0.375 output px (-1.5 input
    px) in x, none in y; centres and sizes stay (offsets of the original
    pass, sizes are mirror-symmetric)."""
    orig, mirr, _ = pairs
    head = make_head('official')
    kp0, _, box0 = decode(head, orig, True, 'nearest', no_heatmap=True)
    fused = head.flip_fuse(orig, mirr, FLIP)
    kp1, _, box1 = decode(head, fused, False, 'nearest', no_heatmap=True)
    lab = np.abs(kp0).sum(-1) > 0
    np.testing.assert_allclose((kp1 - kp0)[lab][:, 0], -0.375, atol=1e-4)
    np.testing.assert_allclose((kp1 - kp0)[lab][:, 1], 0.0, atol=1e-4)
    np.testing.assert_allclose(box1, box0, atol=1e-4)
    # with the heatmaps on, the refinement (offsets of the original pass)
    # snaps back to the unflipped keypoints
    kp2, _, _ = decode(head, fused, False, 'rescore')
    kp3, _, _ = decode(head, orig, True, 'rescore')
    np.testing.assert_allclose(kp2[lab], kp3[lab], atol=1e-4)


def test_predict_with_flip_test_uses_the_mode(pairs):
    """The estimator's path: ``predict([orig, flipped])`` with
    ``test_cfg['flip_test']``, the mode from the head or ``test_cfg``."""
    from mmpose.structures import PoseDataSample
    orig, mirr, anns = pairs

    class Stub(type(make_head('exact'))):

        def forward(self, feats):
            return {'o': orig, 'm': mirr}[feats]

    samples = [
        PoseDataSample(metainfo=dict(flip_indices=FLIP)) for _ in anns
    ]
    for mode in ('exact', 'official'):
        head = make_head(mode)
        head.__class__ = Stub
        preds = head.predict(['o', 'm'], samples,
                             dict(flip_test=True, decode_mode='nearest'))
        other = head.predict(
            ['o', 'm'], samples,
            dict(
                flip_test=True,
                decode_mode='nearest',
                flip_mode='official' if mode == 'exact' else 'exact'))
        for b, ann in enumerate(anns):
            lab = ann['keypoints_visible'][0] > 0
            got = preds[b].keypoints[0][lab]
            np.testing.assert_allclose(
                got, ann['keypoints'][0][lab], atol=1e-3)
            # the two modes' offsets differ only where a keypoint cell's
            # offsets of the two passes disagree, i.e. never here; boxes
            np.testing.assert_allclose(
                preds[b].bboxes[0], other[b].bboxes[0], atol=1e-3)

"""``GroupedCenterNetLabel.batch_decode`` with non-finite head outputs, and
the pinned default of ``nearest_score_thr``.

Rule under test (class docstring of the codec): every non-finite value is
named in one warning (output and count), decoding stays finite, and a
keypoint whose decode read a non-finite value gets score 0: its object's
centre cell (centre heatmap, centre offset, size), its regression, any
value of its heatmap channel in that image, or the keypoint offset where it
was read. A keypoint without a finite regression is placed at its object's
decoded centre.

The hand-built outputs: one class-0 object at cell (8, 8) of a 16x16 map
(stride 4), box 14 x 14, keypoint 0 regressing to (11, 8); channel 0 has
peaks P1 = (12, 8) p=0.3 (offset (0.25, 0.5)) and P2 = (14, 8) p=0.95.
"""
import math
import re

import numpy as np
import pytest
import torch
from test_grouped_centernet_label import hand_outputs, small_codec

import mmkp_ext  # noqa: F401

MODES = ('rescore', 'nearest')


def codec():
    # topk=5: object 0 is the only real one; 5 peaks per channel
    return small_codec(input_size=(64, 64), heatmap_size=(16, 16), topk=5)


def run(c, out, mode, sigma=1.0):
    t = {k: torch.as_tensor(v)[None].float() for k, v in out.items()}
    return c.batch_decode(**t, decode_mode=mode, rescore_sigma=sigma)


def warned_counts(record):
    """{output: count} parsed from the non-finite warning(s)."""
    text = ' '.join(str(w.message) for w in record)
    return {k: int(n) for k, n in re.findall(r'(\w+): (\d+) non-finite',
                                             text)}


def finite(dec):
    return all(torch.isfinite(v.float()).all() for v in dec.values())


@pytest.mark.parametrize('mode', MODES)
def test_clean_outputs_decode_without_warning(mode, recwarn):
    c = codec()
    dec = run(c, hand_outputs(c), mode)
    assert not [w for w in recwarn if 'non-finite' in str(w.message)]
    # sigma 1 / nearest: P1 + offset, score 0.3 (the reference below)
    np.testing.assert_allclose(
        dec['keypoints'][0, 0, 0].numpy() / 4, [12.25, 8.5], atol=1e-5)
    assert dec['keypoint_scores'][0, 0, 0].item() == pytest.approx(0.3)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_nan_regression_gives_score_zero_at_the_centre(mode, bad):
    c = codec()
    out = hand_outputs(c)
    out['center_offset'][:, 8, 8] = (0.5, 0.25)
    out['keypoint_reg'][0, 8, 8] = bad  # x of group 0 (keypoint 0)
    with pytest.warns(UserWarning, match='non-finite') as record:
        dec = run(c, out, mode)
    assert warned_counts(record) == {'keypoint_reg': 1}
    assert finite(dec)
    assert dec['keypoint_scores'][0, 0, 0].item() == 0.0
    # the object's decoded centre, (8.5, 8.25) output px
    np.testing.assert_allclose(
        dec['keypoints'][0, 0, 0].numpy() / 4, [8.5, 8.25], atol=1e-5)
    # the object and its other keypoint are untouched
    assert dec['bbox_scores'][0, 0].item() == pytest.approx(0.9)
    clean = run(c, hand_outputs(c), mode)
    assert dec['keypoint_scores'][0, 0, 1].item() == pytest.approx(
        clean['keypoint_scores'][0, 0, 1].item())


@pytest.mark.parametrize('mode', MODES)
def test_nan_keypoint_offset_where_read(mode):
    c = codec()
    out = hand_outputs(c)
    out['keypoint_offset'][1, 8, 12] = np.nan  # y offset at P1
    with pytest.warns(UserWarning, match='non-finite') as record:
        dec = run(c, out, mode)
    assert warned_counts(record) == {'keypoint_offset': 1}
    assert finite(dec)
    assert dec['keypoint_scores'][0, 0, 0].item() == 0.0
    # the non-finite y offset read as 0 at the chosen cell P1 (x kept)
    np.testing.assert_allclose(
        dec['keypoints'][0, 0, 0].numpy() / 4, [12.25, 8.0], atol=1e-5)
    # a non-finite offset elsewhere (not read by any keypoint) costs nothing
    out = hand_outputs(c)
    out['keypoint_offset'][:, 0, 0] = np.nan
    with pytest.warns(UserWarning, match=r'keypoint_offset: 2 non-finite'):
        dec = run(c, out, mode)
    assert dec['keypoint_scores'][0, 0, 0].item() == pytest.approx(0.3)


@pytest.mark.parametrize('mode', MODES)
def test_nan_in_the_keypoint_heatmap_channel(mode):
    c = codec()
    out = hand_outputs(c)
    out['keypoint_heatmap'][0, 2, 3] = np.nan  # channel 0, far away
    out['keypoint_heatmap'][1, 4, 4] = np.inf  # channel 1 (keypoint 1)
    with pytest.warns(UserWarning, match='non-finite') as record:
        dec = run(c, out, mode)
    assert warned_counts(record) == {'keypoint_heatmap': 2}
    assert finite(dec)
    # both keypoints of the object searched a channel holding a bad value
    assert dec['keypoint_scores'][0, 0, :2].tolist() == [0.0, 0.0]
    # the bad cells are never taken as peaks: P1 is still found
    np.testing.assert_allclose(
        dec['keypoints'][0, 0, 0].numpy() / 4, [12.25, 8.5], atol=1e-5)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('key, channel', [('center_offset', 0),
                                          ('box_size', 1),
                                          ('center_heatmap', 0)])
def test_nan_at_the_centre_zeroes_the_object(mode, key, channel):
    c = codec()
    out = hand_outputs(c)
    out[key][channel, 8, 8] = np.nan
    with pytest.warns(UserWarning, match='non-finite') as record:
        dec = run(c, out, mode)
    assert warned_counts(record) == {key: 1}
    assert finite(dec)
    live = dec['bbox_scores'][0] > 0.5
    assert not live.any()
    # wherever the object went, nothing of it keeps a score from the
    # bad cell: its row (cell (8, 8)) has bbox and keypoint scores 0
    row = (dec['bboxes'][0, :, :2] + dec['bboxes'][0, :, 2:]) / 2 // 4
    if key != 'center_heatmap':
        at = (row == 8).all(-1)
        assert at.any()
        assert (dec['bbox_scores'][0][at] == 0).all()
        assert (dec['keypoint_scores'][0][at] == 0).all()


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('logits', [True, False])
def test_all_outputs_nan(mode, logits):
    c = codec()
    out = {k: np.full_like(v, np.nan) for k, v in hand_outputs(c).items()}
    t = {k: torch.as_tensor(v)[None].float() for k, v in out.items()}
    with pytest.warns(UserWarning, match='non-finite') as record:
        dec = c.batch_decode(**t, decode_mode=mode, logits=logits)
    counts = warned_counts(record)
    assert counts == {k: v.size for k, v in out.items()}
    assert finite(dec)
    assert (dec['keypoint_scores'] == 0).all()
    assert (dec['bbox_scores'] == 0).all()


def test_numpy_decode_path_too():
    c = codec()
    out = hand_outputs(c)
    out['keypoint_reg'][:, 8, 8] = np.nan
    with pytest.warns(UserWarning, match=r'keypoint_reg: 4 non-finite'):
        dec = c.decode(out)
    assert np.isfinite(dec['keypoints']).all()
    assert dec['keypoint_scores'][0, :2].tolist() == [0.0, 0.0]


# ----------------------------------------------------------------------
# issue 17: the default nearest_score_thr (0.1) decides
# ----------------------------------------------------------------------
@pytest.mark.parametrize('p_peak, snapped', [(0.15, True), (0.07, False)])
def test_nearest_score_thr_default_decides(p_peak, snapped):
    """Only P1 (1 px from the coarse point, well inside the box) is left,
    with probability 0.15 or 0.07: with the default threshold 0.1 the
    first is taken (P1 + offset, score 0.15), the second ignored (the
    coarse point (11, 8), score = heatmap there, 1e-4). A default of 0.2
    breaks the first case, 0.05 the second."""
    c = codec()  # nearest_score_thr not given: the default
    out = hand_outputs(c)
    lo = math.log(1e-4 / (1 - 1e-4))
    out['keypoint_heatmap'][0, 8, 14] = lo  # drop P2
    out['keypoint_heatmap'][0, 8, 12] = math.log(p_peak / (1 - p_peak))
    dec = run(c, out, 'nearest')
    kp = dec['keypoints'][0, 0, 0].numpy() / 4
    score = dec['keypoint_scores'][0, 0, 0].item()
    if snapped:
        np.testing.assert_allclose(kp, [12.25, 8.5], atol=1e-5)
        assert score == pytest.approx(p_peak)
    else:
        np.testing.assert_allclose(kp, [11.0, 8.0], atol=1e-5)
        assert score == pytest.approx(1e-4)


def test_huge_finite_values_are_not_reported(recwarn):
    """Finite values whose sum overflows float32 (the decoder's fast check)
    are finite: no warning, scores unchanged."""
    c = codec()
    out = hand_outputs(c)
    out['keypoint_offset'][:, 0, :4] = 3e38  # sum overflows to inf
    dec = run(c, out, 'rescore')
    assert not [w for w in recwarn if 'non-finite' in str(w.message)]
    assert dec['keypoint_scores'][0, 0, 0].item() == pytest.approx(0.3)

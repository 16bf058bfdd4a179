"""``CenterNetPoseHead`` under CPU autocast (bfloat16 and float16): loss and
predict (plain, flip test, both decode modes) run, give float32 results
close to the float32 run and finite; and a head whose output is NaN
predicts finite keypoints with score 0 and a warning naming the output."""
import numpy as np
import pytest
import torch
from test_centernet_pose_head import feats_for, make_head, make_samples

import mmkp_ext  # noqa: F401

DTYPES = (torch.bfloat16, torch.float16)


@pytest.fixture(scope='module')
def setup():
    torch.manual_seed(0)
    head = make_head()
    samples = make_samples([[1, 2, 1], [2]])
    return head, samples, feats_for(2)


@pytest.mark.parametrize('dtype', DTYPES)
def test_loss_under_autocast(setup, dtype):
    head, samples, feats = setup
    ref = head.loss(feats, samples)
    head.zero_grad()
    with torch.autocast('cpu', dtype=dtype):
        # the convolutions do run in low precision
        assert head.forward(feats)['keypoint_reg'].dtype == dtype
        losses = head.loss(feats, samples)
    for key, value in losses.items():
        assert value.dtype == torch.float32, key
        assert torch.isfinite(value), key
        assert value.item() == pytest.approx(ref[key].item(), rel=0.03), key
    sum(losses.values()).backward()
    for p in head.parameters():
        if p.grad is not None:
            assert torch.isfinite(p.grad).all()


@pytest.mark.parametrize('dtype', DTYPES)
@pytest.mark.parametrize('cfg', [
    dict(decode_mode='rescore'),
    dict(decode_mode='nearest'),
    dict(decode_mode='rescore', flip_test=True),
    dict(decode_mode='nearest', flip_test=True, flip_mode='official'),
])
def test_predict_under_autocast(setup, dtype, cfg):
    head, samples, feats = setup
    x = [feats, feats] if cfg.get('flip_test') else feats
    cfg = dict(cfg, output_heatmaps=True)
    ref, _ = head.predict(x, samples, cfg)
    with torch.autocast('cpu', dtype=dtype):
        outputs, _ = head.fuse_outputs(x, samples, cfg)
        preds, fields = head.predict(x, samples, cfg)
    assert all(v.dtype == torch.float32 for v in outputs.values())
    assert fields[0].heatmaps.dtype == torch.float32
    for p, r in zip(preds, ref):
        for key in ('keypoints', 'keypoint_scores', 'bboxes', 'bbox_scores'):
            assert p.get(key).dtype == np.float32, key
            assert np.isfinite(p.get(key)).all(), key
        # low-precision convolutions move scores a little
        np.testing.assert_allclose(p.bbox_scores, r.bbox_scores, atol=0.02)


def test_nan_head_output_predicts_finite_with_score_zero(setup):
    head, samples, feats = setup
    bias = head.keypoint_reg[2].bias
    saved = bias.detach().clone()
    with torch.no_grad():
        bias[0] = float('nan')  # x regression of group 0 everywhere
    try:
        with pytest.warns(UserWarning,
                          match=r'keypoint_reg: 384 non-finite of 1536'):
            preds = head.predict(feats, samples, dict(decode_mode='nearest'))
    finally:
        with torch.no_grad():
            bias.copy_(saved)
    reg_group = np.asarray(head.reg_group)
    for p in preds:
        assert np.isfinite(p.keypoints).all()
        # group 0 = keypoints 0 and 3: score 0, at the object's centre
        assert (p.keypoint_scores[:, reg_group == 0] == 0).all()
        centre = (p.bboxes[:, :2] + p.bboxes[:, 2:]) / 2
        for k in np.flatnonzero(reg_group == 0):
            owner = np.where(p.category_id == 1, k < 2, k >= 2)
            np.testing.assert_allclose(
                p.keypoints[owner, k], centre[owner], atol=1e-4)

"""HigherHRNetHead: layout, losses against independent computations,
gradients into the SWAHR scale branch, flip / resolution fusion, decoding
of perfect outputs, config and input errors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

import mmkp_ext  # noqa: F401
from mmkp_ext.models.losses import HigherHRNetAELoss
from mmpose.registry import MODELS
from mmpose.structures import MultilevelPixelData, PoseDataSample

from _helpers import randomise_

K = 3
C = 8


def build(**kw):
    cfg = dict(
        type='HigherHRNetHead',
        in_channels=C,
        num_keypoints=K,
        deconv_channels=8,
        num_basic_blocks=1)
    cfg.update(kw)
    with DefaultScope.overwrite_default_scope('mmpose'):
        return MODELS.build(cfg)


def swahr(**kw):
    return build(
        with_scale_branch=True, heatmap_loss=dict(type='SWAHRLoss'), **kw)


def samples(B=2, H=8, W=8, seed=0):
    """Data samples laid out as MultiResolutionAELabel + PackPoseInputs
    deliver them (gt_fields levels 0 (H, W) and 1 (2H, 2W))."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for b in range(B):
        hms = [torch.rand(K, H, W, generator=g),
               torch.rand(K, 2 * H, 2 * W, generator=g)]
        for h in hms:
            h[h < 0.5] = 0
        masks = [(torch.rand(H, W, generator=g) > 0.2).float(),
                 (torch.rand(2 * H, 2 * W, generator=g) > 0.2).float()]
        n = 2 + b
        idx = torch.randint(0, H * W, (n, K, 1), generator=g)
        vis = (torch.rand(n, K, 1, generator=g) > 0.2).long()
        d = PoseDataSample()
        d.gt_fields = MultilevelPixelData(heatmaps=hms, heatmap_mask=masks)
        d.gt_instance_labels = InstanceData(
            keypoint_indices=torch.cat([idx, vis], -1),
            keypoint_weights=vis[..., 0].float())
        out.append(d)
    return out


def test_layout_and_shapes():
    head = swahr()
    sd = head.state_dict()
    # 1/4: K heatmaps + K tags; deconv input = C + 2K (cat_output)
    assert sd['final_layers.0.weight'].shape == (2 * K, C, 1, 1)
    assert sd['final_layers.1.weight'].shape == (K, 8, 1, 1)
    assert sd['deconv_layers.0.0.0.weight'].shape == (C + 2 * K, 8, 4, 4)
    assert 'deconv_layers.0.1.0.conv1.weight' in sd
    # scale branch: Conv1x1 -> BN -> ReLU -> depthwise 9x9, last one zero
    for r, cin in enumerate((C, 8)):
        assert sd[f'scale_layers.{r}.0.weight'].shape == (K, cin, 1, 1)
        assert sd[f'scale_layers.{r}.1.running_var'].shape == (K, )
        assert sd[f'scale_layers.{r}.3.weight'].shape == (K, 1, 9, 9)
        assert torch.all(sd[f'scale_layers.{r}.3.weight'] == 0)
        assert torch.all(sd[f'scale_layers.{r}.3.bias'] == 0)
    out = head(torch.randn(2, C, 8, 6))
    assert [tuple(h.shape) for h in out['heatmaps']] == [(2, K, 8, 6),
                                                        (2, K, 16, 12)]
    assert out['tags'].shape == (2, K, 8, 6)
    assert all(torch.all(s == 0) for s in out['scales'])
    plain = build()
    assert plain(torch.randn(1, C, 4, 4))['scales'] is None
    assert not any('scale' in k for k in plain.state_dict())
    shared_tag = build(tag_per_keypoint=False)
    assert shared_tag.state_dict()['final_layers.0.weight'].shape[0] == K + 1


def test_plain_loss_is_masked_mse_plus_official_ae():
    head = build()
    ds = samples()
    x = torch.randn(2, C, 8, 8)
    losses = head.loss([x], ds)
    assert set(losses) == {'loss_heatmap_0', 'loss_heatmap_1', 'loss_pull',
                           'loss_push'}
    out = head(x)
    for r in range(2):
        gt = torch.stack([d.gt_fields.heatmaps[r] for d in ds])
        m = torch.stack([d.gt_fields.heatmap_mask[r] for d in ds])
        mse = ((out['heatmaps'][r] - gt)**2 * m[:, None]).mean(
            dim=(1, 2, 3)).mean()
        torch.testing.assert_close(losses[f'loss_heatmap_{r}'], mse)
    pull, push = HigherHRNetAELoss()(
        out['tags'], [d.gt_instance_labels.keypoint_indices for d in ds])
    torch.testing.assert_close(losses['loss_pull'], pull)
    torch.testing.assert_close(losses['loss_push'], push)
    assert losses['loss_push'] > 0


def test_shared_tag_is_used_for_every_keypoint():
    head = randomise_(build(tag_per_keypoint=False), seed=5)
    ds = samples()
    x = torch.randn(2, C, 8, 8)
    losses = head.loss([x], ds)
    tag = head(x)['tags']
    assert tag.shape == (2, 1, 8, 8)
    pull, push = HigherHRNetAELoss()(
        tag.expand(-1, K, -1, -1),
        [d.gt_instance_labels.keypoint_indices for d in ds])
    torch.testing.assert_close(losses['loss_pull'], pull)
    torch.testing.assert_close(losses['loss_push'], push)
    _, tags = head.fuse_outputs([x], ds, {})
    assert tags.shape == (2, K, 16, 16)
    assert torch.equal(tags[:, 0], tags[:, K - 1])


def test_gradients_reach_scale_branch():
    torch.manual_seed(0)
    head = swahr()
    x = torch.randn(2, C, 8, 8)
    losses = head.loss([x], samples())
    assert {'loss_scale_0', 'loss_scale_1'} <= set(losses)
    sum(losses.values()).backward()
    for r in range(2):
        # the zero-initialised last conv gets gradient from the
        # scale-adaptive target (d loss / d alpha != 0 at alpha = 0)
        assert head.scale_layers[r][3].weight.grad.abs().sum() > 0
        assert head.scale_layers[r][3].bias.grad.abs().sum() > 0
    opt = torch.optim.SGD(head.parameters(), lr=10.0)
    opt.step()
    out = head(x)
    assert all(s.abs().sum() > 0 for s in out['scales'])


def _resize(t, size):
    return F.interpolate(t, size=size, mode='bilinear', align_corners=False)


def authors_fusion(stages, stages_flip, flip_index, K, size,
                   tag_per_joint=True):
    """Transcription of the authors' test-time fusion for one scale
    (HigherHRNet / SWAHR ``lib/core/inference.py``:
    ``get_multi_stage_outputs`` with ``project2image``, then the
    ``aggregate_results`` step), loops as theirs.

    Args:
        stages: the network's outputs in the authors' layout: ``[cat(
            heatmaps, tags) at 1/4, heatmaps at 1/2]``; ``stages_flip`` the
            same for the mirrored image (or ``None``).
        size: ``(h, w)`` to project to, ``None`` = no projection.

    Returns:
        heatmaps ``(B, K, h, w)`` and tags ``(B, K or 1, h, w, L)``.
    """
    def one_pass(outs, flipped):
        total, count, tags = 0, 0, []
        for i, out in enumerate(outs):
            if len(outs) > 1 and i != len(outs) - 1:
                out = F.interpolate(out, size=outs[-1].shape[2:],
                                    mode='bilinear', align_corners=False)
            if flipped:
                out = torch.flip(out, [3])
            hm = out[:, :K]
            total = total + (hm[:, flip_index] if flipped else hm)
            count += 1
            if i == 0:  # AE tags only at the first stage
                tag = out[:, K:]
                if flipped and tag_per_joint:
                    tag = tag[:, flip_index]
                tags.append(tag)
        return total / count, tags

    heatmaps, tags = one_pass(stages, False)
    heatmaps = [heatmaps]
    if stages_flip is not None:
        hm_f, tags_f = one_pass(stages_flip, True)
        heatmaps.append(hm_f)
        tags += tags_f
    if size is not None:
        heatmaps = [_resize(h, size) for h in heatmaps]
        tags = [_resize(t, size) for t in tags]
    final = ((heatmaps[0] + heatmaps[1]) / 2.0
             if len(heatmaps) == 2 else heatmaps[0])
    return final, torch.cat([t.unsqueeze(4) for t in tags], dim=4)


def authors_stages(out):
    """Our head's forward output in the authors' per-stage layout."""
    return [torch.cat([out['heatmaps'][0], out['tags']], 1),
            out['heatmaps'][1]]


def as_authors_tags(tags, L):
    """Our ``(B, L*K, h, w)`` tags as the authors' ``(B, K, h, w, L)``."""
    B, LK, h, w = tags.shape
    return tags.view(B, L, LK // L, h, w).permute(0, 2, 3, 4, 1)


@pytest.mark.parametrize('tag_per_keypoint', [True, False])
def test_flip_and_resolution_fusion_match_authors(tag_per_keypoint):
    """fuse_outputs equals the transcription of the authors' fusion
    (1/4 -> 1/2 bilinear, average with 1/2, mirror + permute the flipped
    pass at 1/2, then resize each pass to the decode size, average; tags
    concatenated) with and without flip, with and without a decode size,
    and over scales (heatmaps averaged, tags of the original scale). One
    step resizing of the 1/4 maps would differ."""
    head = randomise_(build(tag_per_keypoint=tag_per_keypoint),
                      seed=3).eval()
    perm = [0, 2, 1]
    d = PoseDataSample(metainfo=dict(flip_indices=perm))
    x, xf, x2, x2f = torch.randn(4, 2, C, 6, 5)
    with torch.no_grad():
        o, of = authors_stages(head(x)), authors_stages(head(xf))
        for size in (None, (21, 16)):
            for flip in (False, True):
                feats = [[x], [xf]] if flip else [x]
                hm, tags = head.fuse_outputs(feats, [d],
                                             dict(flip_test=flip), size)
                ref_hm, ref_tags = authors_fusion(
                    o, of if flip else None, perm, K, size,
                    tag_per_keypoint)
                torch.testing.assert_close(hm, ref_hm)
                ours = as_authors_tags(tags, 2 if flip else 1)
                torch.testing.assert_close(ours,
                                           ref_tags.expand_as(ours))
            # one-step resizing of the 1/4 maps straight to ``size``
            if size is not None:
                one_step = (_resize(o[0][:, :K], size) +
                            _resize(o[1], size)) / 2
                hm, tags = head.fuse_outputs([x], [d], {}, size)
                assert (hm - one_step).abs().max() > 1e-3
                assert (tags - _resize(o[0][:, K:], size)).abs().max() > 1e-3
        # multi-scale with flip: the authors sum the projected heatmaps of
        # every scale and divide; tags come from scale 1 only
        o2, o2f = authors_stages(head(x2)), authors_stages(head(x2f))
        hm, tags = head.fuse_outputs([[[x], [xf]], [[x2], [x2f]]], [d],
                                     dict(flip_test=True,
                                          multiscale_test=True), (12, 10))
        ref1, ref_tags = authors_fusion(o, of, perm, K, (12, 10),
                                        tag_per_keypoint)
        ref2, _ = authors_fusion(o2, o2f, perm, K, (12, 10),
                                 tag_per_keypoint)
        torch.testing.assert_close(hm, (ref1 + ref2) / 2.0)
        ours = as_authors_tags(tags, 2)
        torch.testing.assert_close(ours, ref_tags.expand_as(ours))
    with pytest.raises(ValueError, match='flip_indices with 3 entries'):
        head.fuse_outputs([[x], [xf]], [PoseDataSample(metainfo={})],
                          dict(flip_test=True))


# people in input pixels (64 x 64 input): multiples of 4 land on cells
PEOPLE = np.array([[[12, 12], [20, 16], [16, 28]],
                   [[44, 40], [52, 44], [48, 56]]], dtype=np.float64)


def _perfect_outputs(flipped=False, width=64):
    """What a perfect network outputs for PEOPLE on a (64, width) input (or
    for the mirrored image: mirrored maps, left/right channels swapped)."""
    heatmaps = []
    for stride in (4, 2):
        n, nw = 64 // stride, width // stride
        yy, xx = np.mgrid[:n, :nw]
        hm = np.zeros((K, n, nw))
        for person in PEOPLE:
            for k, (x, y) in enumerate(person / stride):
                hm[k] = np.maximum(
                    hm[k], np.exp(-((xx - x)**2 + (yy - y)**2) / 8))
        heatmaps.append(hm)
    tags = np.zeros((K, 16, width // 4))
    for p, person in enumerate(PEOPLE):
        for k, (x, y) in enumerate((person / 4).astype(int)):
            tags[k, y - 1:y + 2, x - 1:x + 2] = 3.0 * p
    maps = heatmaps + [tags]
    if flipped:
        maps = [m[[0, 2, 1], :, ::-1] for m in maps]
    maps = [torch.tensor(m.copy(), dtype=torch.float32)[None] for m in maps]
    return dict(heatmaps=maps[:2], tags=maps[2], scales=None)


@pytest.mark.parametrize('flip,width', [(False, 64), (True, 64),
                                        (True, 96)])
def test_predict_decodes_perfect_outputs(flip, width):
    decoder = dict(
        type='AssociativeEmbedding',
        input_size=(64, 64),
        heatmap_size=(64, 64),
        decode_keypoint_thr=0.3,
        decode_keypoint_order=[0, 1, 2],
        decode_max_instances=5)
    head = build(decoder=decoder)
    head.forward = lambda feats: _perfect_outputs(feats == 'flip', width)
    # a 96 px wide input (BottomupResize 'expand') against a 64x64 codec
    d = PoseDataSample(
        metainfo=dict(flip_indices=[0, 2, 1], input_size=(width, 64)))
    feats = ['orig', 'flip'] if flip else 'orig'
    preds, fields = head.predict(
        feats, [d], dict(flip_test=flip, output_heatmaps=True))
    kpts = preds[0].keypoints
    assert kpts.shape == (2, K, 2)
    order = np.argsort(kpts[:, 0, 0])
    # bilinear resizing (align_corners=False) of a stride-s map moves
    # peaks by (s - 1) / 2 px; the decoder's +-0.25 px refinement adds to it
    np.testing.assert_allclose(kpts[order], PEOPLE, atol=2.0)
    assert np.all(preds[0].keypoint_scores > 0.8)
    assert preds[0].bbox_scores.shape == (2, )
    assert fields[0].heatmaps.shape == (K, 64, width)
    assert fields[0].tags.shape == ((2 if flip else 1) * K, 64, width)


def test_end_to_end_with_hrnet_backbone():
    """mmpose's HRNet (tiny) + the SWAHR head in a BottomupPoseEstimator:
    one training step, all losses finite, eval forward shapes."""
    cfg = dict(
        type='BottomupPoseEstimator',
        backbone=dict(
            type='HRNet',
            in_channels=3,
            extra=dict(
                stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK',
                            num_blocks=(1, ), num_channels=(8, )),
                stage2=dict(num_modules=1, num_branches=2, block='BASIC',
                            num_blocks=(1, 1), num_channels=(8, 16)),
                stage3=dict(num_modules=1, num_branches=3, block='BASIC',
                            num_blocks=(1, 1, 1), num_channels=(8, 16, 32)),
                stage4=dict(num_modules=1, num_branches=4, block='BASIC',
                            num_blocks=(1, 1, 1, 1),
                            num_channels=(8, 16, 32, 64),
                            multiscale_output=False))),
        head=dict(
            type='HigherHRNetHead',
            in_channels=8,
            num_keypoints=K,
            deconv_channels=8,
            num_basic_blocks=1,
            with_scale_branch=True,
            heatmap_loss=dict(type='SWAHRLoss')))
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(cfg)
    losses = model.loss(torch.randn(2, 3, 32, 32), samples(H=8, W=8))
    assert all(torch.isfinite(v) for v in losses.values())
    total = sum(losses.values())
    total.backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0


def test_bad_configs_and_inputs():
    with pytest.raises(ValueError, match='no scale branch'):
        build(heatmap_loss=dict(type='SWAHRLoss'))
    with pytest.raises(ValueError, match='not scale-adaptive'):
        build(with_scale_branch=True)
    with pytest.raises(ValueError, match='2 heatmap_loss configs for 3'):
        build(num_deconv_layers=2, heatmap_loss=[dict(type='SWAHRLoss')] * 2)
    with pytest.raises(ValueError, match='deconv_kernel_size'):
        build(deconv_kernel_size=5)
    with pytest.raises(ValueError, match='num_keypoints must be an int'):
        build(num_keypoints=0)
    with pytest.raises(TypeError, match='must be mmpose.s AssociativeEmbedding'):
        build(decoder=dict(type='MSRAHeatmap', input_size=(8, 8),
                           heatmap_size=(4, 4), sigma=1))
    head = build()
    with pytest.raises(ValueError, match=r'expected a \(B, 8, H, W\)'):
        head(torch.randn(1, 4, 8, 8))
    with pytest.raises(ValueError, match='do not match the output'):
        head.loss([torch.randn(2, C, 6, 6)], samples())
    two = build(num_deconv_layers=2, heatmap_loss=[
        dict(type='SWAHRLoss', scale_adaptive=False, weight_adaptive=False)
    ] * 3)
    with pytest.raises(ValueError, match='gt_fields has 2 levels'):
        two.loss([torch.randn(2, C, 8, 8)], samples())
    with pytest.raises(RuntimeError, match='set decoder'):
        head.predict([torch.randn(1, C, 4, 4)], [PoseDataSample()], {})


def test_contract_with_codec_and_pack_inputs():
    """MultiResolutionAELabel -> GenerateTarget -> PackPoseInputs -> loss:
    the head reads what the codec writes; a perfect forward (the encoded
    heatmaps, person-constant tags) decodes back to the labelled keypoints
    through the head with the codec as decoder."""
    from mmpose.datasets.transforms import GenerateTarget, PackPoseInputs
    codec = dict(
        type='MultiResolutionAELabel',
        input_size=(64, 64),
        heatmap_sizes=[(16, 16), (32, 32)],
        sigma=2,
        decode_keypoint_order=[0, 1, 2],
        decode_max_instances=5)
    results = dict(
        img=np.zeros((64, 64, 3), np.uint8),
        keypoints=PEOPLE.astype(np.float32),
        keypoints_visible=np.ones((2, K), np.float32),
        heatmap_mask=np.ones((64, 64), bool),
        img_shape=(64, 64),
        input_size=(64, 64),
        input_center=np.array([32, 32], np.float32),
        input_scale=np.array([64, 64], np.float32),
        flip_indices=[0, 2, 1])
    with DefaultScope.overwrite_default_scope('mmpose'):
        results = GenerateTarget(encoder=codec)(results)
        packed = PackPoseInputs(
            meta_keys=('img_shape', 'input_size', 'input_center',
                       'input_scale', 'flip_indices'))(results)
        head = build(decoder=codec)
    d = packed['data_samples']
    losses = head.loss([torch.randn(1, C, 16, 16)], [d])
    assert all(torch.isfinite(v) for v in losses.values())
    hms = [h[None].float() for h in d.gt_fields.heatmaps]
    idx = d.gt_instance_labels.keypoint_indices
    tags = torch.zeros(1, K, 16, 16)
    for p, person in enumerate(idx):
        for k, (i, v) in enumerate(person.tolist()):
            y, x = divmod(i, 16)
            tags[0, k, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2] = 3.0 * p
    head.forward = lambda feats: dict(heatmaps=hms, tags=tags, scales=None)
    preds = head.predict('orig', [d], dict(flip_test=False))
    kpts = preds[0].keypoints
    order = np.argsort(kpts[:, 0, 0])
    np.testing.assert_allclose(kpts[order], PEOPLE, atol=1.5)


def test_flip_shift_heatmap_option():
    """``shift_heatmap=True`` (off by default, as the authors) moves the
    mirrored pass's heatmaps and tags one pixel right at the decode size."""
    head = randomise_(build(), seed=4).eval()
    d = PoseDataSample(metainfo=dict(flip_indices=[0, 2, 1]))
    x, xf = torch.randn(2, 1, C, 6, 5)

    def shift(t):
        return torch.cat([t[..., :1], t[..., :-1]], -1)

    with torch.no_grad():
        hm_o, _ = head.fuse_outputs([x], [d], {}, (16, 14))
        hm, tags = head.fuse_outputs([[x], [xf]], [d],
                                     dict(flip_test=True), (16, 14))
        hm_s, tags_s = head.fuse_outputs(
            [[x], [xf]], [d], dict(flip_test=True, shift_heatmap=True),
            (16, 14))
    torch.testing.assert_close(hm_s, (hm_o + shift(2 * hm - hm_o)) / 2)
    torch.testing.assert_close(tags_s[:, :K], tags[:, :K])
    torch.testing.assert_close(tags_s[:, K:], shift(tags[:, K:]))
    assert (hm_s - hm).abs().max() > 1e-4

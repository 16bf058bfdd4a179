"""Tests of the grouped CenterNet head (``CenterNetPoseHead``): channels,
initialisation, losses against independent computations, predict contract,
flip-test fusion and grouping / decoder consistency checks."""
import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData

import mmkp_ext  # noqa: F401  (registration)
from mmkp_ext.codecs import GroupedCenterNetLabel
from mmkp_ext.grouping import save_grouping
from mmkp_ext.models.heads import CenterNetPoseHead, group_flip_permutation
from mmkp_ext.models.losses import CenterNetFocalLoss, CenterNetRegL1Loss
from mmpose.datasets.transforms import GenerateTarget, PackPoseInputs
from mmpose.registry import MODELS

# Tiny layout: 4 keypoints in two classes (0-1, 2-3), mirror pairs (0, 1)
# and (2, 3); grouping merges across classes and is flip-consistent.
LAYOUT = dict(
    num_keypoints=4,
    category_keypoints=[(0, 1), (2, 3)],
    reg_group=[0, 1, 1, 0],
    hm_group=[0, 1, 1, 0])
FLIP = [1, 0, 3, 2]


def codec_cfg(**kwargs):
    cfg = dict(
        type='GroupedCenterNetLabel',
        input_size=(64, 48),
        heatmap_size=(16, 12),
        topk=6,
        **LAYOUT)
    cfg.update(kwargs)
    return cfg


def make_head(**kwargs):
    cfg = dict(
        type='CenterNetPoseHead',
        in_channels=8,
        head_conv=8,
        decoder=codec_cfg(),
        **LAYOUT)
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def make_samples(objects_per_image, seed=0):
    """PoseDataSamples through mmpose's GenerateTarget + PackPoseInputs.

    objects_per_image: list of lists of category ids."""
    rng = np.random.default_rng(seed)
    samples = []
    for cats in objects_per_image:
        n = len(cats)
        x1 = rng.uniform(0, 30, n)
        y1 = rng.uniform(0, 20, n)
        boxes = np.stack(
            [x1, y1, x1 + rng.uniform(10, 30, n), y1 + rng.uniform(10, 25, n)],
            -1)
        kpts = np.stack([
            rng.uniform(boxes[:, None, 0], boxes[:, None, 2], (n, 4)),
            rng.uniform(boxes[:, None, 1], boxes[:, None, 3], (n, 4))
        ], -1)
        vis = (rng.uniform(size=(n, 4)) > 0.2).astype(np.float32)
        results = dict(
            img=np.zeros((48, 64, 3), np.uint8),
            keypoints=kpts.astype(np.float32),
            keypoints_visible=vis,
            bbox=boxes.astype(np.float32),
            category_id=np.array(cats, dtype=np.int64),
            input_size=(64, 48),
            input_center=np.array([32.0, 24.0]),
            input_scale=np.array([64.0, 48.0]),
            flip_indices=FLIP)
        results = GenerateTarget(encoder=codec_cfg())(results)
        samples.append(
            PackPoseInputs(
                meta_keys=('input_size', 'input_center', 'input_scale',
                           'flip_indices'))(results)['data_samples'])
    return samples


def feats_for(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 8, 12, 16, generator=g), )


def test_output_channels_deepfashion2_ungrouped_and_62_groups():
    head = CenterNetPoseHead(
        in_channels=4,
        num_keypoints=294,
        category_keypoints='deepfashion2',
        head_conv=4)
    out = head.forward((torch.zeros(1, 4, 5, 5), ))
    chans = {k: v.shape[1] for k, v in out.items()}
    assert chans == dict(
        center_heatmap=13,
        center_offset=2,
        box_size=2,
        keypoint_reg=588,
        keypoint_heatmap=294,
        keypoint_offset=2)
    assert sum(chans.values()) == 901 == head.num_output_channels
    # 62/62: k % 62 never merges two keypoints of one category (each
    # category has at most 39 contiguous keypoints)
    group = [k % 62 for k in range(294)]
    grouped = CenterNetPoseHead(
        in_channels=4,
        num_keypoints=294,
        category_keypoints='deepfashion2',
        head_conv=4,
        reg_group=group,
        hm_group=group)
    out = grouped.forward((torch.zeros(1, 4, 5, 5), ))
    assert sum(v.shape[1] for v in out.values()) == 205
    assert grouped.num_output_channels == 205


def test_branch_layout_and_bias_init():
    head = make_head(head_conv=16)
    for key in ('center_heatmap', 'center_offset', 'box_size', 'keypoint_reg',
                'keypoint_heatmap', 'keypoint_offset'):
        branch = getattr(head, key)
        assert isinstance(branch[0], torch.nn.Conv2d)
        assert branch[0].kernel_size == (3, 3)
        assert branch[0].out_channels == 16
        assert isinstance(branch[1], torch.nn.ReLU)
        assert branch[2].kernel_size == (1, 1)
        expected = -2.19 if 'heatmap' in key else 0.0
        assert torch.all(branch[2].bias == expected), key
        assert torch.all(branch[0].bias == 0), key
    # a flat input gives sigmoid(-2.19) ~ 0.1 everywhere
    out = head.forward(torch.zeros(1, 8, 3, 3))
    assert torch.allclose(
        out['center_heatmap'].sigmoid(), torch.tensor(0.1007), atol=1e-4)


def test_grouping_file_and_consistency_with_decoder(tmp_path):
    path = tmp_path / 'g.json'
    save_grouping(path, LAYOUT['reg_group'], LAYOUT['hm_group'], 'manual',
                  'test')
    head = make_head(reg_group=None, hm_group=None, grouping_file=str(path))
    assert head.reg_group == LAYOUT['reg_group']
    with pytest.raises(ValueError, match='disagree on hm_group'):
        make_head(hm_group=[0, 1, 2, 3])
    with pytest.raises(ValueError, match='disagree on category keypoint'):
        make_head(
            category_keypoints=[(0, 3)],
            reg_group=None,
            hm_group=None,
            decoder=codec_cfg(category_keypoints=[(0, 1), (2, 3)]))
    with pytest.raises(ValueError, match='reg_group has 3 entries'):
        make_head(reg_group=[0, 1, 0])
    with pytest.raises(ValueError, match='either grouping_file'):
        make_head(grouping_file=str(path))
    # identity when neither is given
    plain = CenterNetPoseHead(in_channels=2, num_keypoints=5, head_conv=2)
    assert plain.reg_group == plain.hm_group == [0, 1, 2, 3, 4]
    assert plain.num_output_channels == 1 + 2 + 2 + 10 + 5 + 2


def reference_losses(head, out, samples, masked):
    """The six losses recomputed image by image, object by object."""
    focal, l1 = CenterNetFocalLoss(), CenterNetRegL1Loss()
    H, W = out['center_heatmap'].shape[2:]
    preds = dict(
        center_offset=[], box_size=[], keypoint_reg=[], keypoint_offset=[])
    tgts = {k: [] for k in preds}
    masks = {k: [] for k in preds}
    channel_mask = []
    codec = GroupedCenterNetLabel(**{
        k: v
        for k, v in codec_cfg().items() if k != 'type'
    })
    for b, s in enumerate(samples):
        lab = s.gt_instance_labels
        for n in range(len(lab.center_index)):
            idx = int(lab.center_index[n])
            y, x = divmod(idx, W)
            for key in ('center_offset', 'box_size', 'keypoint_reg'):
                preds[key].append(out[key][b, :, y, x])
                tgts[key].append(lab.get(key)[n])
                m = (
                    lab.keypoint_reg_mask[n]
                    if key == 'keypoint_reg' else lab.center_mask[n].repeat(2))
                masks[key].append(m)
            for k in range(4):
                y, x = divmod(int(lab.keypoint_index[n, k]), W)
                preds['keypoint_offset'].append(out['keypoint_offset'][b, :, y,
                                                                       x])
                tgts['keypoint_offset'].append(lab.keypoint_offset[n, k])
                masks['keypoint_offset'].append(lab.keypoint_offset_mask[n, k])
        channel_mask.append(
            torch.as_tensor(
                codec.channel_mask(lab.class_index.numpy(),
                                   lab.center_mask.numpy())))
    res = {}
    weights = dict(
        center_offset=1.0, box_size=0.1, keypoint_reg=1.0, keypoint_offset=1.0)
    for key in preds:
        if preds[key]:
            p = torch.stack(preds[key])
            t = torch.stack(tgts[key]).float()
            m = torch.stack(masks[key]).float()
            res['loss_' + key] = weights[key] * l1(p, t, m)
        else:
            res['loss_' + key] = torch.tensor(0.0)
    gt_c = torch.stack([s.gt_fields.center_heatmap for s in samples])
    gt_k = torch.stack([s.gt_fields.keypoint_heatmap for s in samples])
    res['loss_center_heatmap'] = focal(out['center_heatmap'], gt_c)
    res['loss_keypoint_heatmap'] = focal(
        out['keypoint_heatmap'], gt_k,
        torch.stack(channel_mask) if masked else None)
    return res, torch.stack(channel_mask)


@pytest.mark.parametrize('masked', [False, True])
def test_loss_matches_reference_and_backprops(masked):
    head = make_head(masked_keypoint_loss=masked)
    samples = make_samples([[1, 2, 1], [], [1]])
    feats = feats_for(3)
    losses = head.loss(feats, samples)
    assert set(losses) == {
        'loss_center_heatmap', 'loss_center_offset', 'loss_box_size',
        'loss_keypoint_reg', 'loss_keypoint_heatmap', 'loss_keypoint_offset'
    }
    out = head.forward(feats)
    ref, cmask = reference_losses(head, out, samples, masked)
    for key, value in losses.items():
        assert value.dim() == 0
        assert value.item() == pytest.approx(ref[key].item(), rel=1e-5), key
    # image 1 has no objects, image 2 only class 0 (channels 0, 1 = all)
    assert cmask.tolist() == [[True, True], [False, False], [True, True]]
    sum(losses.values()).backward()
    for key in ('center_heatmap', 'center_offset', 'box_size', 'keypoint_reg',
                'keypoint_heatmap', 'keypoint_offset'):
        grad = getattr(head, key)[2].weight.grad
        assert grad is not None and grad.abs().sum() > 0, key


def test_masked_loss_ignores_channels_of_absent_classes():
    # hm groups: class 0 -> channels {0, 1}, class 1 -> channel {2}
    layout = dict(reg_group=[0, 1, 0, 1], hm_group=[0, 1, 2, 2])
    head = make_head(
        masked_keypoint_loss=True, decoder=codec_cfg(**layout), **layout)
    head.decoder = None
    samples = make_samples([[1, 1]], seed=3)
    # re-encode with the layout of this head
    codec = GroupedCenterNetLabel(**{
        k: v
        for k, v in codec_cfg(**layout).items() if k != 'type'
    })
    for s in samples:
        enc = codec.encode(s.gt_instances.keypoints,
                           s.gt_instances.keypoints_visible,
                           s.gt_instances.bboxes, s.gt_instances.category_id)
        s.gt_fields.keypoint_heatmap = torch.as_tensor(enc['keypoint_heatmap'])
        assert enc['keypoint_channel_mask'].tolist() == [True, True, False]
    feats = feats_for(1)
    base = head.loss(feats, samples)['loss_keypoint_heatmap']
    # channel 2 (absent class 1): changing its logits and target changes
    # nothing; the keypoint_heatmap branch output is patched via its bias
    with torch.no_grad():
        head.keypoint_heatmap[2].bias[2] += 5.0
    samples[0].gt_fields.keypoint_heatmap[2, 3, 4] = 1.0
    assert head.loss(feats, samples)['loss_keypoint_heatmap'].item() == \
        base.item()
    with torch.no_grad():
        head.keypoint_heatmap[2].bias[0] += 1.0
    assert head.loss(feats, samples)['loss_keypoint_heatmap'].item() != \
        base.item()


def test_loss_rejects_mismatched_heatmap_size():
    head = make_head()
    samples = make_samples([[1]])
    with pytest.raises(ValueError, match='heatmap_size must be the output'):
        head.loss((torch.zeros(1, 8, 10, 16), ), samples)


def test_predict_contract():
    head = make_head()
    samples = make_samples([[1, 2], [2]])
    feats = feats_for(2)
    preds = head.predict(feats, samples, dict())
    assert len(preds) == 2
    dec = head.decoder.batch_decode(**head.forward(feats))
    for b, p in enumerate(preds):
        assert isinstance(p, InstanceData)
        assert p.keypoints.shape == (6, 4, 2) and p.keypoints.dtype == \
            np.float32
        assert p.keypoint_scores.shape == (6, 4)
        np.testing.assert_array_equal(p.keypoints_visible, p.keypoint_scores)
        assert p.bboxes.shape == (6, 4) and p.bbox_scores.shape == (6, )
        assert p.category_id.dtype == np.int64
        assert set(p.category_id.tolist()) <= {1, 2}
        assert np.all(np.diff(p.bbox_scores) <= 0)
        np.testing.assert_allclose(p.keypoints, dec['keypoints'][b].numpy())
        np.testing.assert_allclose(p.bboxes, dec['bboxes'][b].numpy())
        # keypoints of the other class are zero with zero score
        other = np.where(p.category_id[:, None] == 1,
                         np.arange(4) >= 2,
                         np.arange(4) < 2)
        assert (p.keypoint_scores[other] == 0).all()
    # test_cfg overrides and score threshold
    preds = head.predict(
        feats, samples,
        dict(
            decode_mode='nearest', topk=3, score_thr=0.0,
            output_heatmaps=True))
    preds, fields = preds
    assert preds[0].keypoints.shape == (3, 4, 2)
    assert fields[0].heatmaps.shape == (2, 12, 16)
    assert fields[0].center_heatmaps.shape == (2, 12, 16)
    kept = head.predict(feats, samples, dict(score_thr=2.0))
    assert len(kept[0]) == 0 and kept[0].keypoints.shape == (0, 4, 2)
    with pytest.raises(ValueError, match='multiscale_test'):
        head.predict(feats, samples, dict(multiscale_test=True))
    head.decoder = None
    with pytest.raises(RuntimeError, match='needs decoder'):
        head.predict(feats, samples, dict())


def test_group_flip_permutation():
    # groups {0, 3} and {1, 2}; mirror partners (1, 2) and (0, 3)
    assert group_flip_permutation([0, 1, 1, 0], FLIP) == [1, 0]
    assert group_flip_permutation([0, 1, 2, 3], FLIP) == [1, 0, 3, 2]
    assert group_flip_permutation([0, 0, 1, 1], FLIP) == [0, 1]
    with pytest.raises(
            ValueError,
            match=r'group 0 holds keypoints \[0, 3\] '
            r'whose mirror partners \[1, 2\] lie in groups '
            r'\[1, 2\]'):
        group_flip_permutation([0, 1, 2, 0], FLIP, 'hm_group')
    with pytest.raises(ValueError, match='flip_indices has 3 entries'):
        group_flip_permutation([0, 1, 2, 0], [1, 0, 2])


def random_outputs(head, B=1, H=3, W=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        k: torch.randn(B, c, H, W, generator=g)
        for k, c in head.out_channels.items()
    }


@pytest.mark.parametrize('mode', ['exact', 'official'])
def test_flip_fuse_hand_computation(mode):
    head = make_head(flip_mode=mode)
    o = random_outputs(head, seed=1)
    f = random_outputs(head, seed=2)
    fused = head.flip_fuse(o, f, FLIP)
    perm = [1, 0]  # reg and hm groups: {0, 3} <-> {1, 2}
    W = 4
    # input 64 px wide, map 16 wide: stride 4. Under x' = w - 1 - x a value
    # v from the left edge of a mirrored cell stands for 1 - 1/4 - v.
    a = 0.75 if mode == 'exact' else 0.0

    def sig(v):
        return 1 / (1 + np.exp(-v))

    on = {k: v[0].numpy().astype(np.float64) for k, v in o.items()}
    fn = {k: v[0].numpy().astype(np.float64) for k, v in f.items()}
    def flipped_heat(key, c, y, x):
        """The flipped pass's heatmap read back at cell x: exact mode
        interpolates 1/4 of the way towards the next cell (x + 1, the
        last column replicated), official reads the mirrored cell."""
        xm = W - 1 - x
        xn = W - 1 - min(x + 1, W - 1)
        w_next = 0.25 if mode == 'exact' else 0.0
        return ((1 - w_next) * sig(fn[key][c, y, xm]) +
                w_next * sig(fn[key][c, y, xn]))

    for y in range(3):
        for x in range(W):
            xm = W - 1 - x
            for c in range(2):
                exp = (sig(on['center_heatmap'][c, y, x]) +
                       flipped_heat('center_heatmap', c, y, x)) / 2
                assert fused['center_heatmap'][0, c, y, x].item() == \
                    pytest.approx(exp, abs=1e-6)
            for g in range(2):
                exp = (sig(on['keypoint_heatmap'][g, y, x]) +
                       flipped_heat('keypoint_heatmap', perm[g], y, x)) / 2
                assert fused['keypoint_heatmap'][0, g, y, x].item() == \
                    pytest.approx(exp, abs=1e-6)
                ex = (on['keypoint_reg'][2 * g, y, x] + a -
                      fn['keypoint_reg'][2 * perm[g], y, xm]) / 2
                ey = (on['keypoint_reg'][2 * g + 1, y, x] +
                      fn['keypoint_reg'][2 * perm[g] + 1, y, xm]) / 2
                assert fused['keypoint_reg'][0, 2 * g, y, x].item() == \
                    pytest.approx(ex, abs=1e-6)
                assert fused['keypoint_reg'][0, 2 * g + 1, y, x].item() == \
                    pytest.approx(ey, abs=1e-6)
            for i in range(2):
                exp = (on['box_size'][i, y, x] + fn['box_size'][i, y, xm]) / 2
                assert fused['box_size'][0, i, y, x].item() == \
                    pytest.approx(exp, abs=1e-6)
            for key in ('center_offset', 'keypoint_offset'):
                if mode == 'official':  # the original pass only
                    assert torch.equal(fused[key][0, :, y, x], o[key][0, :,
                                                                       y, x])
                    continue
                ex = (on[key][0, y, x] + a - fn[key][0, y, xm]) / 2
                ey = (on[key][1, y, x] + fn[key][1, y, xm]) / 2
                assert fused[key][0, 0, y, x].item() == \
                    pytest.approx(ex, abs=1e-6)
                assert fused[key][0, 1, y, x].item() == \
                    pytest.approx(ey, abs=1e-6)
    # the test_cfg / argument override of the head's mode
    other = 'official' if mode == 'exact' else 'exact'
    again = head.flip_fuse(o, f, FLIP, flip_mode=other)
    assert not torch.equal(again['keypoint_reg'], fused['keypoint_reg'])


def test_flip_mode_is_validated():
    with pytest.raises(
            ValueError,
            match=r"flip_mode must be one of \('exact', 'official'\).*got "
            r"'offical'"):
        make_head(flip_mode='offical')
    head = make_head()
    assert head.flip_mode == 'exact'
    o = random_outputs(head)
    with pytest.raises(ValueError, match='flip_mode must be one of'):
        head.flip_fuse(o, o, FLIP, flip_mode='udp')
    samples = make_samples([[1]])
    feats = feats_for(1)
    with pytest.raises(ValueError, match="got 'heatmap'"):
        head.predict([feats, feats], samples,
                     dict(flip_test=True, flip_mode='heatmap'))
    head.decoder = None
    with pytest.raises(ValueError, match='needs the map stride'):
        head.flip_fuse(o, o, FLIP)
    fused = head.flip_fuse(o, o, FLIP, stride=2.0)  # a = 1/2
    torch.testing.assert_close(
        fused['center_offset'][:, 0],
        (o['center_offset'][:, 0] + 0.5 -
         o['center_offset'][:, 0].flip(-1)) / 2)
    with pytest.raises(ValueError, match='stride must be a number > 0'):
        head.flip_fuse(o, o, FLIP, stride=0)


def mirror(head, outputs, a=0.0):
    """What a perfectly mirror-equivariant network outputs for the flipped
    image, given its outputs for the original, when a value ``v`` from a
    cell's left edge mirrors to ``a - v`` (``a = 0``: CenterNet's
    convention, ``a = 1 - 1/stride``: the image mirror ``w - 1 - x``)."""
    perm = torch.as_tensor(group_flip_permutation(head.hm_group, FLIP))
    rperm = torch.as_tensor(group_flip_permutation(head.reg_group, FLIP))
    m = {k: v.flip(-1) for k, v in outputs.items()}
    m['keypoint_heatmap'] = m['keypoint_heatmap'][:, perm]
    B, _, H, W = m['keypoint_reg'].shape
    reg = m['keypoint_reg'].view(B, -1, 2, H, W)[:, rperm].clone()
    reg[:, :, 0] = a - reg[:, :, 0]
    m['keypoint_reg'] = reg.view(B, -1, H, W)
    for key in ('center_offset', 'keypoint_offset'):
        m[key] = m[key].clone()
        m[key][:, 0] = a - m[key][:, 0]
    return m


@pytest.mark.parametrize('mode, a', [('exact', 0.75), ('official', 0.0)])
def test_flip_test_of_a_mirror_symmetric_pair_is_the_original(mode, a):
    """If the flipped image's outputs are exactly the mirrored outputs (in
    the mode's own convention), flip fusion must return the original
    outputs and predict the same result."""
    head = make_head(flip_mode=mode)
    o = random_outputs(head, B=2, H=12, W=16, seed=4)
    if mode == 'exact':
        # heatmaps mirrored exactly: the flipped pass's peaks one cell
        # right in the last 1/4 of a cell, i.e. with smooth maps a 1/4-cell
        # shift; give the mirror pass flat heatmaps so that only the
        # regression / offset convention is tested here
        for key in ('center_heatmap', 'keypoint_heatmap'):
            o[key] = o[key].mean(-1, keepdim=True).expand_as(o[key]).clone()
    fused = head.flip_fuse(o, mirror(head, o, a), FLIP)
    for key in o:
        expected = o[key].sigmoid() if 'heatmap' in key else o[key]
        torch.testing.assert_close(fused[key], expected)

    class StubHead(CenterNetPoseHead):
        """Forward returns fixed outputs: feats are keys of a table."""
        table = {}

        def forward(self, feats):
            return self.table[feats]

    stub = make_head(type='CenterNetPoseHead', flip_mode=mode)
    stub.__class__ = StubHead
    StubHead.table = {'orig': o, 'flip': mirror(head, o, a)}
    samples = make_samples([[1], [2]])
    plain = stub.predict('orig', samples, dict())
    flipped = stub.predict(['orig', 'flip'], samples, dict(flip_test=True))
    for a, b in zip(plain, flipped):
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-5)
        np.testing.assert_allclose(
            a.keypoint_scores, b.keypoint_scores, atol=1e-6)
        np.testing.assert_allclose(a.bboxes, b.bboxes, atol=1e-5)
        np.testing.assert_array_equal(a.category_id, b.category_id)


def test_flip_test_refuses_inconsistent_grouping():
    head = make_head(hm_group=[0, 1, 2, 0], decoder=None)
    head.decoder = GroupedCenterNetLabel(**{
        k: v
        for k, v in codec_cfg(hm_group=[0, 1, 2, 0]).items() if k != 'type'
    })
    samples = make_samples([[1]])
    feats = feats_for(1)
    with pytest.raises(ValueError, match='hm_group is not flip-consistent'):
        head.predict([feats, feats], samples, dict(flip_test=True))
    with pytest.raises(ValueError, match=r'\[orig_feats, flipped_feats\]'):
        make_head().predict(feats, samples, dict(flip_test=True))

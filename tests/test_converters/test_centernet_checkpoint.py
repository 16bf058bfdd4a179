"""The authors' CenterNet multi_pose network (DLA-34 + DCN up-path + six
pose heads, xingyizhou/CenterNet ``pose_dla_dcn.py``) written here as a
functional transcription over a state dict in the authors' key layout, with
an independent DCNv2 reference (per kernel point gathers, DCNv2's border
rule); random weights -> converter -> ``CenterNetPoseEstimator``: the six
head outputs agree, and decoding with ``nearest`` agrees with a
transcription of the authors' ``multi_pose_decode``."""
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from _helpers import REPO_ROOT, run_python
from test_models.test_backbones.test_dla import (public_dla34_layout,
                                                 random_state_dict,
                                                 reference_dla34)

import mmkp_ext  # noqa: F401
from mmkp_ext.codecs import GroupedCenterNetLabel
from mmkp_ext.converters.centernet_checkpoint import (
    AUTHOR_HEADS, convert_centernet_checkpoint, convert_centernet_state_dict)

CONFIG = osp.join(REPO_ROOT, 'configs/centernet_grouping/coco/'
                  'cn-pose_dla34-dcn_authors-3x_coco-512x512.py')
CH = (16, 32, 64, 128, 256, 512)
FIRST, LAST = 2, 5
HEADS = dict(hm=1, wh=2, hps=34, reg=2, hm_hp=17, hp_offset=2)


# ---------------------------------------------------------------------------
# The authors' key layout.
# ---------------------------------------------------------------------------
def _bn(p, c):
    return [(f'{p}.{n}', (c, ))
            for n in ('weight', 'bias', 'running_mean', 'running_var')]


def _deform_conv(p, cin, cout):
    return [(f'{p}.conv.weight', (cout, cin, 3, 3)), (f'{p}.conv.bias',
                                                      (cout, )),
            (f'{p}.conv.conv_offset_mask.weight', (27, cin, 3, 3)),
            (f'{p}.conv.conv_offset_mask.bias', (27, ))] + _bn(f'{p}.actf.0',
                                                               cout)


def _ida(prefix, o, channels, up_f):
    keys = []
    for i in range(1, len(channels)):
        f = int(up_f[i])
        keys += _deform_conv(f'{prefix}.proj_{i}', channels[i], o)
        keys.append((f'{prefix}.up_{i}.weight', (o, 1, 2 * f, 2 * f)))
        keys += _deform_conv(f'{prefix}.node_{i}', o, o)
    return keys


def authors_layout():
    keys = [(f'base.{k}', s) for k, s in public_dla34_layout(ucbdrive=True)]
    channels = list(CH[FIRST:])
    in_ch = list(channels)
    scales = [2**i for i in range(len(channels))]
    for i in range(len(channels) - 1):
        j = len(channels) - i - 2
        keys += _ida(f'dla_up.ida_{i}', channels[j], in_ch[j:],
                     [s // scales[j] for s in scales[j:]])
        scales[j + 1:] = [scales[j]] * (len(scales) - j - 1)
        in_ch[j + 1:] = [channels[j]] * (len(in_ch) - j - 1)
    keys += _ida('ida_up', CH[FIRST], list(CH[FIRST:LAST]),
                 [2**i for i in range(LAST - FIRST)])
    for h, c in HEADS.items():
        keys += [(f'{h}.0.weight', (256, CH[FIRST], 3, 3)),
                 (f'{h}.0.bias', (256, )), (f'{h}.2.weight', (c, 256, 1, 1)),
                 (f'{h}.2.bias', (c, ))]
    return keys


def authors_state_dict(seed=0):
    sd = random_state_dict(authors_layout(), seed=seed)
    # Boxes of a few output px and joints near their centre, so that the
    # nearest-peak snapping of the decoder happens for some joints.
    sd['wh.2.bias'] = torch.full((2, ), 6.0)
    sd['hps.2.weight'] = sd['hps.2.weight'] * 0.2
    # Deformation of a few pixels (some samples leave the map).
    for k in sd:
        if 'conv_offset_mask.weight' in k:
            sd[k] = sd[k] * 0.5
    return sd


# ---------------------------------------------------------------------------
# Transcription of the authors' forward (eval mode).
# ---------------------------------------------------------------------------
def ref_dcn(x, offset, mask, weight, bias):
    """DCNv2, 3x3, stride 1, padding 1, one deformable group: for each
    kernel point, bilinear reads gathered at the four corners, each corner
    counted only inside the map, nothing read when the point lies at or
    beyond one pixel outside."""
    B, C, H, W = x.shape
    flat = x.reshape(B, C, H * W)
    ys = torch.arange(H, dtype=x.dtype).view(H, 1)
    xs = torch.arange(W, dtype=x.dtype).view(1, W)
    cols = []
    for k in range(9):
        i, j = divmod(k, 3)
        py = ys - 1 + i + offset[:, 2 * k]  # (B, H, W)
        px = xs - 1 + j + offset[:, 2 * k + 1]
        inside = (py > -1) & (py < H) & (px > -1) & (px < W)
        y0, x0 = torch.floor(py), torch.floor(px)
        val = torch.zeros(B, C, H, W, dtype=x.dtype)
        for cy, cx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
            wgt = (1 - (py - cy).abs()) * (1 - (px - cx).abs())
            ok = inside & (cy >= 0) & (cy < H) & (cx >= 0) & (cx < W)
            idx = (cy.clamp(0, H - 1) * W + cx.clamp(0, W - 1)).long()
            g = torch.gather(flat, 2, idx.view(B, 1, H * W).expand(B, C, -1))
            val = val + (wgt * ok).unsqueeze(1) * g.view(B, C, H, W)
        cols.append(val * mask[:, k:k + 1])
    cols = torch.stack(cols, dim=2)  # (B, C, 9, H, W)
    out = torch.einsum('ock,bckhw->bohw', weight.reshape(weight.shape[0], C,
                                                           9), cols)
    return out + bias.view(1, -1, 1, 1)


def _bn_eval(x, sd, p):
    return F.batch_norm(x, sd[f'{p}.running_mean'], sd[f'{p}.running_var'],
                        sd[f'{p}.weight'], sd[f'{p}.bias'], False, 0.0, 1e-5)


def deform_conv(x, sd, p):
    """DeformConv: DCN (offsets from conv_offset_mask: chunks o1, o2, mask;
    offset = cat(o1, o2), mask = sigmoid) -> BN -> ReLU."""
    om = F.conv2d(x, sd[f'{p}.conv.conv_offset_mask.weight'],
                  sd[f'{p}.conv.conv_offset_mask.bias'], padding=1)
    o1, o2, m = torch.chunk(om, 3, dim=1)
    y = ref_dcn(x, torch.cat((o1, o2), dim=1), torch.sigmoid(m),
                sd[f'{p}.conv.weight'], sd[f'{p}.conv.bias'])
    return F.relu(_bn_eval(y, sd, f'{p}.actf.0'))


def ida_up(sd, prefix, layers, startp, endp):
    for i in range(startp + 1, endp):
        k = i - startp
        w = sd[f'{prefix}.up_{k}.weight']
        f = w.shape[-1] // 2
        x = deform_conv(layers[i], sd, f'{prefix}.proj_{k}')
        x = F.conv_transpose2d(x, w, stride=f, padding=f // 2,
                               groups=x.shape[1])
        layers[i] = deform_conv(x + layers[i - 1], sd, f'{prefix}.node_{k}')


def authors_forward(x, sd):
    base = {k[5:]: v for k, v in sd.items() if k.startswith('base.')}
    layers = reference_dla34(x, base)
    n = len(layers)
    out = [layers[-1]]
    for i in range(n - FIRST - 1):
        ida_up(sd, f'dla_up.ida_{i}', layers, n - i - 2, n)
        out.insert(0, layers[-1])
    y = [out[i].clone() for i in range(LAST - FIRST)]
    ida_up(sd, 'ida_up', y, 0, len(y))
    return {
        h: F.conv2d(F.relu(F.conv2d(y[-1], sd[f'{h}.0.weight'],
                                    sd[f'{h}.0.bias'], padding=1)),
                    sd[f'{h}.2.weight'], sd[f'{h}.2.bias'])
        for h in HEADS
    }


# ---------------------------------------------------------------------------
# Transcription of the authors' multi_pose_decode (no flip).
# ---------------------------------------------------------------------------
def _nms(h):
    return h * (F.max_pool2d(h, 3, stride=1, padding=1) == h).float()


def _gather(feat, inds):
    B, C = feat.shape[:2]
    feat = feat.view(B, C, -1).permute(0, 2, 1)
    return feat.gather(1, inds.unsqueeze(2).expand(-1, -1, C))


def multi_pose_decode(heat, wh, kps, reg, hm_hp, hp_offset, K=100):
    B, _, H, W = heat.shape
    J = kps.shape[1] // 2
    heat = _nms(heat)
    scores, inds = heat.view(B, -1).topk(K)
    ys, xs = (inds // W).float(), (inds % W).float()
    kps = _gather(kps, inds).view(B, K, J * 2)
    kps[..., ::2] += xs.view(B, K, 1)
    kps[..., 1::2] += ys.view(B, K, 1)
    reg = _gather(reg, inds).view(B, K, 2)
    xs = xs.view(B, K, 1) + reg[:, :, 0:1]
    ys = ys.view(B, K, 1) + reg[:, :, 1:2]
    wh = _gather(wh, inds).view(B, K, 2)
    bboxes = torch.cat([xs - wh[..., 0:1] / 2, ys - wh[..., 1:2] / 2,
                        xs + wh[..., 0:1] / 2, ys + wh[..., 1:2] / 2], dim=2)
    hm_hp = _nms(hm_hp)
    thresh = 0.1
    kps = kps.view(B, K, J, 2).permute(0, 2, 1, 3).contiguous()
    reg_kps = kps.unsqueeze(3).expand(B, J, K, K, 2)
    hm_score, hm_inds = hm_hp.view(B, J, -1).topk(K)
    hm_ys, hm_xs = (hm_inds // W).float(), (hm_inds % W).float()
    off = _gather(hp_offset, hm_inds.view(B, -1)).view(B, J, K, 2)
    hm_xs = hm_xs + off[..., 0]
    hm_ys = hm_ys + off[..., 1]
    mask = (hm_score > thresh).float()
    hm_score = (1 - mask) * -1 + mask * hm_score
    hm_ys = (1 - mask) * (-10000) + mask * hm_ys
    hm_xs = (1 - mask) * (-10000) + mask * hm_xs
    hm_kps = torch.stack([hm_xs, hm_ys], -1).unsqueeze(2).expand(B, J, K, K, 2)
    dist = ((reg_kps - hm_kps)**2).sum(dim=4)**0.5
    min_dist, min_ind = dist.min(dim=3)
    hm_score = hm_score.gather(2, min_ind).unsqueeze(-1)
    min_dist = min_dist.unsqueeze(-1)
    min_ind = min_ind.view(B, J, K, 1, 1).expand(B, J, K, 1, 2)
    hm_kps = hm_kps.gather(3, min_ind).view(B, J, K, 2)
    l, t, r, b = (bboxes[:, :, i].view(B, 1, K, 1).expand(B, J, K, 1)
                  for i in range(4))
    mask = ((hm_kps[..., 0:1] < l) + (hm_kps[..., 0:1] > r) +
            (hm_kps[..., 1:2] < t) + (hm_kps[..., 1:2] > b) +
            (hm_score < thresh) +
            (min_dist > (torch.max(b - t, r - l) * 0.3)))
    mask = (mask > 0).float().expand(B, J, K, 2)
    snapped = (1 - mask[..., 0]).sum()
    kps = (1 - mask) * hm_kps + mask * kps
    kps = kps.permute(0, 2, 1, 3).contiguous().view(B, K, J, 2)
    return bboxes, scores, kps, int(snapped)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def converted_model():
    from mmkp_ext.analysis import build_model_from_config
    sd = authors_state_dict()
    # DataParallel prefix on the file, as the authors' training saves it.
    wrapped = {f'module.{k}': v for k, v in sd.items()}
    converted = convert_centernet_state_dict(wrapped)
    model, _ = build_model_from_config(CONFIG)
    model.load_state_dict(converted, strict=True)
    return sd, model.eval()


def test_every_key_mapped_and_six_outputs_equal(converted_model):
    sd, model = converted_model
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = authors_forward(x, sd)
        got = model.head.forward(model.neck(model.backbone(x)))
    for h, name in AUTHOR_HEADS.items():
        assert got[name].shape == want[h].shape
        torch.testing.assert_close(got[name], want[h], atol=1e-5, rtol=1e-4,
                                   msg=f'{h} -> {name}')


def test_nearest_decoding_equals_multi_pose_decode(converted_model):
    sd, model = converted_model
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = authors_forward(x, sd)
    bboxes, scores, kps, snapped = multi_pose_decode(
        out['hm'].sigmoid(), out['wh'], out['hps'].clone(), out['reg'],
        out['hm_hp'].sigmoid(), out['hp_offset'])
    codec = GroupedCenterNetLabel(
        input_size=(64, 64), heatmap_size=(16, 16), num_keypoints=17,
        category_keypoints='coco', decode_mode='nearest', topk=100)
    res = codec.batch_decode(**{AUTHOR_HEADS[h]: v for h, v in out.items()})
    n = int((scores[0] > 0).sum())  # the centre peaks; the rest tie at 0
    assert n > 5 and snapped > 0
    stride = 4.0
    torch.testing.assert_close(res['bbox_scores'][0, :n], scores[0, :n])
    torch.testing.assert_close(res['bboxes'][0, :n] / stride, bboxes[0, :n],
                               atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(res['keypoints'][0, :n] / stride, kps[0, :n],
                               atol=1e-4, rtol=1e-5)


def test_bad_checkpoints_name_their_keys(tmp_path):
    sd = authors_state_dict()
    with pytest.raises(KeyError, match="wh.2.weight"):
        convert_centernet_state_dict(
            {k: v for k, v in sd.items() if not k.startswith('wh.')})
    with pytest.raises(KeyError, match='no counterpart.*cls_head'):
        convert_centernet_state_dict(dict(sd, **{'cls_head.weight':
                                                 torch.zeros(1)}))
    with pytest.raises(KeyError, match='not DLA-34'):
        convert_centernet_state_dict(
            {k: v for k, v in sd.items() if 'level5' not in k})
    with pytest.raises(TypeError, match='mapping'):
        convert_centernet_state_dict([1, 2])


def test_file_and_tool_round_trip(tmp_path):
    sd = authors_state_dict()
    src = str(tmp_path / 'multi_pose_dla_3x.pth')
    torch.save({'epoch': 320, 'state_dict': sd}, src)
    dst = str(tmp_path / 'out.pth')
    info = convert_centernet_checkpoint(src, dst, config=CONFIG)
    assert info == dict(converted=len(torch.load(dst)['state_dict']),
                        epoch=320)
    # a checkpoint whose heads do not fit the config is refused, nothing
    # written
    bad = dict(sd)
    bad['hm.2.weight'] = torch.zeros(80, 256, 1, 1)  # an 80-class ctdet head
    bad['hm.2.bias'] = torch.zeros(80)
    torch.save({'state_dict': bad}, src)
    with pytest.raises(ValueError, match='center_heatmap.2.weight'):
        convert_centernet_checkpoint(src, str(tmp_path / 'no.pth'),
                                     config=CONFIG)
    assert not osp.exists(tmp_path / 'no.pth')
    proc = run_python(['tools/model_converters/convert_centernet_checkpoint.py', src,
                       str(tmp_path / 'no.pth')], check=False)
    assert proc.returncode != 0 and 'does not fit' in proc.stdout

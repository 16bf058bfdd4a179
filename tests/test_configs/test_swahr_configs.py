"""Every SWAHR / HigherHRNet config builds (without downloading weights);
its head, training codec and pipelines agree (heatmap sizes = input / 4 and
/ 2, the head's outputs have exactly those sizes, the ignore mask comes
before the targets, square inputs); the SWAHR configs differ from their
plain counterparts only in the scale branches, the loss and the keypoint
threshold; the official schedule (warm-up, then linear decay to 0) is what
the COCO configs' schedulers produce. The W32 config's own train pipeline
runs on a real COCO image."""
import glob
import os.path as osp
import warnings

import numpy as np
import pytest
import torch
from _helpers import REPO_ROOT, shared_data_dir
from mmengine.config import Config
from mmengine.registry import DefaultScope

import mmkp_ext  # noqa: F401
from mmpose.registry import KEYPOINT_CODECS, MODELS

CFG_DIR = osp.join(REPO_ROOT, 'configs/swahr')
CONFIGS = sorted(glob.glob(osp.join(CFG_DIR, '*/*.py')))
W32 = osp.join(CFG_DIR, 'coco/higherhrnet_hrnet-w32_8xb20-300e_coco-512x512.py')
W32_SWAHR = osp.join(CFG_DIR,
                     'coco/swahr_hrnet-w32_8xb20-300e_coco-512x512.py')
TOY = osp.join(CFG_DIR, 'toy_persons/'
               'higherhrnet_hrnet-w16-tiny_1xb16-12e_toy-persons-128x128.py')
TOY_SWAHR = osp.join(CFG_DIR, 'toy_persons/'
                     'swahr_hrnet-w16-tiny_1xb16-12e_toy-persons-128x128.py')
TOY64 = osp.join(CFG_DIR, 'toy_persons/'
                 'higherhrnet_hrnet-w16-tiny_1xb16-36e_toy-persons-64x64.py')
TOY64_SWAHR = osp.join(CFG_DIR, 'toy_persons/'
                       'swahr_hrnet-w16-tiny_1xb16-36e_toy-persons-64x64.py')


def _load(path):
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None  # never download in tests
    return cfg


def _types(pipeline):
    return [t['type'] for t in pipeline]


def test_configs_found():
    names = {osp.relpath(c, CFG_DIR) for c in CONFIGS}
    assert names == {
        'coco/higherhrnet_hrnet-w32_8xb20-300e_coco-512x512.py',
        'coco/swahr_hrnet-w32_8xb20-300e_coco-512x512.py',
        'coco/swahr_hrnet-w48_8xb10-300e_coco-640x640.py',
        'crowdpose/swahr_hrnet-w48_8xb10-300e_crowdpose-640x640.py',
        'toy_persons/higherhrnet_hrnet-w16-tiny_1xb16-12e_toy-persons-'
        '128x128.py',
        'toy_persons/swahr_hrnet-w16-tiny_1xb16-12e_toy-persons-128x128.py',
        'toy_persons/higherhrnet_hrnet-w16-tiny_1xb16-36e_toy-persons-'
        '64x64.py',
        'toy_persons/swahr_hrnet-w16-tiny_1xb16-36e_toy-persons-64x64.py',
    }


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_and_agrees(path):
    cfg = _load(path)
    assert cfg.custom_imports == dict(
        imports=['mmkp_ext'], allow_failed_imports=False)
    train = cfg.train_dataloader.dataset.pipeline
    types = _types(train)
    assert types == [
        'LoadImage', 'BottomupRandomAffine', 'RandomFlip',
        'BottomupIgnoreMask', 'GenerateTarget', 'PackPoseInputs'
    ]
    affine = train[1]
    w, h = affine['input_size']
    assert w == h  # mmpose's RandomFlip is right only for square inputs
    assert affine['rotate_factor'] == 30
    assert tuple(affine['scale_factor']) == (0.75, 1.5)
    assert _types(cfg.val_dataloader.dataset.pipeline) == [
        'LoadImage', 'BottomupResize', 'PackPoseInputs'
    ]
    resize = cfg.val_dataloader.dataset.pipeline[1]
    assert tuple(resize['input_size']) == (w, h)
    assert resize['resize_mode'] == 'fit'  # input stays (w, h)
    assert cfg.val_evaluator.type == 'GuardedCocoMetric'
    assert cfg.val_evaluator.nms_mode == 'none'
    with DefaultScope.overwrite_default_scope('mmpose'), \
            warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = MODELS.build(cfg.model)
        codec = KEYPOINT_CODECS.build(train[4]['encoder'])
    head = model.head
    assert type(head).__name__ == 'HigherHRNetHead'
    assert type(codec).__name__ == 'MultiResolutionAELabel'
    assert tuple(codec.input_size) == (w, h)
    assert codec.heatmap_sizes == [(w // 4, h // 4), (w // 2, h // 2)]
    assert codec.sigmas == [2.0, 2.0]
    # the head decodes with the same codec, at the input size
    dec = head.decoder
    assert type(dec).__name__ == 'MultiResolutionAELabel'
    assert dec.heatmap_sizes == codec.heatmap_sizes
    assert tuple(dec.heatmap_size) == (w, h)
    K = head.num_keypoints
    assert sorted(dec.decode_keypoint_order) == list(range(K))
    # outputs of a small forward sit at 1/4 and 1/2 of its input, like the
    # codec's heatmaps of the real input
    model.eval()
    with torch.no_grad():
        out = head.forward(model.backbone(torch.zeros(1, 3, 64, 64)))
    sizes = [tuple(t.shape[-2:][::-1]) for t in out['heatmaps']]
    assert sizes == [(16, 16), (32, 32)]
    assert out['tags'].shape[1] == K
    assert all(t.shape[1] == K for t in out['heatmaps'])
    if 'swahr_' in osp.basename(path):
        assert head.with_scale_branch
        assert head.heatmap_losses[0].scale_adaptive
        assert head.heatmap_losses[0].weight_adaptive
        assert head.heatmap_losses[0].gamma == 0.01
        # the scale branches start at zero (plain regression at first)
        assert all(out_s.abs().max() == 0 for out_s in out['scales'])
    else:
        assert not head.with_scale_branch
        assert not head.heatmap_losses[0].scale_adaptive
        assert not head.heatmap_losses[0].weight_adaptive


def _flat(d, prefix=''):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f'{prefix}{k}.'))
        else:
            out[f'{prefix}{k}'] = v
    return out


@pytest.mark.parametrize('plain, swahr', [(W32, W32_SWAHR),
                                          (TOY, TOY_SWAHR),
                                          (TOY64, TOY64_SWAHR)],
                         ids=['coco-w32', 'toy', 'toy64'])
def test_swahr_differs_from_plain_only_in_head(plain, swahr):
    a, b = (_flat(Config.fromfile(p).to_dict()) for p in (plain, swahr))
    diff = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    allowed = {
        'model.head.with_scale_branch',
        'model.head.heatmap_loss.scale_adaptive',
        'model.head.heatmap_loss.weight_adaptive',
        'model.head.heatmap_loss.gamma',
        'model.head.heatmap_loss.scale_loss_weight',
        'model.head.decoder.decode_keypoint_thr',
    }
    assert diff <= allowed, diff - allowed
    assert 'model.head.with_scale_branch' in diff


def test_coco_schedule_is_warmup_then_linear_decay_to_zero():
    """Learning rate the W32 configs' schedulers give: 3 warm-up epochs from
    10 % to the base lr, then a straight line to 0 at epoch 300 (the
    authors' schedule: their warm-up starts at 0.1 x lr), checked at a few
    iterations through mmengine's schedulers with 2 iterations per epoch."""
    from mmengine.registry import PARAM_SCHEDULERS
    cfg = Config.fromfile(W32)
    assert cfg.optim_wrapper.optimizer.type == 'Adam'
    base = cfg.optim_wrapper.optimizer.lr
    assert base == pytest.approx(0.00025 * 8)
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=base)
    iters = 2
    scheds = []
    for s in cfg.param_scheduler:
        s = dict(s)
        s.pop('convert_to_iter_based')
        s.update(by_epoch=False, begin=s['begin'] * iters,
                 end=s['end'] * iters)
        scheds.append(PARAM_SCHEDULERS.build(dict(s, optimizer=opt)))
    lrs = []
    total = 300 * iters
    for _ in range(total):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        for s in scheds:
            s.step()
    lrs = np.array(lrs)
    assert lrs[0] == pytest.approx(base * 0.1)
    warm = 3 * iters
    assert lrs[warm] == pytest.approx(base, rel=1e-6)  # end of warm-up
    assert lrs.max() == pytest.approx(base, rel=1e-6)
    assert np.all(np.diff(lrs[:warm]) > 0)
    # then a straight line that reaches 0 at the last iteration
    line = base * (total - 1 - np.arange(warm, total)) / (total - 1 - warm)
    np.testing.assert_allclose(lrs[warm:], line, rtol=1e-6, atol=1e-12)


@pytest.mark.skipif(
    not osp.isfile(osp.join(shared_data_dir(), 'coco', 'test_coco.json')),
    reason='real COCO fixture not found')
def test_w32_train_pipeline_on_real_coco():
    """The W32 config's own dataset + train pipeline on the real COCO
    fixture: packed targets at 128 and 256, masks, AE indices < 128^2."""
    from mmpose.registry import DATASETS
    cfg = _load(W32)
    coco = osp.join(shared_data_dir(), 'coco')
    ds_cfg = cfg.train_dataloader.dataset
    ds_cfg.update(
        data_root='',
        ann_file=osp.join(coco, 'test_coco.json'),
        data_prefix=dict(img=coco))
    with DefaultScope.overwrite_default_scope('mmpose'), \
            warnings.catch_warnings():
        warnings.simplefilter('ignore')
        ds = DATASETS.build(ds_cfg)
        np.random.seed(0)
        packed = ds[1]  # 2 people with keypoints, 1 without
    sample = packed['data_samples']
    assert tuple(packed['inputs'].shape) == (3, 512, 512)
    fields = sample.gt_fields
    assert [tuple(t.shape) for t in fields.heatmaps] == [(17, 128, 128),
                                                         (17, 256, 256)]
    assert [tuple(t.shape) for t in fields.heatmap_mask] == [(128, 128),
                                                             (256, 256)]
    idx = sample.gt_instance_labels.keypoint_indices
    assert idx.shape[1:] == (17, 2)
    valid = idx[..., 1] > 0
    assert valid.any() and (idx[..., 0][valid] < 128 * 128).all()
    # every valid index is a peak (value 1) of its channel at 1/4
    n, k = torch.nonzero(valid, as_tuple=True)
    flat = fields.heatmaps[0].flatten(1)
    torch.testing.assert_close(flat[k, idx[n, k, 0]],
                               torch.ones(len(k)), rtol=0, atol=1e-6)

"""Every model family of ours trains and predicts under CPU autocast.

For each family, the toy config's own model, train and val pipelines run on
a 4-image generated toy-persons set: under ``torch.autocast('cpu', dtype)``
(bfloat16, and float16, which CPU autocast supports since torch 2.x) the
loss is computed, ``backward`` gives finite gradients, and ``val_step``
gives finite float keypoints and scores. A forward hook checks that the
backbone really ran in the low precision (so the test cannot pass in
float32). Before the bfloat16 fix, HRNet++ heatmap, soft-gated and
HigherHRNet/SWAHR failed here with ``TypeError: Got unsupported ScalarType
BFloat16`` in mmpose's ``to_numpy``.

Grouped CenterNet (toy fashion data) is covered by
``tests/test_models/test_heads/test_centernet_head_autocast.py``: loss and
predict under both dtypes, flip test, both decode and flip modes.
"""
import random
import warnings

import numpy as np
import pytest
import torch
from _helpers import REPO_ROOT
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope

import mmkp_ext  # noqa: F401
from mmkp_ext.datasets import make_toy_dataset
from mmpose.registry import DATASETS, MODELS

TOY = REPO_ROOT + '/configs/{}/toy_persons/{}.py'
#: Keep every decoded candidate: at initialisation no heatmap peak passes
#: the configs' bottom-up keypoint threshold, and an empty result would
#: leave the decoding path untested.
KEEP_ALL = {'model.head.decoder.decode_keypoint_thr': -1.0}
#: family -> (config, trainable, config overrides): every model family of
#: ours on toy persons (grouped CenterNet: see the module docstring).
FAMILIES = {
    'higherhrnet': (TOY.format(
        'swahr', 'higherhrnet_hrnet-w16-tiny_1xb16-36e_toy-persons-64x64'),
                    True, KEEP_ALL),
    'swahr': (TOY.format('swahr',
                         'swahr_hrnet-w16-tiny_1xb16-36e_toy-persons-64x64'),
              True, KEEP_ALL),
    # HRNet++: SE / avg-pool / cross-skip backbone + sub-pixel fusion neck,
    # with mmpose's HeatmapHead ...
    'hrnetpp_heatmap_subpixel':
    (TOY.format('hrnetpp',
                'td-hm_hrnetpp-w16-tiny_1xb16-20e_toy-persons-128x96'), True,
     {}),
    # ... and with our soft-argmax head.
    'hrnetpp_soft_argmax':
    (TOY.format('hrnetpp',
                'td-sa_hrnetpp-w16-tiny_1xb16-6e_toy-persons-128x96'), True,
     {}),
    'soft_gated': (TOY.format(
        'soft_gated', 'td-hm_softgated-hg2-c64_1xb16-10e_toy-persons-64x48'),
                   True, {}),
    'poseur': (TOY.format('poseur',
                          'poseur_res18-tiny_1xb16-40e_toy-persons-128x96'),
               True, {}),
    # TopdownTTAPoseEstimator: trains exactly as hrnetpp_soft_argmax, so
    # only its (scale / rotation) test-time prediction is run.
    'tta': (TOY.format(
        'hrnetpp', 'td-sa-tta_hrnetpp-w16-tiny_1xb16-6e_toy-persons-128x96'),
            False, {}),
    # EnsemblePoseEstimator (heatmap + soft-argmax members; TTA as above):
    # test-only model.
    'ensemble': (TOY.format(
        'hrnetpp', 'td-ensemble-hm-sa_hrnetpp-w16-tiny_toy-persons-128x96'),
                 False, {}),
}
DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    out = tmp_path_factory.mktemp('toy_autocast')
    make_toy_dataset('persons', str(out), num_images=4, val_fraction=0.5,
                     image_size=128)
    return str(out) + '/'


def _dataset(cfg, loader, split, root):
    ds = cfg[loader].dataset.copy()
    ds.update(data_root=root, ann_file=f'annotations/{split}.json',
              data_prefix=dict(img=f'images/{split}/'),
              test_mode=split == 'val')
    ds.pop('bbox_file', None)
    return DATASETS.build(ds)


def _low_precision_outputs(module, seen):
    """Forward hook recording the dtypes of ``module``'s tensor outputs."""

    def hook(mod, args, out):
        outs = out if isinstance(out, (list, tuple)) else [out]
        for o in outs:
            for t in (o if isinstance(o, (list, tuple)) else [o]):
                if isinstance(t, torch.Tensor):
                    seen.add(t.dtype)

    return module.register_forward_hook(hook)


def _backbones(model):
    if hasattr(model, 'members'):
        return [m.backbone for m in model.members]
    return [model.backbone]


@pytest.mark.parametrize('dtype', list(DTYPES))
@pytest.mark.parametrize('family', list(FAMILIES))
def test_trains_and_predicts_under_cpu_autocast(family, dtype, toy,
                                                monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # configs name metainfo files relatively
    path, trainable, overrides = FAMILIES[family]
    low = DTYPES[dtype]
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(overrides)
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    with DefaultScope.overwrite_default_scope('mmpose'), \
            warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = MODELS.build(cfg.model)
        model.init_weights()
        val = _dataset(cfg, 'val_dataloader', 'val', toy)
        val_batch = pseudo_collate([val[0], val[1]])
        train_batch = None
        if trainable:
            train = _dataset(cfg, 'train_dataloader', 'train', toy)
            train_batch = pseudo_collate([train[0], train[1]])

    seen = set()
    handles = [_low_precision_outputs(b, seen) for b in _backbones(model)]

    if trainable:
        model.train()
        with torch.autocast('cpu', dtype=low):
            data = model.data_preprocessor(train_batch, training=True)
            losses = model(**data, mode='loss')
        loss_terms = {k: v for k, v in losses.items() if 'loss' in k}
        assert loss_terms, losses
        for name, value in losses.items():
            assert torch.isfinite(value).all(), (name, value)
        sum(v.float().sum() for v in loss_terms.values()).backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads, 'backward reached no parameter'
        assert all(torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
        assert low in seen, f'backbone outputs were {seen}, not {low}'

    seen.clear()
    model.eval()
    with torch.no_grad(), torch.autocast('cpu', dtype=low), \
            warnings.catch_warnings():
        warnings.simplefilter('ignore')
        samples = model.val_step(val_batch)
    for h in handles:
        h.remove()
    assert low in seen, f'backbone outputs were {seen}, not {low}'
    assert len(samples) == 2
    for s in samples:
        kpts = np.asarray(s.pred_instances.keypoints)
        scores = np.asarray(s.pred_instances.keypoint_scores)
        assert kpts.dtype.kind == 'f' and scores.dtype.kind == 'f'
        assert kpts.shape[-2:] == (17, 2) and kpts.shape[0] >= 1
        assert scores.shape == kpts.shape[:-1]
        assert np.isfinite(kpts).all() and np.isfinite(scores).all()


def test_mmpose_to_numpy_accepts_bfloat16_and_is_otherwise_unchanged():
    """The compat fix: bfloat16 tensors (alone, in a list, unzipped) become
    float32 arrays of the same values, in every mmpose module that imported
    ``to_numpy``; other dtypes give what they gave before."""
    from mmpose.codecs import associative_embedding
    from mmpose.models.heads.heatmap_heads import cpm_head, heatmap_head
    from mmpose.utils import tensor_utils
    to_numpy = tensor_utils.to_numpy
    assert heatmap_head.to_numpy is to_numpy
    assert cpm_head.to_numpy is to_numpy
    assert associative_embedding.to_numpy is to_numpy

    x = torch.tensor([[1.5, -2.25], [3.0, 0.125]], dtype=torch.bfloat16)
    a = to_numpy(x)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, [[1.5, -2.25], [3.0, 0.125]])
    lst = to_numpy([x, torch.ones(2)])
    assert [v.dtype for v in lst] == [np.float32, np.float32]
    pairs = to_numpy([x, x.float() * 2], unzip=True)
    assert len(pairs) == 2 and pairs[1][1].tolist() == [[6.0, 0.25]]
    arr, dev = to_numpy(x, return_device=True)
    assert dev == torch.device('cpu')
    # unchanged for dtypes numpy has
    assert to_numpy(torch.ones(2, dtype=torch.float16)).dtype == np.float16
    assert to_numpy(torch.ones(2, dtype=torch.float64)).dtype == np.float64
    assert to_numpy(torch.arange(3)).dtype == np.int64
    with pytest.raises(ValueError, match='Invalid input type'):
        to_numpy('not a tensor')

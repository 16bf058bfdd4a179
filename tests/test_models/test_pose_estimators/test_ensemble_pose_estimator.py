"""EnsemblePoseEstimator: weighted mean of top-down members, checkpoint
loading / merging, composition with flip test and TTA."""
import copy

import numpy as np
import pytest
import torch
from _helpers import randomise_
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint
from mmengine.structures import InstanceData

import mmkp_ext  # noqa: F401
from mmpose.registry import MODELS
from mmpose.structures import PoseDataSample
from mmkp_ext.converters.ensemble_checkpoint import merge_ensemble_checkpoints

W, H, K = 48, 64, 3
PRE = dict(type='PoseDataPreprocessor', mean=[120., 110., 100.],
           std=[60., 55., 50.])
BACKBONE = dict(type='ResNet', depth=18, num_stages=1, strides=(1, ),
                dilations=(1, ), out_indices=(0, ))
TEST_CFG = dict(flip_test=True, shift_heatmap=True)
HEATMAP_MODEL = dict(
    type='TopdownPoseEstimator',
    data_preprocessor=PRE,
    backbone=BACKBONE,
    head=dict(
        type='HeatmapHead', in_channels=64, out_channels=K,
        deconv_out_channels=None,
        decoder=dict(type='MSRAHeatmap', input_size=(W, H),
                     heatmap_size=(W // 4, H // 4), sigma=2.0)),
    test_cfg=TEST_CFG)
# The report's second member: a soft-argmax regression model.
SOFTARGMAX_MODEL = dict(
    HEATMAP_MODEL,
    head=dict(type='SoftArgmaxHead', in_channels=64, num_joints=K,
              decoder=dict(type='RegressionLabel', input_size=(W, H))))


@pytest.fixture(autouse=True)
def mmpose_scope():
    with DefaultScope.overwrite_default_scope('mmpose'):
        yield


def make_samples(n):
    samples = []
    for _ in range(n):
        s = PoseDataSample(
            metainfo=dict(
                input_size=(W, H),
                input_center=np.array([100., 80.], dtype=np.float32),
                input_scale=np.array([96., 128.], dtype=np.float32),
                flip_indices=[0, 2, 1]))
        s.gt_instances = InstanceData(
            bboxes=np.array([[52, 16, 148, 144]], dtype=np.float32),
            bbox_scores=np.ones(1, dtype=np.float32))
        samples.append(s)
    return samples


def build(cfg, seed=None):
    model = MODELS.build(copy.deepcopy(cfg))
    if seed is not None:
        randomise_(model, seed)
    return model.eval()


def predict(model, inputs):
    with torch.no_grad():
        out = model.predict(inputs, make_samples(len(inputs)))
    return (np.stack([d.pred_instances.keypoints for d in out]),
            np.stack([d.pred_instances.keypoint_scores for d in out]))


def ensemble(members, test_cfg=TEST_CFG, models=None):
    ens = build(dict(type='EnsemblePoseEstimator', members=members,
                     test_cfg=test_cfg))
    for member, model in zip(ens.members, models or []):
        member.load_state_dict(model.state_dict())
    return ens


@pytest.fixture(scope='module')
def inputs():
    return torch.randn(2, 3, H, W, generator=torch.Generator().manual_seed(0))


def test_ensemble_of_one_equals_the_model(inputs):
    model = build(HEATMAP_MODEL, seed=1)
    ens = ensemble([dict(model=HEATMAP_MODEL, weight=2.0)], models=[model])
    k_ens, s_ens = predict(ens, inputs)
    k, s = predict(model, inputs)
    np.testing.assert_array_equal(k_ens, k)
    np.testing.assert_array_equal(s_ens, s)


def test_ensemble_of_two_is_the_weighted_mean(inputs):
    hm = build(HEATMAP_MODEL, seed=1)
    sa = build(SOFTARGMAX_MODEL, seed=2)
    ens = ensemble([dict(model=HEATMAP_MODEL, weight=1.0),
                    dict(model=SOFTARGMAX_MODEL, weight=3.0)],
                   models=[hm, sa])
    k_ens, s_ens = predict(ens, inputs)
    (k1, s1), (k2, s2) = predict(hm, inputs), predict(sa, inputs)
    np.testing.assert_allclose(k_ens, (k1 + 3 * k2) / 4, rtol=1e-6)
    np.testing.assert_allclose(s_ens, (s1 + 3 * s2) / 4, rtol=1e-6)
    assert np.abs(k1 - k2).max() > 1.0  # the members really differ


def test_flip_test_override_reaches_every_member(inputs):
    hm = build(dict(HEATMAP_MODEL, test_cfg=dict(flip_test=False)), seed=1)
    sa = build(dict(SOFTARGMAX_MODEL, test_cfg=dict(flip_test=False)),
               seed=2)
    members = [dict(model=HEATMAP_MODEL), dict(model=SOFTARGMAX_MODEL)]
    off = ensemble(members, dict(flip_test=False), [hm, sa])
    (k1, _), (k2, _) = predict(hm, inputs), predict(sa, inputs)
    np.testing.assert_allclose(predict(off, inputs)[0], (k1 + k2) / 2,
                               rtol=1e-6)
    on = ensemble(members, dict(flip_test=True), [hm, sa])
    assert on.member_test_cfg(0)['flip_test'] is True
    assert np.abs(predict(on, inputs)[0] - (k1 + k2) / 2).max() > 1e-3


def test_ensemble_with_tta_is_the_mean_of_the_members_tta(inputs):
    """TTA around the ensemble == weighted mean of each member's own TTA
    (every step is linear in the coordinates); identity-only TTA == no
    TTA, exactly."""
    hm = build(HEATMAP_MODEL, seed=1)
    sa = build(SOFTARGMAX_MODEL, seed=2)
    members = [dict(model=HEATMAP_MODEL, weight=1.0),
               dict(model=SOFTARGMAX_MODEL, weight=3.0)]
    tta_cfg = dict(TEST_CFG, tta=dict())
    ens_tta = ensemble(members, tta_cfg, [hm, sa])
    k_ens, s_ens = predict(ens_tta, inputs)
    per_member = []
    for m in (hm, sa):
        tta_model = build(dict(
            HEATMAP_MODEL if m is hm else SOFTARGMAX_MODEL,
            type='TopdownTTAPoseEstimator', test_cfg=tta_cfg))
        tta_model.load_state_dict(m.state_dict())
        per_member.append(predict(tta_model, inputs))
    (k1, s1), (k2, s2) = per_member
    np.testing.assert_allclose(k_ens, (k1 + 3 * k2) / 4, atol=1e-3)
    np.testing.assert_allclose(s_ens, (s1 + 3 * s2) / 4, rtol=1e-5)

    ident = ensemble(members, dict(TEST_CFG, tta=dict(scales=[1.0],
                                                      rotations=[])),
                     [hm, sa])
    plain = ensemble(members, TEST_CFG, [hm, sa])
    for a, b in zip(predict(ident, inputs), predict(plain, inputs)):
        np.testing.assert_array_equal(a, b)


def _write_member(tmp_path, name, model_cfg, seed):
    """A member config file and a checkpoint of randomised weights."""
    cfg_path = tmp_path / f'{name}.py'
    Config(dict(model=model_cfg)).dump(str(cfg_path))
    model = build(model_cfg, seed=seed)
    ckpt = tmp_path / f'{name}.pth'
    torch.save(dict(meta=dict(dataset_meta=dict(dataset_name=name)),
                    state_dict=model.state_dict()), ckpt)
    return str(cfg_path), str(ckpt), model


def test_member_checkpoints_load_and_merge_into_one(tmp_path, inputs):
    hm_cfg, hm_ckpt, hm = _write_member(tmp_path, 'hm', HEATMAP_MODEL, 1)
    sa_cfg, sa_ckpt, sa = _write_member(tmp_path, 'sa', SOFTARGMAX_MODEL, 2)
    members = [dict(config=hm_cfg, checkpoint=hm_ckpt),
               dict(config=sa_cfg, checkpoint=sa_ckpt, weight=3.0)]
    ens = ensemble(members)
    ens.init_weights()  # each member from its own checkpoint
    (k1, _), (k2, _) = predict(hm, inputs), predict(sa, inputs)
    k_ens = predict(ens, inputs)[0]
    np.testing.assert_allclose(k_ens, (k1 + 3 * k2) / 4, rtol=1e-6)

    # One checkpoint for the whole ensemble, as stock test.py loads it.
    ens_cfg = Config(dict(
        default_scope='mmpose',
        model=dict(type='EnsemblePoseEstimator', members=members,
                   test_cfg=TEST_CFG)))
    merged = tmp_path / 'merged.pth'
    merge_ensemble_checkpoints(ens_cfg, str(merged))
    ckpt = _load_checkpoint(str(merged))
    assert ckpt['meta']['dataset_meta'] == dict(dataset_name='hm')
    assert [m['checkpoint'] for m in ckpt['meta']['ensemble_members']] == \
        [hm_ckpt, sa_ckpt]
    fresh = ensemble([dict(config=hm_cfg), dict(config=sa_cfg, weight=3.0)])
    fresh.load_state_dict(ckpt['state_dict'], strict=True)
    np.testing.assert_array_equal(predict(fresh, inputs)[0], k_ens)

    # A checkpoint that does not fit fails naming the member: one key
    # short, or a head of another shape (K + 1 keypoints).
    state = dict(sa.state_dict())
    state.pop('head.final_layer.bias')
    short = tmp_path / 'short.pth'
    torch.save(dict(state_dict=state), short)
    with pytest.raises(ValueError, match=r'members\[1\].*1 missing keys'):
        merge_ensemble_checkpoints(ens_cfg, str(tmp_path / 'bad.pth'),
                                   [hm_ckpt, str(short)])
    _, other_ckpt, _ = _write_member(
        tmp_path, 'other',
        dict(HEATMAP_MODEL, head=dict(HEATMAP_MODEL['head'],
                                      out_channels=K + 1)), 3)
    with pytest.raises(ValueError, match=r'(?s)members\[0\].*size mismatch'):
        merge_ensemble_checkpoints(ens_cfg, str(tmp_path / 'bad.pth'),
                                   [other_ckpt, sa_ckpt])
    assert not (tmp_path / 'bad.pth').exists()


@pytest.mark.parametrize('members, error, match', [
    ([], ValueError, 'non-empty'),
    ([dict(model=HEATMAP_MODEL, weight=0)], ValueError, 'weight'),
    ([dict(model=HEATMAP_MODEL, ckpt='x')], ValueError, 'unknown keys'),
    ([dict(config='/nonexistent.py')], FileNotFoundError, 'does not exist'),
    ([dict(model=HEATMAP_MODEL),
      dict(model=dict(HEATMAP_MODEL, data_preprocessor=dict(
          PRE, mean=[0., 0., 0.])))], ValueError, 'preprocesses'),
    ([dict(model=HEATMAP_MODEL),
      dict(model=dict(SOFTARGMAX_MODEL, head=dict(
          SOFTARGMAX_MODEL['head'],
          decoder=dict(type='RegressionLabel', input_size=(96, 128)))))],
     ValueError, 'input sizes'),
])
def test_bad_member_configs_fail_clearly(members, error, match):
    with pytest.raises(error, match=match):
        MODELS.build(dict(type='EnsemblePoseEstimator', members=members))


def test_training_an_ensemble_is_refused(inputs):
    ens = ensemble([dict(model=HEATMAP_MODEL)])
    with pytest.raises(RuntimeError, match='testing only'):
        ens(inputs, make_samples(2), mode='loss')


def test_coco_w48_ensemble_tta_config_builds():
    """The report's final COCO test config: heatmap + soft-argmax W48
    members, flip + 5-crop TTA; built on the meta device (shapes only, no
    checkpoint needed)."""
    import os.path as osp
    from _helpers import REPO_ROOT
    path = osp.join(REPO_ROOT, 'configs/hrnetpp/coco/'
                    'td-ensemble-hm-sa-tta_hrnetpp-w48_coco-384x288.py')
    cfg = Config.fromfile(path)
    assert cfg.custom_imports['imports'] == ['mmkp_ext']
    tta = cfg.model.test_cfg.tta
    assert (tta.scales, tta.rotations) == ((0.8, 1.0, 1.2), (-10.0, 10.0))
    with torch.device('meta'):
        ens = MODELS.build(cfg.model)
    heads = [type(m.head).__name__ for m in ens.members]
    assert heads == ['HeatmapHead', 'SoftArgmaxHead']
    assert ens.weights == [0.5, 0.5]
    assert all(m.test_cfg['flip_test'] for m in ens.members)
    # Both members decode for the same 384x288 crop (the full-size forward
    # of each member config is in tests/test_configs/test_hrnetpp_configs).
    assert [tuple(m.head.decoder.input_size) for m in ens.members] == \
        [(288, 384)] * 2

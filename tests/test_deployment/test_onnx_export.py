"""ONNX export of one tiny model per family: ONNX Runtime outputs equal
PyTorch's (1e-4) and the keypoints decoded from them by the config's codec
equal those of ``model.predict``.

Random weights give nearly flat maps whose top-k candidates tie to 1e-7, so
a 1e-7 runtime difference could reorder them; the network input is scaled
by 1000 (BatchNorm in eval mode passes the scale on), which spreads the
outputs so that decoding is well conditioned."""
import os.path as osp

import numpy as np
import pytest
import torch
from _helpers import REPO_ROOT, run_python

pytest.importorskip('onnx', reason='onnx is in requirements/tests.txt')
pytest.importorskip('onnxruntime',
                    reason='onnxruntime is in requirements/tests.txt')

import mmkp_ext  # noqa: E402,F401
from mmkp_ext.deployment import (OnnxNetwork, TensorModeWrapper,  # noqa: E402
                                 compare_outputs, decode_outputs, export_onnx,
                                 network_input_shape, prepare_inputs)

CFG = osp.join(REPO_ROOT, 'configs')
FAMILIES = {
    'grouped_centernet': 'centernet_grouping/toy_fashion/'
    'cn-pose-reg7-hm14_dla34-tiny_1xb16-80e_toy-fashion-128x128.py',
    'dcn_centernet': ('centernet_grouping/toy_fashion/'
                      'cn-pose_dla34-tiny_1xb16-80e_toy-fashion-128x128.py',
                      {'model.neck.conv_type': 'dcn'}),
    'poseur': 'poseur/toy_persons/'
    'poseur_res18-tiny_1xb16-40e_toy-persons-128x96.py',
    'swahr': 'swahr/toy_persons/'
    'swahr_hrnet-w16-tiny_1xb16-36e_toy-persons-64x64.py',
    'hrnetpp_subpixel': 'hrnetpp/toy_persons/'
    'td-hm_hrnetpp-w16-tiny_1xb16-20e_toy-persons-128x96.py',
    'soft_gated': 'soft_gated/toy_persons/'
    'td-hm_softgated-hg2-c64_1xb16-10e_toy-persons-64x48.py',
    'soft_argmax': 'soft_argmax/toy_persons/'
    'td-sa_res18-s8_1xb16-4e_toy-persons-64x48.py',
}
INPUT_SCALE = 1000.0


def _model(spec):
    """Model of a config path (relative to configs/) or of a (path,
    cfg_options) pair, random weights."""
    from mmpose.apis import init_model
    rel, options = spec if isinstance(spec, tuple) else (spec, None)
    torch.manual_seed(0)
    model = init_model(osp.join(CFG, rel), None, device='cpu',
                       cfg_options=options)
    if options and 'model.neck.conv_type' in options:
        # the deformable convolutions' offset layers start at zero: give
        # them weights so the export covers real deformation
        for name, p in model.named_parameters():
            if 'conv_offset_mask' in name:
                torch.nn.init.normal_(p, std=0.05)
    return model


def _image():
    rng = np.random.default_rng(0)
    return (rng.random((90, 70, 3)) * 255).astype(np.uint8)


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_export_matches_torch_and_decodes_equal(family, tmp_path):
    model = _model(FAMILIES[family])
    shape = network_input_shape(model.cfg)
    out = str(tmp_path / f'{family}.onnx')
    names = export_onnx(model, out, shape)
    net = OnnxNetwork(out)
    assert net.input_shape == tuple(shape)

    # Raw outputs, batch 2 through the dynamic batch axis.
    x = torch.randn(2, *shape[1:])
    with torch.no_grad():
        ref = TensorModeWrapper(model)(x)
    flat = net.run_flat(x.numpy())
    assert len(flat) == len(names) == len(ref)
    diffs = compare_outputs(list(ref), flat)
    assert max(diffs.values()) < 1e-4, diffs

    # Decoded keypoints: ONNX outputs through the codec == model.predict.
    inputs, samples = prepare_inputs(model, _image())
    inputs = inputs * INPUT_SCALE
    got = decode_outputs(model, net(inputs.numpy()), inputs, samples)
    model.test_cfg = dict(model.test_cfg or {}, flip_test=False)
    inputs2, samples2 = prepare_inputs(model, _image())
    with torch.no_grad():
        want = model.predict(inputs2 * INPUT_SCALE, samples2)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        gk, wk = g.pred_instances.keypoints, w.pred_instances.keypoints
        assert gk.shape == wk.shape and gk.shape[0] > 0
        np.testing.assert_allclose(gk, wk, atol=1e-3)
        np.testing.assert_allclose(g.pred_instances.keypoint_scores,
                                   w.pred_instances.keypoint_scores,
                                   atol=1e-4)


@pytest.mark.parametrize('family', ['soft_argmax', 'poseur'])
def test_dynamo_exporter(family, tmp_path):
    """torch's default (torch.export-based) exporter: Poseur's deformable
    attention takes its level shapes as Python ints (no ``.tolist()`` of a
    tensor), so it exports too."""
    pytest.importorskip('onnxscript',
                        reason='the dynamo exporter needs onnxscript')
    model = _model(FAMILIES[family])
    shape = network_input_shape(model.cfg)
    out = str(tmp_path / f'{family}.onnx')
    export_onnx(model, out, shape, dynamo=True)
    x = torch.randn(*shape)
    with torch.no_grad():
        ref = TensorModeWrapper(model)(x)
    diffs = compare_outputs(list(ref), OnnxNetwork(out).run_flat(x.numpy()))
    assert max(diffs.values()) < 1e-4


def test_soft_argmax_exports_heatmaps_not_coordinates():
    """Its predict scores keypoints from the heatmaps: the exported output
    must be the (B, K, H, W) logits, not the (B, K, 2) coordinates."""
    model = _model(FAMILIES['soft_argmax'])
    shape = network_input_shape(model.cfg)
    with torch.no_grad():
        (out, ) = TensorModeWrapper(model)(torch.randn(*shape))
    assert out.dim() == 4 and out.shape[1] == 17


def test_errors(tmp_path):
    import onnx
    ens = _model('hrnetpp/toy_persons/'
                 'td-ensemble-hm-sa_hrnetpp-w16-tiny_toy-persons-128x96.py')
    with pytest.raises(TypeError, match='export each member'):
        TensorModeWrapper(ens)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        OnnxNetwork(str(tmp_path / 'missing.onnx'))
    plain = str(tmp_path / 'plain.onnx')
    torch.onnx.export(torch.nn.Conv2d(3, 2, 1), (torch.randn(1, 3, 4, 4), ),
                      plain, dynamo=False, input_names=['input'])
    assert onnx.load(plain)
    with pytest.raises(ValueError, match='not written by'):
        OnnxNetwork(plain)
    model = _model(FAMILIES['soft_argmax'])
    out = str(tmp_path / 'sa.onnx')
    export_onnx(model, out, network_input_shape(model.cfg))
    with pytest.raises(ValueError, match='does not match the exported'):
        OnnxNetwork(out).run_flat(np.zeros((1, 3, 8, 8), np.float32))


def test_cli_export_and_inference(tmp_path):
    # CenterNet keeps its top-k candidates: at --score-thr 0 there are
    # instances even with random weights.
    cfg = osp.join(CFG, FAMILIES['grouped_centernet'])
    out = str(tmp_path / 'centernet.onnx')
    help_text = run_python(['tools/deployment/pytorch2onnx.py',
                            '--help']).stdout
    assert 'Examples:' in help_text and '--verify' in help_text
    proc = run_python(['tools/deployment/pytorch2onnx.py', cfg, 'none', out,
                       '--verify'])
    assert 'max |onnx - torch|' in proc.stdout
    import cv2
    img_dir = tmp_path / 'imgs'
    img_dir.mkdir()
    cv2.imwrite(str(img_dir / 'a.png'), _image())
    proc = run_python(['tools/deployment/onnx_inference.py', cfg, out,
                       str(img_dir), '--out-dir', str(tmp_path / 'res'),
                       '--score-thr', '0'])
    import json
    with open(tmp_path / 'res' / 'predictions' / 'a.json') as f:
        data = json.load(f)
    assert data['onnx'] == out and len(data['instances']) > 0
    assert osp.isfile(tmp_path / 'res' / 'vis' / 'a.png')

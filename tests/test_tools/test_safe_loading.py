"""Loading never runs code, and bad checkpoint files get errors naming them.

Every tool that reads a checkpoint, and mmengine's ``load_checkpoint`` after
``import mmkp_ext``, is given (a) a pickle whose unpickling would create a
marker file (``os.system('touch MARKER')``), with torch's weights-only
default switched off (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``, as torch < 2.6
and some mmengine forks behave), and (b) an empty, a truncated, a list and a
tensor "checkpoint". Nothing may create the marker; each must fail with an
error that names the file and the refused global (a) or what was expected
(b). The tools run in this process (``runpy``, as ``python tools/X.py``
would), which keeps the test fast.

Before the change, (a) created the marker in convert_poseur_checkpoint.py,
merge_ensemble_checkpoint.py, sweep_rescore_sigma.py, plot_soft_gates.py
and mmengine's ``load_checkpoint``.
"""
import os
import os.path as osp
import runpy
import sys

import numpy as np
import pytest
import torch
from _helpers import REPO_ROOT

import mmkp_ext  # noqa: F401

ENSEMBLE_CONFIG = osp.join(
    REPO_ROOT, 'configs/hrnetpp/toy_persons/'
    'td-ensemble-hm-sa_hrnetpp-w16-tiny_toy-persons-128x96.py')
CENTERNET_CONFIG = osp.join(
    REPO_ROOT, 'configs/centernet_grouping/toy_fashion/'
    'cn-pose_dla34-tiny_1xb16-80e_toy-fashion-128x128.py')
GROUPING = osp.join(REPO_ROOT, 'configs/centernet_grouping/groupings/'
                    'toy-fashion_index-in-category-14.json')


class _Payload:
    """Unpickling this runs ``os.system('touch MARKER')``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def _write(kind, path, marker):
    if kind == 'unsafe':
        torch.save({'state_dict': {'w': torch.zeros(2)},
                    'meta': _Payload(marker)}, path)
    elif kind == 'empty':
        open(path, 'wb').close()
    elif kind == 'truncated':
        torch.save({'state_dict': {'w': torch.zeros(1000)}}, path)
        data = open(path, 'rb').read()
        open(path, 'wb').write(data[:len(data) // 2])
    elif kind == 'list':
        torch.save([torch.zeros(2)], path)
    elif kind == 'tensor':
        torch.save(torch.zeros(2), path)
    return str(path)


#: What each bad file's error must say (besides the file's path).
EXPECTED = {
    'unsafe': "needs the global 'posix.system'",
    'empty': 'is empty (0 bytes): expected a checkpoint written by '
    'torch.save',
    'truncated': 'is truncated or not a torch.save file',
    'list': 'holds a list, expected a dict',
    'tensor': 'holds a Tensor, expected a dict',
}


TOY_CONFIG = osp.join(
    REPO_ROOT, 'configs/soft_argmax/toy_persons/'
    'td-sa_res18-s8_1xb16-4e_toy-persons-64x48.py')


def _toy_image(tmp):
    import cv2
    path = tmp / 'img.png'
    cv2.imwrite(str(path), np.zeros((32, 24, 3), np.uint8))
    return path


def _run_tool(tool, args, monkeypatch):
    """Run ``python tools/<tool> ARGS`` in this process; return the error
    text (SystemExit message or exception) or fail if it succeeded."""
    monkeypatch.setattr(sys, 'argv', [tool] + [str(a) for a in args])
    try:
        runpy.run_path(osp.join(REPO_ROOT, 'tools', tool),
                       run_name='__main__')
    except SystemExit as e:
        return str(e.code)
    except Exception as e:  # noqa: BLE001 - the message is what we check
        return f'{type(e).__name__}: {e}'
    pytest.fail(f'{tool} accepted a bad checkpoint')


TOOLS = {
    'model_converters/convert_poseur_checkpoint.py':
    lambda ckpt, tmp: [ckpt, tmp / 'out.pth', '--no-check'],
    'model_converters/merge_ensemble_checkpoint.py':
    lambda ckpt, tmp: [ENSEMBLE_CONFIG, tmp / 'out.pth', '--checkpoints',
                       ckpt, ckpt],
    'analysis_tools/sweep_rescore_sigma.py':
    lambda ckpt, tmp: [CENTERNET_CONFIG, ckpt, '--device', 'cpu'],
    'analysis_tools/plot_soft_gates.py':
    lambda ckpt, tmp: [ckpt, '--out', tmp / 'gates.png'],
    'model_converters/convert_higherhrnet_checkpoint.py':
    lambda ckpt, tmp: [ckpt, tmp / 'out.pth'],
    'model_converters/init_grouped_head.py':
    lambda ckpt, tmp: [ckpt, GROUPING, tmp / 'out.pth'],
    'analysis_tools/group_keypoints.py':
    lambda ckpt, tmp: [tmp / 'g.json', '--checkpoint', ckpt, '--layout',
                       'toy_fashion'],
    'model_converters/convert_centernet_checkpoint.py':
    lambda ckpt, tmp: [ckpt, tmp / 'out.pth', '--no-check'],
    'deployment/pytorch2onnx.py':
    lambda ckpt, tmp: [TOY_CONFIG, ckpt, tmp / 'out.onnx'],
    'demo/image_demo.py':
    lambda ckpt, tmp: [TOY_CONFIG, ckpt, _toy_image(tmp), '--out-dir',
                       tmp / 'vis'],
}


@pytest.fixture
def no_weights_only_default(monkeypatch):
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')


def test_the_payload_is_real(tmp_path, no_weights_only_default):
    """Without weights-only loading the payload does create the marker."""
    marker = tmp_path / 'marker'
    path = _write('unsafe', tmp_path / 'evil.pth', marker)
    with pytest.warns(UserWarning, match='TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'):
        torch.load(path)
    assert marker.exists()


@pytest.mark.parametrize('kind', sorted(EXPECTED))
@pytest.mark.parametrize('tool', sorted(TOOLS))
def test_tool_refuses_bad_checkpoint(tool, kind, tmp_path, monkeypatch,
                                     no_weights_only_default):
    marker = tmp_path / 'marker'
    ckpt = _write(kind, tmp_path / f'{kind}.pth', marker)
    message = _run_tool(tool, TOOLS[tool](ckpt, tmp_path), monkeypatch)
    assert not marker.exists(), f'{tool} ran code from the checkpoint'
    assert ckpt in message, message
    assert EXPECTED[kind] in message, message
    assert not (tmp_path / 'out.pth').exists()


@pytest.mark.parametrize('kind', sorted(EXPECTED))
def test_mmengine_load_checkpoint_refuses(kind, tmp_path,
                                          no_weights_only_default):
    """mmengine's loader (stock test.py, ``load_from``, ``--resume``,
    mmpose's ``init_model``) after ``import mmkp_ext``."""
    from mmengine.runner import load_checkpoint
    from mmengine.runner.checkpoint import _load_checkpoint
    marker = tmp_path / 'marker'
    ckpt = _write(kind, tmp_path / f'{kind}.pth', marker)
    for load in (lambda: load_checkpoint(torch.nn.Linear(2, 2), ckpt),
                 lambda: _load_checkpoint(ckpt)):
        with pytest.raises(ValueError) as info:
            load()
        assert not marker.exists()
        assert ckpt in str(info.value)
        assert EXPECTED[kind] in str(info.value)


def test_unsafe_error_names_the_global(tmp_path, no_weights_only_default):
    from mmkp_ext.safe_load import UnsafeCheckpointError, safe_torch_load
    ckpt = _write('unsafe', tmp_path / 'evil.pth', tmp_path / 'marker')
    with pytest.raises(UnsafeCheckpointError) as info:
        safe_torch_load(ckpt)
    assert info.value.refused_global == 'posix.system'
    assert info.value.path == ckpt
    assert not (tmp_path / 'marker').exists()


def test_good_checkpoints_still_load(tmp_path, no_weights_only_default):
    """An mmengine-style checkpoint (numpy meta) loads through every path;
    ``weights_only=False`` cannot be asked for."""
    import numpy as np
    from mmengine.runner.checkpoint import _load_checkpoint

    from mmkp_ext.converters.checkpoint_file import load_checkpoint_file
    from mmkp_ext.safe_load import safe_torch_load
    path = str(tmp_path / 'good.pth')
    torch.save({'state_dict': {'w': torch.arange(3.)},
                'meta': {'sigmas': np.array([0.1, 0.2], np.float32)}}, path)
    ckpt, state = load_checkpoint_file(path)
    assert torch.equal(state['w'], torch.arange(3.))
    np.testing.assert_array_equal(_load_checkpoint(path)['meta']['sigmas'],
                                  np.array([0.1, 0.2], np.float32))
    with pytest.raises(ValueError, match='weights_only=True only'):
        safe_torch_load(path, weights_only=False)


def test_other_broken_files_are_named(tmp_path):
    """Garbage and torch's legacy (non-zip) format, complete and cut: the
    legacy file loads, the others are reported as broken (not as unsafe,
    and not as a bare KeyError / EOFError from torch's reader)."""
    from mmkp_ext.safe_load import (CheckpointFileError,
                                    UnsafeCheckpointError, safe_torch_load)
    legacy = str(tmp_path / 'legacy.pth')
    torch.save({'w': torch.ones(2)}, legacy,
               _use_new_zipfile_serialization=False)
    assert torch.equal(safe_torch_load(legacy)['w'], torch.ones(2))
    data = open(legacy, 'rb').read()
    for name, content in (('garbage.pth', b'hello, not a checkpoint'),
                          ('legacy_cut.pth', data[:len(data) // 2])):
        path = str(tmp_path / name)
        open(path, 'wb').write(content)
        with pytest.raises(CheckpointFileError) as info:
            safe_torch_load(path)
        assert not isinstance(info.value, UnsafeCheckpointError)
        assert f"checkpoint {path!r} is truncated or not a torch.save" in \
            str(info.value)

"""The compatibility layer: each fix is active only where the stack needs it.

The "needed" side is the installed stack itself (mmcv-lite, no torchvision,
torch 2.13); the "not needed" side is simulated in a subprocess by putting a
working stand-in for the dependency in place before ``import mmkp_ext``.
"""
import io
import textwrap

import numpy as np
import pytest
import torch

import mmkp_ext  # noqa: F401
from mmkp_ext import compat

from _helpers import run_python


def _run_snippet(tmp_path, code, pythonpath=None):
    script = tmp_path / 'snippet.py'
    script.write_text(textwrap.dedent(code))
    env = {'PYTHONPATH': str(pythonpath)} if pythonpath else None
    proc = run_python([str(script)], env=env, timeout=300)
    assert 'SNIPPET-OK' in proc.stdout, proc.stdout[-3000:]
    return proc.stdout


# --------------------------------------------------------------- mmcv.ops
@pytest.mark.skipif(compat.mmcv_has_compiled_ops(),
                    reason='full mmcv installed: the mmcv-lite side cannot '
                    'be exercised here (the other side is tested below)')
def test_mmcv_lite_side_models_import_and_ops_fail_clearly():
    from mmpose.models.heads.transformer_heads.transformers import \
        deformable_detr_layers
    from mmpose.registry import MODELS

    # Other mmpose models keep working.
    head = MODELS.build(
        dict(type='HeatmapHead', in_channels=4, out_channels=3,
             deconv_out_channels=None))
    assert head(
        (torch.zeros(1, 4, 8, 6), ))[0].shape == (3, 8, 6)
    # What truly needs compiled ops fails with a message naming mmcv.
    with pytest.raises(compat.MissingCompiledOpsError, match='mmcv'):
        deformable_detr_layers.MultiScaleDeformableAttention(embed_dims=8)
    # The stand-in was temporary: mmcv.ops still does not import elsewhere.
    with pytest.raises(ImportError):
        import mmcv.ops  # noqa: F401


def test_full_mmcv_side_leaves_mmpose_untouched(tmp_path):
    _run_snippet(tmp_path, """
        import sys, types
        import mmcv
        ops = types.ModuleType('mmcv.ops')
        class MultiScaleDeformableAttention:
            pass
        class DeformConv2d:
            pass
        class ModulatedDeformConv2d:
            pass
        ops.MultiScaleDeformableAttention = MultiScaleDeformableAttention
        ops.DeformConv2d = DeformConv2d
        ops.ModulatedDeformConv2d = ModulatedDeformConv2d
        sys.modules['mmcv.ops'] = ops
        mmcv.ops = ops
        import mmkp_ext
        from mmkp_ext import compat
        assert compat.mmcv_has_compiled_ops()
        assert 'mmcv_ops' not in compat._APPLIED
        from mmpose.models.heads.transformer_heads.transformers import \\
            deformable_detr_layers as d
        assert d.MultiScaleDeformableAttention is MultiScaleDeformableAttention
        assert sys.modules['mmcv.ops'] is ops
        print('SNIPPET-OK')
        """)


# ----------------------------------------------------------- torchvision
def test_torchvision_missing_side():
    status = compat.torchvision_status()
    if status == 'ok':
        pytest.skip('a working torchvision is installed')
    from mmengine.utils.dl_utils import collect_env
    from mmpose.visualization import simcc_vis
    with pytest.raises(compat.MissingTorchvisionError, match='torchvision'):
        simcc_vis.ToPILImage()
    assert 'TorchVision' not in collect_env()
    with pytest.raises(ModuleNotFoundError):
        import torchvision  # noqa: F401


def _fake_torchvision(root, init_body):
    pkg = root / 'torchvision'
    (pkg / 'transforms').mkdir(parents=True)
    (pkg / '__init__.py').write_text(init_body)
    (pkg / 'transforms' / '__init__.py').write_text(
        'class ToPILImage:\n    fake = True\n')
    return root


def test_torchvision_working_side_untouched(tmp_path):
    root = _fake_torchvision(tmp_path / 'site', "__version__ = '9.9.fake'\n")
    _run_snippet(tmp_path, """
        import sys
        import mmkp_ext
        from mmkp_ext import compat
        assert compat.torchvision_status() == 'ok'
        assert not any(k.startswith('torchvision') for k in compat._APPLIED)
        from mmpose.visualization import simcc_vis
        assert simcc_vis.ToPILImage.fake is True
        assert sys.modules['torchvision'].__version__ == '9.9.fake'
        print('SNIPPET-OK')
        """, pythonpath=root)


def test_torchvision_broken_side_marked_absent(tmp_path):
    root = _fake_torchvision(
        tmp_path / 'site',
        "raise RuntimeError('operator torchvision::nms does not exist')\n")
    out = _run_snippet(tmp_path, """
        import mmkp_ext
        from mmkp_ext import compat
        st = compat.status()
        assert st['torchvision'] == 'broken', st
        assert 'nms does not exist' in st['torchvision_error']
        assert 'nms does not exist' in compat.report()
        from mmengine.utils.dl_utils import collect_env
        env = collect_env()  # would raise RuntimeError without the fix
        assert 'TorchVision' not in env
        try:
            import torchvision
        except ModuleNotFoundError:
            pass
        else:
            raise AssertionError('broken torchvision imported')
        from mmpose.visualization import simcc_vis
        try:
            simcc_vis.ToPILImage()
        except compat.MissingTorchvisionError as e:
            assert 'torchvision' in str(e)
        else:
            raise AssertionError('placeholder did not raise')
        print('SNIPPET-OK')
        """, pythonpath=root)
    # The original error was logged once, at WARNING, with what to do.
    assert out.count('nms does not exist') == 1
    assert 'Install the torchvision release' in out


# ------------------------------------------------------------ torch.load
def _checkpoint_like():
    from mmengine.logging import HistoryBuffer
    buf = HistoryBuffer()
    buf.update(0.5)
    buf.update(0.25)
    return {
        'state_dict': {'w': torch.arange(6.).reshape(2, 3)},
        'meta': {
            'dataset_meta': {
                'sigmas': np.array([.026, .025], dtype=np.float32),
                'flip_indices': [1, 0],
                'colors': np.array([[255, 0, 0]], dtype=np.uint8),
                'ids': np.arange(3, dtype=np.int64),
                'flag': np.array([True, False]),
            },
            'message_hub': {'log_scalars': {'train/loss': buf}},
            'best': np.float64(0.75),
            'count': np.int64(3),
        },
    }


class _NotAllowed:
    pass


def _save(obj, path):
    torch.save(obj, str(path))
    return str(path)


def test_mmengine_loader_reads_checkpoint_meta(tmp_path):
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import _load_checkpoint
    ckpt = _checkpoint_like()
    loaded = _load_checkpoint(_save(ckpt, tmp_path / 'c.pth'))
    np.testing.assert_array_equal(loaded['meta']['dataset_meta']['sigmas'],
                                  ckpt['meta']['dataset_meta']['sigmas'])
    assert loaded['meta']['dataset_meta']['colors'].dtype == np.uint8
    assert loaded['meta']['best'] == 0.75
    hist = loaded['meta']['message_hub']['log_scalars']['train/loss']
    assert type(hist) is HistoryBuffer  # a real one, not the stand-in
    assert hist.current() == 0.25 and hist.mean() == pytest.approx(0.375)
    assert '_statistics_methods' not in vars(hist)
    torch.testing.assert_close(loaded['state_dict']['w'],
                               ckpt['state_dict']['w'])


def test_plain_torch_load_keeps_refusing_after_import(tmp_path):
    """The allow-list is scoped to mmengine's loader: a user's own
    ``torch.load(weights_only=True)`` is exactly as strict as without
    mmkp_ext."""
    if not compat.torch_load_defaults_to_weights_only():
        pytest.skip('torch < 2.6 loads with weights_only=False by default')
    from mmengine.logging import HistoryBuffer
    buf = HistoryBuffer()
    buf.update(1.0)
    for obj in ({'hist': buf}, {'arr': np.array([1.5], np.float32)},
                {'obj': np.array([{'a': 1}, None], dtype=object)}):
        path = _save(obj, tmp_path / 'x.pth')
        with pytest.raises(Exception, match='Weights only load failed'):
            torch.load(path, weights_only=True)


def test_mmengine_loader_still_rejects_other_objects(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    for obj in ({'meta': _NotAllowed()},
                {'obj': np.array([{'a': 1}, None], dtype=object)}):
        path = _save(obj, tmp_path / 'bad.pth')
        with pytest.raises(Exception, match='Weights only load failed'):
            _load_checkpoint(path)


def test_crafted_checkpoint_cannot_touch_statistics_methods(tmp_path):
    """A HistoryBuffer pickled with its own statistics table (here mapping
    'mean' to max and adding a new entry) rewrites the class-level table
    when unpickled by HistoryBuffer.__setstate__; under mmkp_ext's scoped
    loading the table stays exactly as it was."""
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import _load_checkpoint
    crafted = HistoryBuffer()
    crafted.update(1.0)
    crafted.update(3.0)
    crafted.__dict__['_statistics_methods'] = {
        'mean': HistoryBuffer.max, 'evil': HistoryBuffer.min}
    path = _save({'meta': {'hist': crafted}}, tmp_path / 'crafted.pth')
    before = dict(HistoryBuffer._statistics_methods)
    try:
        # The attack is real: mmengine's own unpickling applies it.
        torch.load(path, weights_only=False)
        assert HistoryBuffer._statistics_methods['mean'] is HistoryBuffer.max
    finally:
        HistoryBuffer._statistics_methods.clear()
        HistoryBuffer._statistics_methods.update(before)
    loaded = _load_checkpoint(path)['meta']['hist']
    assert HistoryBuffer._statistics_methods == before
    assert 'evil' not in HistoryBuffer._statistics_methods
    assert loaded.statistics('mean') == pytest.approx(2.0)
    assert '_statistics_methods' not in vars(loaded)


def test_scoped_loading_active_only_when_needed(monkeypatch):
    import mmengine.runner.checkpoint as ckpt_mod
    from mmengine.runner.checkpoint import CheckpointLoader
    sentinel = classmethod(lambda cls, *a, **k: 'orig')
    monkeypatch.setattr(CheckpointLoader, 'load_checkpoint', sentinel)
    compat.allow_mmengine_checkpoints(False)
    assert CheckpointLoader.__dict__['load_checkpoint'] is sentinel
    seen = []

    def original(cls, filename, map_location=None, logger='current'):
        from torch.serialization import get_safe_globals
        seen.append(get_safe_globals())
        return {'state_dict': {}} if filename == 'f' else ['a list']

    monkeypatch.setattr(CheckpointLoader, 'load_checkpoint',
                        classmethod(original))
    compat.allow_mmengine_checkpoints(True)
    assert CheckpointLoader.load_checkpoint('f') == {'state_dict': {}}
    assert any(g is np.ndarray for g in seen[0])
    from torch.serialization import get_safe_globals
    assert not any(g is np.ndarray for g in get_safe_globals())
    # A file holding no dict is refused, naming it.
    with pytest.raises(ValueError, match="'g' holds a list, expected a dict"):
        CheckpointLoader.load_checkpoint('g')
    # torch.load inside mmengine's checkpoint module is the weights-only
    # loader (always, not only where torch defaults to it).
    assert ckpt_mod.torch.load is compat._weights_only_torch_load
    assert ckpt_mod.torch.Tensor is torch.Tensor
    assert ckpt_mod.load_url._mmkp_ext_weights_only


def test_weights_only_detection(monkeypatch):
    monkeypatch.setattr(torch, '__version__', '2.5.1+cpu')
    assert not compat.torch_load_defaults_to_weights_only()
    monkeypatch.setattr(torch, '__version__', '2.6.0')
    assert compat.torch_load_defaults_to_weights_only()


def test_restricted_getattr_refuses_other_lookups():
    import pickle

    from mmengine.logging import HistoryBuffer
    assert compat._history_buffer_getattr(HistoryBuffer,
                                          'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        compat._history_buffer_getattr(HistoryBuffer, '__init__')
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        compat._history_buffer_getattr(np, 'load')


# --------------------------------------------------- CPU distributed init
def test_cpu_distributed_patch_only_without_accelerators(monkeypatch):
    import mmengine.device as device
    import mmengine.dist.utils as dist_utils
    sentinel = object()
    monkeypatch.setattr(dist_utils, '_init_dist_pytorch', sentinel)
    compat.patch_cpu_distributed(True)
    assert dist_utils._init_dist_pytorch is sentinel

    calls = []

    def original(backend, init_backend='torch', **kwargs):
        calls.append(backend)

    monkeypatch.setattr(dist_utils, '_init_dist_pytorch', original)
    compat.patch_cpu_distributed(False)
    patched = dist_utils._init_dist_pytorch
    assert patched is not original and patched._mmkp_ext_cpu

    seen = {}
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for name in ('is_npu_available', 'is_mlu_available',
                 'is_musa_available'):
        monkeypatch.setattr(device, name, lambda: False)
    monkeypatch.setattr(torch.distributed, 'init_process_group',
                        lambda backend, **kw: seen.update(backend=backend))
    assert not compat.accelerator_available()
    patched('nccl')
    assert seen['backend'] == 'gloo' and calls == []
    with pytest.raises(ValueError, match='init_backend'):
        patched('gloo', init_backend='deepspeed')
    # An NPU / MLU / MUSA machine without CUDA keeps mmengine's own branch.
    for name in ('is_npu_available', 'is_mlu_available',
                 'is_musa_available'):
        monkeypatch.setattr(device, name, lambda: True)
        assert compat.accelerator_available()
        patched('hccl')
        assert calls[-1] == 'hccl'
        monkeypatch.setattr(device, name, lambda: False)
    assert len(calls) == 3


# ----------------------------------------------------- status reporting
def test_status_reports_this_stack():
    st = compat.status()
    assert st['mmcv'] == compat.mmcv_status()[0]
    assert st['torchvision'] == compat.torchvision_status()
    if st['mmcv'] == 'lite':
        assert 'torch_load' in st['fixes'] and 'mmcv_ops' in st['fixes']
        assert 'mmcv-lite' in compat.report()
    proc = run_python(['-m', 'mmkp_ext'])
    assert 'mmcv:' in proc.stdout and 'torchvision:' in proc.stdout


def test_full_mmcv_with_broken_extension_is_reported(tmp_path):
    """An mmcv whose compiled extension exists but fails to load is told
    apart from mmcv-lite, and its original error reaches the user."""
    fake = tmp_path / 'extdir'
    fake.mkdir()
    (fake / '_ext.py').write_text(
        "raise ImportError('undefined symbol: _ZN3c10fake (built for "
        "another torch)')\n")
    out = _run_snippet(tmp_path, f"""
        import mmcv
        mmcv.__path__.append({str(fake)!r})
        import mmkp_ext
        from mmkp_ext import compat
        st = compat.status()
        assert st['mmcv'] == 'broken', st
        assert 'undefined symbol' in st['mmcv_error']
        assert 'FAILS to load' in compat.report()
        import mmpose.models  # still usable, as with mmcv-lite
        print('SNIPPET-OK')
        """)
    assert out.count('built for another torch') >= 1
    assert 'WARNING' in out or 'rebuild mmcv' in out


# ------------------------------------------------ visualiser on numpy 2.4
def _draw_sample():
    from mmengine.structures import InstanceData
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.structures import PoseDataSample
    from mmpose.visualization import PoseLocalVisualizer
    vis = PoseLocalVisualizer(name=f'compat_test_{np.random.randint(1e9)}',
                              radius=3)
    vis.set_dataset_meta(
        parse_pose_metainfo(dict(from_file='configs/_base_/datasets/coco.py')))
    sample = PoseDataSample()
    kpts = np.tile(np.array([[[40., 50.]]]), (1, 17, 1))
    sample.pred_instances = InstanceData(
        keypoints=kpts, keypoint_scores=np.ones((1, 17), np.float32),
        bboxes=np.array([[10., 10., 90., 90.]]))
    img = np.zeros((100, 100, 3), np.uint8)
    vis.add_datasample('x', img, sample, draw_gt=False, show=False)
    return vis.get_image()


def test_visualiser_draws_keypoints():
    drawn = _draw_sample()
    # A filled circle of radius 3 around (40, 50), nothing far away.
    assert drawn[50, 40].any() and not drawn[5, 95].any()


def test_visualiser_patch_only_when_numpy_needs_it(monkeypatch):
    from mmpose.visualization.opencv_backend_visualizer import \
        OpencvBackendVisualizer as V
    sentinel = object()
    monkeypatch.setattr(V, 'draw_circles', sentinel)
    compat.patch_visualizer_radius(False)
    assert V.draw_circles is sentinel

    seen = []

    def original(self, center, radius, *args, **kwargs):
        seen.append(radius)

    monkeypatch.setattr(V, 'draw_circles', original)
    compat.patch_visualizer_radius(True)
    assert V.draw_circles is not original
    V.draw_circles(None, (1, 2), np.array([3]))
    V.draw_circles(None, (1, 2), np.array([3, 4]))  # not 1-element: as is
    assert seen[0] == 3 and not isinstance(seen[0], np.ndarray)
    assert isinstance(seen[1], np.ndarray)


def test_cpu_process_group_closed_at_exit(tmp_path):
    """The exit hook of the CPU distributed fix waits for the peers (a
    monitored barrier, so a dead peer cannot hang it) and destroys the gloo
    group; here with a one-process group."""
    import torch.distributed as dist

    from mmkp_ext.compat import _close_cpu_process_group
    _close_cpu_process_group()  # no group: nothing to do
    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store',
                            rank=0, world_size=1)
    assert dist.is_initialized()
    _close_cpu_process_group()
    assert not dist.is_initialized()

"""Narrow fixes that let mmpose 1.3.2 / mmengine 0.10.7 run on this stack.

Each fix checks whether the installed stack needs it and does nothing
otherwise; :func:`apply_all` runs them once (``import mmkp_ext`` calls it) and
logs every fix that activates at debug level. The checks are separate
functions so tests can simulate both sides.

Fixes:

* **mmcv without compiled ops** (mmcv-lite): mmpose's model package imports
  ``mmcv.ops`` at module top for EDPose (deformable attention), while DEKR and
  PoseWarper import it guarded. While ``mmpose.models`` is imported, a
  temporary ``mmcv.ops`` stands in whose classes raise
  :class:`MissingCompiledOpsError` when they are *used*; afterwards the
  stand-in is removed again, so ``import mmcv.ops`` anywhere else still fails
  as before and no other code is fooled into thinking the ops exist.
* **torchvision missing or broken**: ``mmpose.visualization`` imports
  ``torchvision.transforms.ToPILImage`` at module top (only the SimCC
  visualiser uses it). The same temporary stand-in is used while importing
  it. A torchvision that is installed but raises on import (PyPI wheels
  against a CPU torch build: ``operator torchvision::nms does not exist``) is
  additionally marked as absent (``sys.modules['torchvision'] = None``), so
  code that guards with ``except ModuleNotFoundError`` (mmengine's
  ``collect_env``, run by every Runner) keeps working.
* **torch.load(weights_only=True)** (default since torch 2.6): mmengine
  checkpoints carry numpy arrays and mmengine objects in their meta. The
  exact globals they need are added to torch's safe-globals allow-list;
  safe loading stays on for everything else.
* **recent numpy in mmpose's visualiser**: ``int()`` of a 1-element array
  raises; mmpose's OpenCV visualiser does that for circle radii
  (``test.py --show-dir``). Radii are made scalars first where needed.
* **CPU distributed training**: mmengine's ``_init_dist_pytorch`` calls
  ``torch.cuda.set_device`` unconditionally; where CUDA is unavailable it is
  wrapped to skip that call (and to use ``gloo`` instead of ``nccl``). The
  matching model wrapper lives in :mod:`mmkp_ext.engine`.
"""
import contextlib
import importlib
import logging
import sys
import types
import warnings
from typing import Dict, Iterator, List

logger = logging.getLogger('mmkp_ext.compat')

_APPLIED: Dict[str, bool] = {}

#: mmcv.ops names that mmpose imports at module level.
MMCV_OPS_USED_BY_MMPOSE = ('MultiScaleDeformableAttention', 'DeformConv2d',
                           'ModulatedDeformConv2d')


class MissingCompiledOpsError(RuntimeError):
    """Raised when a component needs mmcv's compiled ops but only mmcv-lite
    (or an mmcv built without ops) is installed."""


class MissingTorchvisionError(RuntimeError):
    """Raised when a component needs torchvision but it cannot be imported."""


def _log_once(key: str, msg: str) -> None:
    if not _APPLIED.get(key):
        _APPLIED[key] = True
        logger.debug(msg)


def _missing_class(module: str, name: str, error: type, hint: str) -> type:
    """A class that fails with a clear message as soon as it is used."""

    def _fail(*args, **kwargs):
        raise error(f'{module}.{name} cannot be used: {hint}')

    return type(name, (), {
        '__init__': _fail,
        '__init_subclass__': classmethod(lambda cls, **kw: None),
        '__module__': module,
        '__doc__': f'Unavailable {module}.{name}: {hint}',
    })


def _make_placeholder_module(name: str, attrs: List[str], error: type,
                             hint: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__doc__ = f'mmkp_ext placeholder for {name}: {hint}'
    for attr in attrs:
        setattr(mod, attr, _missing_class(name, attr, error, hint))

    def __getattr__(attr):  # noqa: N807 - module-level __getattr__
        if attr.startswith('__'):
            raise AttributeError(attr)
        return _missing_class(name, attr, error, hint)

    mod.__getattr__ = __getattr__
    return mod


@contextlib.contextmanager
def _temporary_modules(mods: Dict[str, types.ModuleType]) -> Iterator[None]:
    """Put ``mods`` into ``sys.modules`` for the duration of the block only,
    restoring whatever was there before (including a ``None`` marker)."""
    missing = object()
    saved = {name: sys.modules.get(name, missing) for name in mods}
    parents = {}
    for name, mod in mods.items():
        sys.modules[name] = mod
        parent, _, child = name.rpartition('.')
        if parent and parent in sys.modules and sys.modules[parent]:
            parents[name] = (sys.modules[parent], child,
                             getattr(sys.modules[parent], child, missing))
            setattr(sys.modules[parent], child, mod)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is missing:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
        for name, (parent, child, old) in parents.items():
            if old is missing:
                if getattr(parent, child, None) is mods[name]:
                    delattr(parent, child)
            else:
                setattr(parent, child, old)


def mmcv_has_compiled_ops() -> bool:
    """Whether ``mmcv.ops`` imports (i.e. mmcv was built with its ops)."""
    try:
        importlib.import_module('mmcv.ops')
    except ImportError:
        return False
    return True


def torchvision_status() -> str:
    """``'ok'`` if torchvision imports, ``'missing'`` if it is not installed,
    ``'broken'`` if it is installed but raises while importing."""
    if 'torchvision' in sys.modules and sys.modules['torchvision'] is None:
        return 'broken' if _APPLIED.get('torchvision_broken') else 'missing'
    try:
        importlib.import_module('torchvision')
    except ModuleNotFoundError:
        return 'missing'
    except Exception:  # noqa: BLE001 - any failure means unusable
        return 'broken'
    return 'ok'


def _mmcv_ops_placeholder() -> types.ModuleType:
    return _make_placeholder_module(
        'mmcv.ops', list(MMCV_OPS_USED_BY_MMPOSE), MissingCompiledOpsError,
        'the installed mmcv has no compiled ops (mmcv._ext is missing; '
        'mmcv-lite?). Install the full mmcv<2.2.0 built for your torch to use '
        'this component.')


def _torchvision_placeholders() -> Dict[str, types.ModuleType]:
    hint = ('torchvision cannot be imported on this install (missing, or '
            'built for another torch). Install the torchvision matching your '
            'torch to use this component.')
    top = _make_placeholder_module('torchvision', [], MissingTorchvisionError,
                                   hint)
    transforms = _make_placeholder_module('torchvision.transforms',
                                          ['ToPILImage'],
                                          MissingTorchvisionError, hint)
    top.transforms = transforms
    return {'torchvision': top, 'torchvision.transforms': transforms}


def import_mmpose_models(has_ops: bool) -> None:
    """Import ``mmpose.models``; without compiled mmcv ops, under a temporary
    ``mmcv.ops`` stand-in whose classes raise a clear error when used."""
    if has_ops or 'mmpose.models' in sys.modules:
        importlib.import_module('mmpose.models')
        return
    with _temporary_modules({'mmcv.ops': _mmcv_ops_placeholder()}), \
            warnings.catch_warnings():
        # mmcv warns once that its deformable attention is missing; the
        # placeholder's error says the same when it matters.
        warnings.filterwarnings(
            'ignore', message='Fail to import ``MultiScaleDeformableAttention')
        importlib.import_module('mmpose.models')
    _log_once('mmcv_ops', 'mmcv has no compiled ops: imported mmpose.models '
              'with a temporary mmcv.ops stand-in (EDPose, DEKR, PoseWarper '
              'raise MissingCompiledOpsError when built).')


def import_mmpose_visualization(tv_status: str) -> None:
    """Import ``mmpose.visualization``; without a usable torchvision, under a
    temporary stand-in for ``torchvision.transforms.ToPILImage``."""
    if tv_status == 'broken':
        # Make later ``import torchvision`` raise ModuleNotFoundError, which
        # mmengine's collect_env (run by every Runner) tolerates.
        sys.modules['torchvision'] = None
        _log_once('torchvision_broken', 'torchvision is installed but fails '
                  'to import: marked as absent.')
    if tv_status == 'ok' or 'mmpose.visualization' in sys.modules:
        importlib.import_module('mmpose.visualization')
        return
    with _temporary_modules(_torchvision_placeholders()):
        importlib.import_module('mmpose.visualization')
    _log_once('torchvision_vis', 'torchvision unusable: imported '
              'mmpose.visualization with a temporary ToPILImage stand-in.')


def torch_load_defaults_to_weights_only() -> bool:
    """Whether ``torch.load`` defaults to ``weights_only=True``
    (torch >= 2.6)."""
    import torch
    from mmengine.utils import digit_version
    return digit_version(torch.__version__.split('+')[0]) >= digit_version(
        '2.6.0')


def mmengine_checkpoint_safe_globals() -> list:
    """The non-tensor globals that an mmengine/mmpose checkpoint pickles:
    numpy arrays and scalars (dataset meta: sigmas, colours, ...), and
    mmengine's HistoryBuffer (message hub in the meta), whose pickled
    ``getattr`` is resolved by the restricted
    :func:`_history_buffer_getattr`."""
    import codecs

    import numpy as np
    from mmengine.logging import HistoryBuffer
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(t)) for t in np.sctypeDict.values()]
    return [
        _reconstruct, scalar, np.ndarray, np.dtype, codecs.encode,
        HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'),
        *sorted(set(dtype_classes), key=lambda c: c.__name__)
    ]


def _history_buffer_getattr(obj, name: str):
    """Stands in for ``builtins.getattr`` while unpickling with
    ``weights_only=True``: mmengine's HistoryBuffer pickles its table of
    statistics methods as ``getattr(HistoryBuffer, 'mean')`` etc. Only those
    look-ups are allowed; a general ``getattr`` would let a checkpoint reach
    arbitrary callables and defeat safe loading."""
    import pickle

    from mmengine.logging import HistoryBuffer
    allowed = set(HistoryBuffer._statistics_methods) | {
        'min', 'max', 'current', 'mean'
    }
    if obj is HistoryBuffer and isinstance(name, str) and name in allowed:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint '
        'with weights_only=True: mmkp_ext only allows the statistics methods '
        'of mmengine.logging.HistoryBuffer')


def allow_mmengine_checkpoints(needed: bool) -> None:
    """Add the globals of :func:`mmengine_checkpoint_safe_globals` to torch's
    safe-globals allow-list when safe loading is the default."""
    if not needed:
        return
    import torch
    torch.serialization.add_safe_globals(mmengine_checkpoint_safe_globals())
    _log_once('torch_load', 'torch.load defaults to weights_only=True: '
              'allow-listed numpy arrays and HistoryBuffer for mmengine '
              'checkpoints.')


def _cpu_init_dist_pytorch(backend: str = 'gloo',
                           init_backend: str = 'torch',
                           **kwargs) -> None:
    """mmengine's ``_init_dist_pytorch`` for machines without CUDA: no
    ``torch.cuda.set_device``, and ``gloo`` because ``nccl`` needs GPUs."""
    import torch.distributed as torch_dist
    if backend == 'nccl':
        logger.warning('CUDA is not available: using the gloo backend '
                       'instead of nccl for distributed training.')
        backend = 'gloo'
    if init_backend != 'torch':
        raise ValueError(f'init_backend={init_backend!r} needs CUDA; only '
                         "'torch' is supported on CPU")
    torch_dist.init_process_group(backend=backend, **kwargs)


def patch_cpu_distributed(cuda_available: bool) -> None:
    """Make ``--launcher pytorch`` work where CUDA is unavailable."""
    if cuda_available:
        return
    import mmengine.dist.utils as dist_utils
    if getattr(dist_utils._init_dist_pytorch, '_mmkp_ext_cpu', False):
        return
    original = dist_utils._init_dist_pytorch

    def _init_dist_pytorch(backend='gloo', init_backend='torch', **kwargs):
        import torch
        if torch.cuda.is_available():
            return original(backend, init_backend=init_backend, **kwargs)
        return _cpu_init_dist_pytorch(backend, init_backend, **kwargs)

    _init_dist_pytorch._mmkp_ext_cpu = True
    dist_utils._init_dist_pytorch = _init_dist_pytorch
    _log_once('cpu_dist', 'CUDA unavailable: mmengine distributed init '
              'skips torch.cuda.set_device and uses gloo.')


def numpy_refuses_size1_array_to_int() -> bool:
    """Whether ``int(np.array([1]))`` raises (recent numpy 2 releases ended
    the deprecated conversion of 1-element arrays to Python scalars)."""
    import numpy as np
    try:
        int(np.array([1]))
    except TypeError:
        return True
    return False


def patch_visualizer_radius(needed: bool) -> None:
    """mmpose's PoseLocalVisualizer passes ``radius=np.array([r])`` to the
    OpenCV backend's ``draw_circles``, which calls ``int(radius)``: that
    raises on recent numpy (2.4 here) and breaks ``test.py --show-dir``.
    Where needed, 1-element radius arrays are turned into scalars first."""
    if not needed:
        return
    import functools

    import numpy as np
    from mmpose.visualization.opencv_backend_visualizer import \
        OpencvBackendVisualizer
    original = OpencvBackendVisualizer.draw_circles
    if getattr(original, '_mmkp_ext_radius', False):
        return

    @functools.wraps(original)
    def draw_circles(self, center, radius, *args, **kwargs):
        if isinstance(radius, np.ndarray) and radius.size == 1:
            radius = radius.item()
        return original(self, center, radius, *args, **kwargs)

    draw_circles._mmkp_ext_radius = True
    OpencvBackendVisualizer.draw_circles = draw_circles
    _log_once('vis_radius', 'numpy refuses int() of 1-element arrays: '
              'mmpose OpenCV visualiser gets scalar circle radii.')


def apply_all() -> None:
    """Apply every fix the installed stack needs (idempotent)."""
    import torch
    import_mmpose_models(mmcv_has_compiled_ops())
    import_mmpose_visualization(torchvision_status())
    allow_mmengine_checkpoints(torch_load_defaults_to_weights_only())
    patch_cpu_distributed(torch.cuda.is_available())
    patch_visualizer_radius(numpy_refuses_size1_array_to_int())

"""Narrow fixes that let mmpose 1.3.2 / mmengine 0.10.7 run on this stack.

Each fix checks whether the installed stack needs it and does nothing
otherwise; :func:`apply_all` runs them once (``import mmkp_ext`` calls it) and
logs every fix that activates at debug level. The checks are separate
functions so tests can simulate both sides.

Fixes:

* **mmcv without compiled ops**: mmpose's model package imports
  ``mmcv.ops`` at module top for EDPose (deformable attention), while DEKR and
  PoseWarper import it guarded. While ``mmpose.models`` is imported, a
  temporary ``mmcv.ops`` stands in whose classes raise
  :class:`MissingCompiledOpsError` when they are *used*; afterwards the
  stand-in is removed again, so ``import mmcv.ops`` anywhere else still fails
  as before and no other code is fooled into thinking the ops exist.
  :func:`mmcv_status` tells mmcv-lite (no compiled extension shipped: the
  expected state of the default install, logged at debug level) apart from a
  full mmcv whose extension fails to load (built for another torch or CUDA:
  logged once at WARNING with the original error and what to do).
* **torchvision missing or broken**: ``mmpose.visualization`` imports
  ``torchvision.transforms.ToPILImage`` at module top (only the SimCC
  visualiser uses it). The same temporary stand-in is used while importing
  it. A torchvision that is installed but raises on import (PyPI wheels
  against a CPU torch build: ``operator torchvision::nms does not exist``) is
  additionally marked as absent (``sys.modules['torchvision'] = None``), so
  code that guards with ``except ModuleNotFoundError`` (mmengine's
  ``collect_env``, run by every Runner) keeps working; the original import
  error is logged once at WARNING and kept in :func:`status`.
* **checkpoint loading never runs code**: mmengine 0.10.7 calls
  ``torch.load`` without ``weights_only``, so whether it unpickles arbitrary
  code depends on torch's default (off before torch 2.6, or with
  ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``). Every torch.load inside
  ``mmengine.runner.checkpoint`` (local files, pavi, ceph, open-mmlab
  paths) goes through :func:`mmkp_ext.safe_load.safe_torch_load`, which
  passes ``weights_only=True`` explicitly, and its ``load_url`` (http(s),
  torchvision://, open-mmlab:// downloads) gets ``weights_only=True`` too.
  mmengine checkpoints carry numpy arrays and mmengine's ``HistoryBuffer``
  in their meta: only while mmengine's ``CheckpointLoader`` (or
  :mod:`mmkp_ext.safe_load`) loads a checkpoint, the exact globals such
  checkpoints contain are allow-listed (torch's ``safe_globals`` context);
  every other ``torch.load`` in the process keeps torch's defaults. A file
  that holds no dict (or an empty one) is refused with an error naming it
  (mmengine would fail later, naming neither). ``HistoryBuffer`` is
  rebuilt through :class:`_CheckpointHistoryBuffer`, which restores the
  instance's history but never lets a checkpoint write the class-level
  table of statistics methods. This fix is active on every
  stack.
* **recent numpy in mmpose's visualiser**: ``int()`` of a 1-element array
  raises; mmpose's OpenCV visualiser does that for circle radii
  (``test.py --show-dir``). Radii are made scalars first where needed.
* **CPU distributed training**: mmengine's ``_init_dist_pytorch`` calls
  ``torch.cuda.set_device`` unconditionally on its last branch; where no
  accelerator that mmengine knows (CUDA, NPU, MLU, MUSA) is present it is
  wrapped to skip that call (and to use ``gloo`` instead of ``nccl``);
  mmengine's own accelerator branches are never bypassed. The matching model
  wrapper lives in :mod:`mmkp_ext.engine`.
* **bfloat16 tensors in mmpose's ``to_numpy``**: numpy has no bfloat16, so
  ``to_numpy`` raises ``TypeError: Got unsupported ScalarType BFloat16`` for
  the outputs of any model run under ``torch.autocast(dtype=bfloat16)``
  (mmpose's ``HeatmapHead`` / ``CPMHead`` loss accuracy and decoding, the
  ``AssociativeEmbedding`` codec). The helper is wrapped so that bfloat16
  tensors (alone or in a sequence) are converted to float32 first; every
  other input gives exactly what it gave before, so only a call that raised
  changes. The wrapper replaces ``to_numpy`` in ``mmpose.*`` modules only.

``python -m mmkp_ext`` prints :func:`report`: what was found and which
fixes are active.
"""
import contextlib
import functools
import importlib
import importlib.util
import logging
import pickle
import sys
import types
import warnings
from typing import Dict, Iterator, List, Optional, Tuple

logger = logging.getLogger('mmkp_ext.compat')

_APPLIED: Dict[str, bool] = {}
_STATUS: Dict[str, object] = {}

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


def _warn_once(key: str, msg: str) -> None:
    """Log a degraded-stack message once per process at WARNING."""
    if not _STATUS.get('warned_' + key):
        _STATUS['warned_' + key] = True
        logger.warning(msg)


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
    """Whether ``mmcv.ops`` imports (i.e. mmcv's compiled ops are usable)."""
    return mmcv_status()[0] == 'full'


def mmcv_status() -> Tuple[str, Optional[str]]:
    """Which mmcv this process has, and why its ops are unusable if they are.

    Returns:
        ``(state, error)`` with ``state`` one of ``'full'`` (``mmcv.ops``
        imports), ``'lite'`` (no compiled extension ``mmcv._ext`` shipped:
        mmcv-lite, or mmcv built with ``MMCV_WITH_OPS=0``), ``'broken'`` (the
        extension is there but fails to load, e.g. built for another torch or
        CUDA) or ``'missing'`` (no mmcv); ``error`` is the original import
        error as text for ``'broken'`` and ``'missing'``, else ``None``.
    """
    try:
        importlib.import_module('mmcv')
    except ImportError as e:
        return 'missing', f'{type(e).__name__}: {e}'
    try:
        importlib.import_module('mmcv.ops')
        return 'full', None
    except Exception as e:  # noqa: BLE001 - report whatever broke it
        error = f'{type(e).__name__}: {e}'
    try:
        ext_spec = importlib.util.find_spec('mmcv._ext')
    except (ImportError, ValueError):
        ext_spec = None
    return ('lite', None) if ext_spec is None else ('broken', error)


def torchvision_status() -> str:
    """``'ok'`` if torchvision imports, ``'missing'`` if it is not installed,
    ``'broken'`` if it is installed but raises while importing (the error is
    kept in :func:`status`)."""
    if 'torchvision' in sys.modules and sys.modules['torchvision'] is None:
        return 'broken' if _STATUS.get('torchvision_error') else 'missing'
    try:
        importlib.import_module('torchvision')
    except ModuleNotFoundError as e:
        if e.name != 'torchvision':
            _STATUS['torchvision_error'] = f'{type(e).__name__}: {e}'
            return 'broken'
        return 'missing'
    except Exception as e:  # noqa: BLE001 - any failure means unusable
        _STATUS['torchvision_error'] = f'{type(e).__name__}: {e}'
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


def import_mmpose_models(mmcv_state: Tuple[str, Optional[str]]) -> None:
    """Import ``mmpose.models``; where mmcv's compiled ops are unusable
    (``mmcv_state`` as returned by :func:`mmcv_status`), under a temporary
    ``mmcv.ops`` stand-in whose classes raise a clear error when used. A
    full mmcv whose extension fails to load is reported once at WARNING
    with the original error."""
    state, error = mmcv_state
    _STATUS['mmcv'] = state
    _STATUS['mmcv_error'] = error
    if state == 'broken':
        _warn_once('mmcv_broken', 'mmcv is installed with compiled ops, but '
                   f'they fail to load ({error}). It was probably built for '
                   'another torch / CUDA. mmkp_ext continues as with '
                   'mmcv-lite (EDPose, DEKR and PoseWarper unavailable); '
                   'rebuild mmcv<2.2.0 against the installed torch to use '
                   'its ops.')
    if state == 'full' or 'mmpose.models' in sys.modules:
        importlib.import_module('mmpose.models')
        return
    with _temporary_modules({'mmcv.ops': _mmcv_ops_placeholder()}), \
            warnings.catch_warnings():
        # mmcv warns once that its deformable attention is missing; the
        # placeholder's error says the same when it matters.
        warnings.filterwarnings(
            'ignore', message='Fail to import ``MultiScaleDeformableAttention')
        importlib.import_module('mmpose.models')
    _log_once('mmcv_ops', f'mmcv without usable compiled ops ({state}): '
              'imported mmpose.models with a temporary mmcv.ops stand-in '
              '(EDPose, DEKR, PoseWarper raise MissingCompiledOpsError when '
              'built).')


def import_mmpose_visualization(tv_status: str) -> None:
    """Import ``mmpose.visualization``; without a usable torchvision, under a
    temporary stand-in for ``torchvision.transforms.ToPILImage``. A broken
    torchvision is reported once at WARNING with its original error."""
    _STATUS['torchvision'] = tv_status
    if tv_status == 'broken':
        _warn_once('torchvision_broken', 'torchvision is installed but fails '
                   f'to import ({_STATUS.get("torchvision_error")}); it is '
                   'treated as absent in this process (only mmpose\'s SimCC '
                   'visualiser needs it). Install the torchvision release '
                   'built for your torch, or uninstall torchvision, to '
                   'silence this.')
        # Make later ``import torchvision`` raise ModuleNotFoundError, which
        # mmengine's collect_env (run by every Runner) tolerates.
        sys.modules['torchvision'] = None
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


#: numpy dtypes whose arrays mmengine / mmpose checkpoints hold (sigmas and
#: weights: float32; colours: uint8; histories: float64 / int64). Object,
#: string and structured dtypes are deliberately absent.
CHECKPOINT_NUMPY_DTYPES = ('?', 'i1', 'i2', 'i4', 'i8', 'u1', 'u2', 'u4',
                           'u8', 'f2', 'f4', 'f8')

_HISTORY_BUFFER_PATH = 'mmengine.logging.history_buffer.HistoryBuffer'


def _checkpoint_history_buffer_class():
    """Build (once) the stand-in for ``HistoryBuffer`` used while loading.

    A pickled HistoryBuffer carries its class-level table of statistics
    methods, and ``HistoryBuffer.__setstate__`` writes that table into the
    class, i.e. into process-wide state. The stand-in restores only the
    instance's own fields (``max_length``, ``_log_history``,
    ``_count_history``), ignores the table, and then turns the object into a
    real ``HistoryBuffer``.
    """
    cls = _STATUS.get('_history_buffer_cls')
    if cls is not None:
        return cls
    import numpy as np
    from mmengine.logging import HistoryBuffer

    class _CheckpointHistoryBuffer(HistoryBuffer):

        def __setstate__(self, state):
            if not isinstance(state, dict):
                raise pickle.UnpicklingError(
                    f'HistoryBuffer state must be a dict, got {type(state)}')
            fields = {}
            for key in ('_log_history', '_count_history'):
                value = state.get(key, np.array([]))
                if not isinstance(value, np.ndarray) or value.ndim != 1:
                    raise pickle.UnpicklingError(
                        f'HistoryBuffer.{key} must be a 1-D numpy array')
                fields[key] = value
            max_length = state.get('max_length', 1000000)
            if not isinstance(max_length, int):
                raise pickle.UnpicklingError(
                    'HistoryBuffer.max_length must be an int')
            fields['max_length'] = max_length
            self.__dict__.update(fields)
            # Only the defaults, and setdefault never overwrites.
            self._set_default_statistics()
            self.__class__ = HistoryBuffer

    _STATUS['_history_buffer_cls'] = _CheckpointHistoryBuffer
    return _CheckpointHistoryBuffer


def mmengine_checkpoint_safe_globals() -> list:
    """The non-tensor globals that an mmengine / mmpose checkpoint pickles
    (read off real checkpoints): numpy arrays and scalars of the dtypes in
    :data:`CHECKPOINT_NUMPY_DTYPES` (dataset meta: sigmas, colours, ...;
    numpy's array pickle uses ``_codecs.encode``), and mmengine's
    ``HistoryBuffer`` (message hub), rebuilt by the stand-in of
    :func:`_checkpoint_history_buffer_class`; its pickled ``getattr`` calls
    go to the restricted :func:`_history_buffer_getattr`."""
    import codecs

    import numpy as np
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = {type(np.dtype(t)) for t in CHECKPOINT_NUMPY_DTYPES}
    return [
        _reconstruct, scalar, np.ndarray, np.dtype, codecs.encode,
        (_checkpoint_history_buffer_class(), _HISTORY_BUFFER_PATH),
        (_history_buffer_getattr, 'builtins.getattr'),
        *sorted(dtype_classes, key=lambda c: c.__name__)
    ]


def _history_buffer_getattr(obj, name: str):
    """Stands in for ``builtins.getattr`` while mmengine loads a checkpoint:
    HistoryBuffer pickles its statistics table as ``getattr(HistoryBuffer,
    'mean')`` etc. Only look-ups of HistoryBuffer's statistics methods are
    answered (and the table is dropped on load anyway); anything else would
    let a checkpoint reach arbitrary callables and defeat safe loading."""
    from mmengine.logging import HistoryBuffer
    allowed = set(HistoryBuffer._statistics_methods) | {
        'min', 'max', 'current', 'mean'
    }
    if (isinstance(obj, type) and issubclass(obj, HistoryBuffer)
            and isinstance(name, str) and name in allowed):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({obj!r}, {name!r}) while loading a checkpoint '
        'with weights_only=True: mmkp_ext only allows the statistics methods '
        'of mmengine.logging.HistoryBuffer')


@contextlib.contextmanager
def mmengine_checkpoint_globals() -> Iterator[None]:
    """Allow-list :func:`mmengine_checkpoint_safe_globals` for the duration of
    the block only (torch's ``safe_globals`` context; on a torch without it,
    nothing is allow-listed and mmengine meta fails to load with a clear
    weights-only error instead)."""
    import torch
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    if safe_globals is None:
        yield
        return
    with safe_globals(mmengine_checkpoint_safe_globals()):
        yield


def _weights_only_torch_load(f, map_location=None, *args, **kwargs):
    """``torch.load`` as mmengine's checkpoint module sees it: always
    :func:`mmkp_ext.safe_load.safe_torch_load` (explicit
    ``weights_only=True``, errors naming the file)."""
    from mmkp_ext.safe_load import safe_torch_load
    if args:
        raise TypeError('mmkp_ext: unexpected positional torch.load '
                        f'arguments {args!r} in mmengine checkpoint loading')
    kwargs.pop('weights_only', None)
    return safe_torch_load(f, map_location=map_location, **kwargs)


def _weights_only_torch_module() -> types.ModuleType:
    """A stand-in for the name ``torch`` inside
    ``mmengine.runner.checkpoint`` only: ``load`` is
    :func:`_weights_only_torch_load`, every other attribute is torch's."""
    import torch
    proxy = types.ModuleType('torch')
    proxy.__doc__ = ('mmkp_ext: torch for mmengine.runner.checkpoint, with '
                     'torch.load(weights_only=True)')

    def __getattr__(name):  # noqa: N807 - module-level __getattr__
        return getattr(torch, name)

    proxy.__getattr__ = __getattr__
    proxy.load = _weights_only_torch_load
    proxy._mmkp_ext_weights_only = True
    return proxy


def allow_mmengine_checkpoints(needed: bool = True) -> None:
    """Make mmengine's checkpoint loading (``load_checkpoint``,
    ``_load_checkpoint``, ``Runner.load_checkpoint`` / ``--resume``,
    mmpose's ``init_model``) safe on every stack:

    * ``CheckpointLoader.load_checkpoint`` runs under
      :func:`mmengine_checkpoint_globals` (nothing is added process-wide);
    * every ``torch.load`` inside ``mmengine.runner.checkpoint`` passes
      ``weights_only=True`` explicitly (:func:`_weights_only_torch_module`),
      and so does its ``load_url`` (downloads).

    ``needed=False`` leaves mmengine untouched (kept for tests; mmkp_ext
    itself always applies the fix: safety must not depend on torch's
    default)."""
    if not needed:
        return
    import mmengine.runner.checkpoint as ckpt_mod
    from mmengine.runner.checkpoint import CheckpointLoader
    if not getattr(ckpt_mod.torch, '_mmkp_ext_weights_only', False):
        ckpt_mod.torch = _weights_only_torch_module()
    load_url = getattr(ckpt_mod, 'load_url', None)
    if load_url is not None and not getattr(load_url, '_mmkp_ext_weights_only',
                                            False):

        @functools.wraps(load_url)
        def safe_load_url(url, *args, **kwargs):
            kwargs['weights_only'] = True
            return load_url(url, *args, **kwargs)

        safe_load_url._mmkp_ext_weights_only = True
        ckpt_mod.load_url = safe_load_url
    current = CheckpointLoader.__dict__['load_checkpoint']
    if getattr(current.__func__, '_mmkp_ext_scoped', False):
        return
    original = current.__func__

    @functools.wraps(original)
    def load_checkpoint(cls, filename, *args, **kwargs):
        from mmkp_ext.safe_load import check_checkpoint_dict
        with mmengine_checkpoint_globals():
            ckpt = original(cls, filename, *args, **kwargs)
        # mmengine needs a dict; anything else failed later with errors
        # naming neither the file nor the problem.
        return check_checkpoint_dict(ckpt, str(filename))

    load_checkpoint._mmkp_ext_scoped = True
    CheckpointLoader.load_checkpoint = classmethod(load_checkpoint)
    _log_once('torch_load', 'mmengine checkpoint loading passes '
              'weights_only=True and allow-lists numpy arrays and '
              'HistoryBuffer while it runs.')


def accelerator_available() -> bool:
    """Whether torch sees an accelerator that mmengine's distributed init
    handles itself (CUDA, Ascend NPU, Cambricon MLU, Moore Threads MUSA)."""
    import torch
    from mmengine import device
    return bool(torch.cuda.is_available() or device.is_npu_available()
                or device.is_mlu_available() or device.is_musa_available())


def _cpu_init_dist_pytorch(backend: str = 'gloo',
                           init_backend: str = 'torch',
                           **kwargs) -> None:
    """mmengine's ``_init_dist_pytorch`` for machines without accelerators:
    no ``torch.cuda.set_device``, and ``gloo`` because ``nccl`` needs
    GPUs."""
    import torch.distributed as torch_dist
    if backend == 'nccl':
        logger.warning('no GPU is available: using the gloo backend '
                       'instead of nccl for distributed training.')
        backend = 'gloo'
    if init_backend != 'torch':
        raise ValueError(f'init_backend={init_backend!r} needs GPUs; only '
                         "'torch' is supported on CPU")
    torch_dist.init_process_group(backend=backend, **kwargs)
    import atexit
    atexit.register(_close_cpu_process_group)


def _close_cpu_process_group() -> None:
    """At interpreter exit: wait for every rank, then destroy the gloo
    process group. Without it a rank that finishes first (e.g. while rank 0
    still writes the best checkpoint) tears its gloo threads down under a
    peer still connected, and was seen to abort with ``terminate called
    without an active exception`` (SIGABRT, a failed ``dist_train.sh``)."""
    import torch.distributed as torch_dist
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    from datetime import timedelta
    try:
        # gloo's monitored barrier gives up after the timeout instead of
        # hanging when a peer died without reaching it
        torch_dist.monitored_barrier(timeout=timedelta(seconds=120))
    except Exception:  # a peer already gone: nothing to wait for
        pass
    try:
        torch_dist.destroy_process_group()
    except Exception:
        pass


def patch_cpu_distributed(accelerator: bool) -> None:
    """Make ``--launcher pytorch`` work where no accelerator is present.
    The wrapper checks again at call time and hands over to mmengine's own
    function (with its NPU / MLU / MUSA / CUDA branches) whenever
    :func:`accelerator_available` is true."""
    if accelerator:
        return
    import mmengine.dist.utils as dist_utils
    if getattr(dist_utils._init_dist_pytorch, '_mmkp_ext_cpu', False):
        return
    original = dist_utils._init_dist_pytorch

    def _init_dist_pytorch(backend='nccl', init_backend='torch', **kwargs):
        if accelerator_available():
            return original(backend, init_backend=init_backend, **kwargs)
        return _cpu_init_dist_pytorch(backend, init_backend, **kwargs)

    _init_dist_pytorch._mmkp_ext_cpu = True
    dist_utils._init_dist_pytorch = _init_dist_pytorch
    _log_once('cpu_dist', 'no accelerator: mmengine distributed init '
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


def init_model_needs_backbone_guard() -> bool:
    """Whether ``mmpose.apis.init_model`` reads ``config.model.backbone``
    unguarded (mmpose 1.3.2: ``'init_cfg' in config.model.backbone``), which
    fails for estimators without a backbone such as
    ``EnsemblePoseEstimator``."""
    import inspect

    from mmpose.apis import inference
    try:
        src = inspect.getsource(inference.init_model)
    except (OSError, TypeError):
        return False
    return "'init_cfg' in config.model.backbone" in src


def patch_init_model_without_backbone(needed: bool) -> None:
    """Let ``mmpose.apis.init_model`` build models whose config has no
    ``model.backbone`` (ensembles): for those it passes an empty
    ``cfg_options``, which takes mmpose's other branch and skips only the
    backbone ``init_cfg`` reset. Configs with a backbone are untouched."""
    if not needed or _APPLIED.get('init_model_backbone'):
        return
    import mmpose.apis
    from mmengine.config import Config
    from mmpose.apis import inference

    original = inference.init_model

    @functools.wraps(original)
    def init_model(config, checkpoint=None, device='cuda:0',
                   cfg_options=None):
        if isinstance(config, str) or hasattr(config, '__fspath__'):
            config = Config.fromfile(str(config))
        if (cfg_options is None and isinstance(config, Config)
                and 'backbone' not in config.get('model', {})):
            cfg_options = {}
        return original(config, checkpoint, device, cfg_options)

    init_model.__wrapped_by_mmkp_ext__ = True
    inference.init_model = init_model
    mmpose.apis.init_model = init_model
    _APPLIED['init_model_backbone'] = True
    _log_once('init_model_backbone', 'mmpose.apis.init_model accepts '
              'configs without model.backbone (ensembles).')


def mmdet_inferencer_error() -> Optional[str]:
    """Why mmpose's inferencers cannot use MMDetection here, or ``None`` when
    they can (``mmdet.apis.det_inferencer`` imports)."""
    from mmpose.apis.inferencers import base_mmpose_inferencer as bmi
    if getattr(bmi, 'has_mmdet', False):
        return None
    try:
        importlib.import_module('mmdet.apis.det_inferencer')
    except Exception as err:  # the reason mmpose swallowed
        return f'{type(err).__name__}: {err}'
    return None


def inferencer_lacks_mmdet() -> bool:
    """Whether mmpose's inferencers found no usable MMDetection (their
    ``has_mmdet``, set when mmpose imported them)."""
    from mmpose.apis.inferencers import base_mmpose_inferencer as bmi
    return not getattr(bmi, 'has_mmdet', False)


def _missing_mmdet_reason(error: Optional[str]) -> str:
    if error and ('mmcv._ext' in error or 'mmcv.ops' in error):
        return ('MMDetection is installed but its detectors need mmcv\'s '
                f'compiled ops, which this mmcv lacks ({error}). Install a '
                'full mmcv<2.2.0 built for your torch to use a detector')
    return f'MMDetection cannot be imported ({error})'


def explain_missing_mmdet(needed: bool) -> None:
    """Where mmpose's inferencers cannot build a person detector, replace
    mmpose's message ("MMDetection (v3.0.0 or above) is required", shown
    even with mmdet installed) by the real import error and the settings
    that work. The import error is looked up only when that message is
    raised, not at start-up. Nothing changes where the detector can be
    built."""
    if not needed or _APPLIED.get('mmdet_message'):
        return
    from mmpose.apis.inferencers import base_mmpose_inferencer as bmi
    original = bmi.BaseMMPoseInferencer._init_detector

    @functools.wraps(original)
    def _init_detector(self, det_model=None, *args, **kwargs):
        try:
            return original(self, det_model, *args, **kwargs)
        except RuntimeError as err:
            if 'MMDetection' not in str(err):
                raise
            error = mmdet_inferencer_error()
            _STATUS['mmdet_error'] = error
            raise RuntimeError(
                f'{_missing_mmdet_reason(error)}. Without a detector, run '
                'the top-down model on the whole image (MMPoseInferencer(..., '
                "det_model='whole_image')) or give person boxes yourself "
                '(mmpose.apis.inference_topdown(model, img, bboxes)); '
                'bottom-up models need no detector.') from err

    bmi.BaseMMPoseInferencer._init_detector = _init_detector
    _APPLIED['mmdet_message'] = True


def numpy_lacks_bfloat16() -> bool:
    """Whether ``Tensor.numpy()`` refuses bfloat16 tensors (numpy has no
    bfloat16 dtype; true for every numpy so far)."""
    import torch
    try:
        torch.zeros(1, dtype=torch.bfloat16).numpy()
    except TypeError:
        return True
    return False


def _bf16_to_float32(x):
    """``x`` with bfloat16 tensors (``x`` itself or the items of a list or
    tuple of tensors) converted to float32; anything else unchanged."""
    import torch
    if isinstance(x, torch.Tensor):
        return x.float() if x.dtype == torch.bfloat16 else x
    if isinstance(x, (list, tuple)) and any(
            isinstance(t, torch.Tensor) and t.dtype == torch.bfloat16
            for t in x):
        items = [
            t.float() if isinstance(t, torch.Tensor)
            and t.dtype == torch.bfloat16 else t for t in x
        ]
        return tuple(items) if isinstance(x, tuple) else items
    return x


def patch_to_numpy_bfloat16(needed: bool) -> None:
    """Let mmpose's ``to_numpy`` accept bfloat16 tensors (float32 result)
    in the ``mmpose.*`` modules that use it."""
    if not needed or _APPLIED.get('to_numpy_bfloat16'):
        return
    from mmpose.utils import tensor_utils
    original = tensor_utils.to_numpy
    if getattr(original, '_mmkp_ext_bf16', False):
        return

    @functools.wraps(original)
    def to_numpy(x, *args, **kwargs):
        return original(_bf16_to_float32(x), *args, **kwargs)

    to_numpy._mmkp_ext_bf16 = True
    to_numpy._mmkp_ext_original = original
    # `from ... import to_numpy` bound the function in each mmpose module:
    # rebind it there (modules imported later read tensor_utils').
    for name, mod in list(sys.modules.items()):
        if (name == 'mmpose' or name.startswith('mmpose.')) and \
                getattr(mod, 'to_numpy', None) is original:
            mod.to_numpy = to_numpy
    _log_once('to_numpy_bfloat16', 'numpy has no bfloat16: mmpose to_numpy '
              'converts bfloat16 tensors to float32 first.')


def apply_all() -> None:
    """Apply every fix the installed stack needs (idempotent)."""
    import_mmpose_models(mmcv_status())
    import_mmpose_visualization(torchvision_status())
    allow_mmengine_checkpoints(True)
    patch_cpu_distributed(accelerator_available())
    patch_visualizer_radius(numpy_refuses_size1_array_to_int())
    patch_init_model_without_backbone(init_model_needs_backbone_guard())
    explain_missing_mmdet(inferencer_lacks_mmdet())
    patch_to_numpy_bfloat16(numpy_lacks_bfloat16())


def status() -> Dict[str, object]:
    """What the compatibility layer found and did in this process.

    Keys: ``mmcv`` (see :func:`mmcv_status`) and ``mmcv_error``,
    ``torchvision`` (see :func:`torchvision_status`) and
    ``torchvision_error``, and ``fixes``: the fixes that are active.
    """
    return dict(
        mmcv=_STATUS.get('mmcv'),
        mmcv_error=_STATUS.get('mmcv_error'),
        torchvision=_STATUS.get('torchvision'),
        torchvision_error=_STATUS.get('torchvision_error'),
        fixes=sorted(k for k, v in _APPLIED.items() if v))


def report() -> str:
    """:func:`status` as readable lines."""
    st = status()
    mmcv_text = {
        'full': 'full mmcv, compiled ops load',
        'lite': 'no compiled extension shipped (mmcv-lite): EDPose, DEKR, '
        'PoseWarper unavailable, everything else works',
        'broken': 'full mmcv whose compiled extension FAILS to load: '
        f'{st["mmcv_error"]}',
        'missing': f'not importable: {st["mmcv_error"]}',
    }.get(st['mmcv'], str(st['mmcv']))
    tv_text = {
        'ok': 'imports',
        'missing': 'not installed (only the SimCC visualiser needs it)',
        'broken': f'installed but FAILS to import: {st["torchvision_error"]}',
    }.get(st['torchvision'], str(st['torchvision']))
    return '\n'.join([
        f'mmcv: {mmcv_text}', f'torchvision: {tv_text}',
        'active fixes: ' + (', '.join(st['fixes']) or 'none')
    ])


"""Interpreter start-up hook of mmkp_ext (imported by ``mmkp_ext_startup.pth``).

Why it exists: with mmcv-lite (no compiled ops) or without a usable
torchvision, ``import mmpose.models`` / ``import mmpose.visualization`` fail
at module top (mmpose's EDPose head imports ``mmcv.ops``; its visualiser
imports ``torchvision``). mmpose's own entry points (``mmpose.apis.init_model``,
``inference_topdown``, ``MMPoseInferencer``) import those modules before any
config is read, so a config's ``custom_imports`` cannot help. ``import
mmkp_ext`` applies the narrow fixes of :mod:`mmkp_ext.compat`, but users of
mmpose's APIs should not have to know that.

What it does: at start-up it only checks, from the installed files (no
import; well under a millisecond), whether mmcv's compiled extension and
torchvision are present. If both are, it does nothing. Otherwise it adds a finder to
``sys.meta_path`` that waits for the first import of ``mmpose.models``,
``mmpose.visualization`` or ``mmpose.apis``; at that moment it removes itself
and imports :mod:`mmkp_ext` (which applies the compat fixes and registers
mmkp_ext's components, so mmpose's APIs also accept our configs), then lets
the requested import finish normally. Nothing is imported before mmpose is.

Set ``MMKP_EXT_NO_STARTUP_HOOK=1`` to switch it off.
"""
import importlib.util
import os
import sys

#: The mmpose modules whose import fails on mmcv-lite / without torchvision.
TRIGGERS = ('mmpose.apis', 'mmpose.models', 'mmpose.visualization')

_DISABLE_ENV = 'MMKP_EXT_NO_STARTUP_HOOK'


def _top_level_spec(name: str):
    """Spec of a top-level module, found without importing anything."""
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def mmcv_ships_compiled_ext(spec) -> bool:
    """Whether the mmcv package of ``spec`` holds its compiled extension
    (``_ext.<suffix>``). Looks at the files only: ``find_spec('mmcv._ext')``
    would import mmcv itself (seconds) at every interpreter start."""
    import importlib.machinery
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for folder in spec.submodule_search_locations or ():
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        if any(n.startswith('_ext') and n.endswith(suffixes) for n in names):
            return True
    return False


def stack_needs_fixes() -> bool:
    """Whether mmpose's module-top imports would fail here: mmcv without its
    compiled extension, or no torchvision. Checked from the files, without
    importing either (a torchvision that is present but broken, or an
    extension built for another torch, is not detected here; ``import
    mmkp_ext`` handles those when it runs)."""
    mmcv_spec = _top_level_spec('mmcv')
    if mmcv_spec is None:
        return False  # no mmcv at all: mmpose is unusable anyway
    return not (mmcv_ships_compiled_ext(mmcv_spec)
                and _top_level_spec('torchvision') is not None)


class MmposeCompatFinder:
    """Meta-path finder that imports :mod:`mmkp_ext` right before the first
    of :data:`TRIGGERS` is imported, then steps aside for good. (Plain
    class: importing ``importlib.abc`` at every start-up costs more than
    the duck-typed protocol needs.)"""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in TRIGGERS:
            return None
        uninstall()
        try:
            import mmkp_ext  # noqa: F401  (applies the compat fixes)
        except Exception as err:  # never break the user's import ourselves
            sys.stderr.write('mmkp_ext start-up hook: import mmkp_ext failed '
                             f'({type(err).__name__}: {err}); mmpose is '
                             'imported without its compatibility fixes.\n')
            return None
        if fullname in sys.modules:
            # mmkp_ext imported the trigger itself: hand the loaded module
            # back instead of executing it a second time.
            return importlib.util.spec_from_loader(
                fullname, _LoadedModuleLoader(sys.modules[fullname]))
        return None


class _LoadedModuleLoader:
    """Loader returning an already imported module unchanged."""

    def __init__(self, module):
        self._module = module
        self._spec = getattr(module, '__spec__', None)

    def create_module(self, spec):
        return self._module

    def exec_module(self, module):
        # importlib stamped this stand-in spec onto the module: put the
        # module's own spec back.
        if self._spec is not None:
            module.__spec__ = self._spec


_FINDER = MmposeCompatFinder()


def install() -> bool:
    """Put the finder first on ``sys.meta_path`` when this stack needs the
    fixes and mmpose is not imported yet. Returns whether it was installed."""
    if os.environ.get(_DISABLE_ENV, '') not in ('', '0'):
        return False
    if any(name in sys.modules for name in TRIGGERS):
        return False
    if not stack_needs_fixes():
        return False
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    return True


def uninstall() -> None:
    """Remove the finder from ``sys.meta_path`` (no-op when absent)."""
    while _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)


install()

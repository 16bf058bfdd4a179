"""The one checkpoint loader of mmkp_ext: never runs code from a file.

Every checkpoint that mmkp_ext, its tools and (through
:mod:`mmkp_ext.compat`) mmengine's ``CheckpointLoader`` read goes through
:func:`safe_torch_load`, which calls ``torch.load(..., weights_only=True)``
*explicitly*. An explicit ``weights_only=True`` is honoured even where torch's
default is switched off (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``, torch < 2.6,
mmengine forks that pass their own default), so safety never depends on the
installed torch or mmengine. The only non-tensor globals allowed are those
that mmengine / mmpose checkpoints pickle (numpy arrays and scalars of plain
dtypes, mmengine's ``HistoryBuffer`` rebuilt by a restricted stand-in: see
:func:`mmkp_ext.compat.mmengine_checkpoint_safe_globals`), and only while
the load runs.

Bad files get one error that names the file and what was expected:

* missing: :class:`FileNotFoundError`;
* empty, truncated or not written by ``torch.save``:
  :class:`CheckpointFileError`;
* a pickle that needs another global (e.g. ``posix.system``):
  :class:`UnsafeCheckpointError`, naming the refused global;
* (:func:`load_checkpoint_dict`) anything but a non-empty dict, e.g. a
  list: :class:`CheckpointFileError` naming the type found.
"""
import os
import pickle
import re
import sys
import zipfile
from typing import Any, Callable, Mapping, Optional, Union

import torch

PathLike = Union[str, os.PathLike]

#: URL-like schemes that mmengine's ``CheckpointLoader`` resolves itself
#: (``http://``, ``open-mmlab://``, ``torchvision://``, ``s3://``, ...).
_SCHEME = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*(:[A-Za-z0-9+.-]+)?://')


#: Messages of torch.load errors that mean "not a (complete) torch file".
_FORMAT_ERROR = re.compile(
    r'zip archive|central directory|PytorchStreamReader|magic number|'
    r'unexpected EOF|EOF|invalid load key|file not found in archive|'
    r'corrupt', re.IGNORECASE)


class CheckpointFileError(ValueError):
    """A checkpoint file is empty, truncated, not a ``torch.save`` file, or
    holds something other than what the caller expects."""


class UnsafeCheckpointError(CheckpointFileError, pickle.UnpicklingError):
    """A checkpoint needs a Python global that weights-only loading refuses
    (loading it with ``weights_only=False`` would run code from the
    file)."""

    def __init__(self, message: str, path: str = '',
                 refused_global: Optional[str] = None):
        super().__init__(message)
        self.path = path
        self.refused_global = refused_global


def _refused_global(message: str) -> Optional[str]:
    """The global named in torch's weights-only error, e.g.
    ``'posix.system'`` from ``Unsupported global: GLOBAL posix.system``."""
    m = re.search(r'GLOBAL ([\w.]+)', message)
    return m.group(1) if m else None


def _cut_name(name: str) -> bool:
    """Whether ``module.attr`` names an attribute missing from an
    already imported module (nothing is imported: that would run code), as
    a global cut off by a truncated legacy-format file does
    (``torch._utils._rebuild_tens``)."""
    module, _, attr = name.rpartition('.')
    mod = sys.modules.get(module)
    return mod is not None and not hasattr(mod, attr)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0] if text else ""}'


def is_local_path(filename: Any) -> bool:
    """Whether ``filename`` is a local path (not ``scheme://...``)."""
    return isinstance(filename, os.PathLike) or (
        isinstance(filename, str) and not _SCHEME.match(filename))


def safe_torch_load(source,
                    map_location: Union[str, Callable, None] = 'cpu',
                    name: Optional[str] = None,
                    **kwargs) -> Any:
    """``torch.load(source, map_location, weights_only=True)`` with the
    mmengine checkpoint allow-list, and errors that name the file.

    Args:
        source: a local path or an open binary file object (what
            ``torch.load`` accepts).
        map_location: as for ``torch.load``; ``'cpu'`` by default.
        name: how to name ``source`` in errors (default: the path, or the
            file object's ``name``).
        **kwargs: further ``torch.load`` arguments (``mmap``, ...).
            ``weights_only`` may be given only as ``True``.

    Returns:
        The unpickled object (any type; see :func:`load_checkpoint_dict`
        for the dict check).

    Raises:
        FileNotFoundError: a path that is not a file.
        CheckpointFileError: empty, truncated or not a torch file.
        UnsafeCheckpointError: the file needs a refused global.
    """
    from mmkp_ext.compat import mmengine_checkpoint_globals
    if kwargs.pop('weights_only', True) is not True:
        raise ValueError('mmkp_ext loads checkpoints with weights_only=True '
                         'only')
    if isinstance(source, (str, os.PathLike)):
        path = os.path.expanduser(os.fspath(source))
        label = name or path
        if not os.path.isfile(path):
            raise FileNotFoundError(f'checkpoint {label!r} does not exist '
                                    '(or is not a file)')
        size = os.path.getsize(path)
        if size == 0:
            raise CheckpointFileError(
                f'checkpoint {label!r} is empty (0 bytes): expected a '
                'checkpoint written by torch.save (a zip archive holding a '
                'dict of tensors); was its save interrupted?')
        source = path
    else:
        label = name or str(getattr(source, 'name', repr(source)))
        size = None
    try:
        with mmengine_checkpoint_globals():
            return torch.load(source, map_location=map_location,
                              weights_only=True, **kwargs)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001 - classified below
        text = str(err)
        refused = _refused_global(text) if isinstance(
            err, pickle.UnpicklingError) else None
        # A file that is not a complete zip archive (torch.save's format)
        # fails in many ways (RuntimeError, EOFError, KeyError from the
        # legacy reader, UnpicklingError "truncated"): all mean the same.
        broken_file = size is not None and not zipfile.is_zipfile(source)
        if broken_file and refused and _cut_name(refused):
            refused = None  # a name cut off by the truncation
        if refused is None and (broken_file or isinstance(err, EOFError) or (
                isinstance(err, (RuntimeError, OSError, ValueError))
                and _FORMAT_ERROR.search(text))):
            sized = f'{size} bytes, ' if size is not None else ''
            raise CheckpointFileError(
                f'checkpoint {label!r} is truncated or not a torch.save '
                f'file ({sized}{_first_line(err)}): expected a complete '
                'checkpoint written by torch.save; was its save '
                'interrupted?') from err
        if not isinstance(err, pickle.UnpicklingError):
            raise
        if refused is None and 'Weights only load failed' not in text:
            raise CheckpointFileError(
                f'checkpoint {label!r} cannot be read ({_first_line(err)}): '
                'expected a checkpoint written by torch.save') from err
        what = (f'the global {refused!r}' if refused else
                'an object that weights-only loading refuses')
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {label!r}: it needs {what}, '
            'which torch.load(weights_only=True) does not allow (only '
            'tensors, plain Python containers and the numpy / mmengine '
            'types of mmengine checkpoints are). Unpickling it would run '
            'code from the file; if you trust its source, re-save its '
            f'tensors as a plain dict. (torch: Weights only load failed; '
            f'{text.strip().splitlines()[-1][:300]})',
            path=label, refused_global=refused) from err


def load_checkpoint_any(filename: PathLike,
                        map_location: Union[str, Callable, None] = 'cpu'
                        ) -> Any:
    """Load a local checkpoint with :func:`safe_torch_load`, or a URL-like
    one (``https://``, ``open-mmlab://``, ``torchvision://``, ...) through
    mmengine's ``CheckpointLoader``, which :mod:`mmkp_ext.compat` makes load
    with ``weights_only=True`` as well."""
    if is_local_path(filename):
        return safe_torch_load(filename, map_location=map_location)
    from mmengine.runner.checkpoint import CheckpointLoader
    return CheckpointLoader.load_checkpoint(filename, map_location)


def check_checkpoint_dict(ckpt: Any, label: str) -> Mapping:
    """``ckpt`` if it is a non-empty dict whose ``state_dict`` (when
    present) is a dict; else :class:`CheckpointFileError` naming
    ``label``."""
    expected = ('expected a dict: an mmengine checkpoint (with "state_dict" '
                'and "meta") or a state dict of tensors')
    if not isinstance(ckpt, Mapping):
        raise CheckpointFileError(
            f'checkpoint {label!r} holds a {type(ckpt).__name__}, '
            f'{expected}')
    if not ckpt:
        raise CheckpointFileError(
            f'checkpoint {label!r} holds an empty dict, {expected}')
    if 'state_dict' in ckpt and not isinstance(ckpt['state_dict'], Mapping):
        raise CheckpointFileError(
            f'checkpoint {label!r}: "state_dict" is a '
            f'{type(ckpt["state_dict"]).__name__}, expected a dict of '
            'tensors')
    return ckpt


def load_checkpoint_dict(filename: PathLike,
                         map_location: Union[str, Callable, None] = 'cpu'
                         ) -> dict:
    """:func:`load_checkpoint_any`, then :func:`check_checkpoint_dict`:
    what every tool and library function of mmkp_ext reads checkpoints
    with."""
    ckpt = load_checkpoint_any(filename, map_location=map_location)
    return check_checkpoint_dict(ckpt, os.fspath(filename) if isinstance(
        filename, os.PathLike) else str(filename))

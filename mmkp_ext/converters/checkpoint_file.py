"""Reading checkpoint files for the converters (one loader for all)."""
import os
from typing import Mapping, Tuple, Union

from mmkp_ext.safe_load import (CheckpointFileError, UnsafeCheckpointError,
                                load_checkpoint_dict)

__all__ = ['load_checkpoint_file', 'CheckpointFileError',
           'UnsafeCheckpointError']


def load_checkpoint_file(path: Union[str, os.PathLike]) -> Tuple[dict, dict]:
    """Load an mmengine checkpoint, a published checkpoint or a bare state
    dict on the CPU.

    Loading is :func:`mmkp_ext.safe_load.load_checkpoint_dict`:
    ``torch.load(weights_only=True)`` passed explicitly, with only the
    numpy / mmengine globals that mmengine checkpoints pickle allowed
    (:func:`mmkp_ext.compat.mmengine_checkpoint_globals`).

    Returns:
        tuple: the whole checkpoint object and its state dict
        (``ckpt['state_dict']`` or ``ckpt['model']`` when present, else the
        object itself).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        CheckpointFileError (a ValueError): the file is empty, truncated,
            holds no dict or an empty one, or its ``"state_dict"`` is not a
            dict.
        UnsafeCheckpointError (a CheckpointFileError): the file needs a
            global that weights-only loading refuses.
    """
    ckpt = load_checkpoint_dict(path, map_location='cpu')
    for key in ('state_dict', 'model'):
        if isinstance(ckpt.get(key), Mapping):
            return dict(ckpt), ckpt[key]
    return dict(ckpt), ckpt

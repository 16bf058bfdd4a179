"""Reading checkpoint files for the converters (one loader for all)."""
import os
from typing import Mapping, Tuple, Union

import torch


def load_checkpoint_file(path: Union[str, os.PathLike]) -> Tuple[dict, dict]:
    """Load an mmengine checkpoint, a published checkpoint or a bare state
    dict on the CPU.

    Loading is ``torch.load(weights_only=True)`` with only the numpy /
    mmengine globals that mmengine checkpoints pickle allowed
    (:func:`mmkp_ext.compat.mmengine_checkpoint_globals`).

    Returns:
        tuple: the whole checkpoint object and its state dict
        (``ckpt['state_dict']`` or ``ckpt['model']`` when present, else the
        object itself).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file holds no dict, or its ``"state_dict"`` is not
            a dict.
    """
    from mmkp_ext.compat import mmengine_checkpoint_globals
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    with mmengine_checkpoint_globals():
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    if not isinstance(ckpt, Mapping):
        raise ValueError(f'checkpoint {path!r} holds a '
                         f'{type(ckpt).__name__}, not a dict')
    if 'state_dict' in ckpt and not isinstance(ckpt['state_dict'], Mapping):
        raise ValueError(f'checkpoint {path!r}: "state_dict" is not a dict')
    for key in ('state_dict', 'model'):
        if isinstance(ckpt.get(key), Mapping):
            return dict(ckpt), ckpt[key]
    return dict(ckpt), ckpt

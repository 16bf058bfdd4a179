"""Refuse checkpoints whose tensors do not fit the model at load time.

mmengine's ``load_checkpoint`` (used by ``tools/test.py``, ``load_from`` and
``init_cfg=dict(type='Pretrained')``) loads non-strictly: a tensor of the
wrong shape is skipped with a warning in the middle of the log and the
model keeps its random initialisation there, so a 17-keypoint checkpoint in
a 14-keypoint config, or an ungrouped CenterNet checkpoint in a grouped
config, evaluates to AP 0.000 with exit status 0.
:func:`refuse_mismatched_shapes` registers a ``load_state_dict`` pre-hook
that raises :class:`CheckpointShapeError` instead, naming every mismatched
tensor with both shapes and the fix. Keys absent from the state dict stay
allowed (partial loads such as a pretrained backbone are normal); only a
present tensor of another shape is refused. The hook runs for
``Module.load_state_dict`` (strict or not) and mmengine's loader alike,
because both call ``_load_from_state_dict``, which runs the pre-hooks.
"""
import itertools
from typing import Optional

from torch import nn
from torch.utils.hooks import RemovableHandle

__all__ = [
    'CheckpointShapeError', 'DEFAULT_FIX', 'GROUPED_HEAD_FIX',
    'refuse_mismatched_shapes'
]

#: How to fix a mismatch in general.
DEFAULT_FIX = (
    'the checkpoint was trained with another configuration of this part '
    '(number of keypoints, groups or channels): use a checkpoint trained '
    'with this config, or load only the parts that fit (e.g. '
    "init_cfg=dict(type='Pretrained', prefix='backbone.', checkpoint=...) "
    'on the backbone) and train the rest')

#: How to fix a mismatch of a grouped CenterNet model.
GROUPED_HEAD_FIX = (
    'an ungrouped CenterNet checkpoint does not load into a grouped config '
    '(grouping_file): convert it first with '
    '`python tools/model_converters/init_grouped_head.py CHECKPOINT GROUPING.json OUT.pth '
    '--config CONFIG` and load OUT.pth; otherwise ' + DEFAULT_FIX)

#: Mismatches listed in the message (all are counted).
_MAX_LISTED = 8


class CheckpointShapeError(RuntimeError):
    """A checkpoint tensor has another shape than the model's."""


def _shape(value) -> Optional[tuple]:
    shape = getattr(value, 'shape', None)
    return None if shape is None else tuple(shape)


def refuse_mismatched_shapes(module: nn.Module,
                             fix: str = DEFAULT_FIX) -> RemovableHandle:
    """Make ``module`` refuse state dicts with tensors of other shapes.

    Args:
        module (nn.Module): The component (head, backbone, estimator); its
            parameters and buffers, recursively, are compared with the
            state dict entries under the prefix it is loaded at.
        fix (str): What the user should do, appended to the message.

    Returns:
        RemovableHandle: removes the hook (``handle.remove()``).

    Raises (when a state dict is loaded):
        CheckpointShapeError: ``"HigherHRNetHead: the checkpoint does not
        fit this model: 2 tensor(s) with other shapes: 'head.x.weight'
        checkpoint (34, 32, 1, 1) vs model (28, 32, 1, 1); ... Fix: ..."``.
    """
    owner = type(module).__name__

    def hook(mod, state_dict, prefix, local_metadata, strict, missing_keys,
             unexpected_keys, error_msgs):
        bad = []
        for name, tensor in itertools.chain(mod.named_parameters(),
                                            mod.named_buffers()):
            key = prefix + name
            if key not in state_dict or isinstance(
                    tensor, nn.parameter.UninitializedParameter):
                continue
            theirs, ours = _shape(state_dict[key]), tuple(tensor.shape)
            if theirs != ours:
                bad.append(f'{key!r} checkpoint {theirs} vs model {ours}')
        if bad:
            listed = '; '.join(bad[:_MAX_LISTED])
            more = (f'; and {len(bad) - _MAX_LISTED} more'
                    if len(bad) > _MAX_LISTED else '')
            raise CheckpointShapeError(
                f'{owner}: the checkpoint does not fit this model: '
                f'{len(bad)} tensor(s) with other shapes: {listed}{more}. '
                f'Fix: {fix}')

    return module.register_load_state_dict_pre_hook(hook)

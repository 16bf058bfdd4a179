"""The authors' CenterNet ``multi_pose`` checkpoints -> ``CenterNetPoseEstimator``.

xingyizhou/CenterNet publishes human-pose models (``multi_pose_dla_3x.pth``,
and ``model_best.pth`` / ``model_last.pth`` of its own training) whose state
dict (``{'epoch': ..., 'state_dict': ...}``, keys possibly ``module.``-
prefixed) holds the DLA-34 backbone ``base.*``, the DCN up-path
``dla_up.*`` / ``ida_up.*`` and six head branches, each ``conv3x3 -> ReLU ->
conv1x1`` (``<name>.0``, ``<name>.2``):

=============  ===================  ============================
authors' head  channels             ``CenterNetPoseHead`` branch
=============  ===================  ============================
``hm``         1 (person centre)    ``center_heatmap``
``reg``        2 (centre offset)    ``center_offset``
``wh``         2 (box size)         ``box_size``
``hps``        34 (x, y per joint)  ``keypoint_reg``
``hm_hp``      17                   ``keypoint_heatmap``
``hp_offset``  2                    ``keypoint_offset``
=============  ===================  ============================

The channel layouts are the same (``hps``: x / y of joint ``k`` at ``2k`` /
``2k + 1``), so tensors are renamed, never permuted. The target model is the
identity-grouped, one-class, 17-keypoint ``CenterNetPoseEstimator`` with
``DLAUpNeck(conv_type='dcn')`` (config
``configs/centernet_grouping/coco/cn-pose_dla34-dcn_authors-3x_coco-512x512.py``).
The backbone part goes through :func:`~mmkp_ext.models.backbones.dla.
dla34_imagenet_to_dlanet` (which drops the unused ``level3/4.project``
tensors of the ucbdrive layout and the classifier). Batch-norm
``num_batches_tracked`` missing from older files is filled with 0.
"""
import os
from collections import OrderedDict
from typing import Dict, Mapping

import torch
from torch import Tensor

from .checkpoint_file import load_checkpoint_file

__all__ = [
    'AUTHOR_HEADS', 'convert_centernet_state_dict', 'check_against_config',
    'convert_centernet_checkpoint'
]

#: The authors' head name -> ``CenterNetPoseHead`` branch.
AUTHOR_HEADS = {
    'hm': 'center_heatmap',
    'reg': 'center_offset',
    'wh': 'box_size',
    'hps': 'keypoint_reg',
    'hm_hp': 'keypoint_heatmap',
    'hp_offset': 'keypoint_offset',
}
_HEAD_PARAMS = ('0.weight', '0.bias', '2.weight', '2.bias')


def _fill_num_batches_tracked(sd: 'OrderedDict[str, Tensor]') -> None:
    for key in [k for k in sd if k.endswith('.running_mean')]:
        nbt = key[:-len('running_mean')] + 'num_batches_tracked'
        sd.setdefault(nbt, torch.tensor(0, dtype=torch.long))


def convert_centernet_state_dict(
        state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """Rename a CenterNet ``multi_pose`` DLA-34 state dict to
    ``CenterNetPoseEstimator`` keys (``backbone.*``, ``neck.*``,
    ``head.<branch>.*``).

    Raises:
        TypeError: not a mapping of names to tensors.
        KeyError: listing the keys that have no counterpart (e.g. a
            ``ctdet`` or ResNet checkpoint) or head tensors that are missing.
    """
    from mmkp_ext.models.backbones.dla import dla34_imagenet_to_dlanet
    if not isinstance(state_dict, Mapping):
        raise TypeError('state_dict must be a mapping of parameter names to '
                        f'tensors, got {type(state_dict).__name__}')
    sd = OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in state_dict.items())
    base, out, unmapped = OrderedDict(), OrderedDict(), []
    for key, value in sd.items():
        if not isinstance(value, Tensor):
            raise TypeError(f'{key!r} holds a {type(value).__name__}, not a '
                            'tensor')
        top, _, rest = key.partition('.')
        if top == 'base':
            base[rest] = value
        elif top in ('dla_up', 'ida_up'):
            out[f'neck.{key}'] = value
        elif top in AUTHOR_HEADS and rest in _HEAD_PARAMS + (
                '0.num_batches_tracked', ):
            out[f'head.{AUTHOR_HEADS[top]}.{rest}'] = value
        else:
            unmapped.append(key)
    if unmapped:
        raise KeyError(
            f'{len(unmapped)} key(s) of the CenterNet checkpoint have no '
            f'counterpart in CenterNetPoseEstimator: {unmapped[:12]}'
            f'{" ..." if len(unmapped) > 12 else ""} (expected base.*, '
            f'dla_up.*, ida_up.* and the heads {sorted(AUTHOR_HEADS)}: a '
            'multi_pose DLA-34 checkpoint)')
    missing = [
        f'{h}.{p}' for h in AUTHOR_HEADS for p in _HEAD_PARAMS
        if f'head.{AUTHOR_HEADS[h]}.{p}' not in out
    ]
    if missing:
        raise KeyError(f'the checkpoint lacks the head tensors {missing}; a '
                       'multi_pose checkpoint has all six heads')
    if not base:
        raise KeyError('the checkpoint has no backbone keys (base.*)')
    try:
        backbone = dla34_imagenet_to_dlanet(base)
    except ValueError as err:
        raise KeyError(f'the backbone (base.*) is not DLA-34: {err}') from err
    result = OrderedDict((f'backbone.{k}', v) for k, v in backbone.items())
    result.update(out)
    _fill_num_batches_tracked(result)
    return result


def check_against_config(converted: Mapping[str, Tensor],
                         config: str) -> None:
    """Build the model of ``config`` and load ``converted`` with
    ``strict=True``; raises ``ValueError`` naming missing / unexpected keys
    and shape mismatches."""
    from mmkp_ext.analysis import build_model_from_config
    model, _ = build_model_from_config(config)
    own = model.state_dict()
    missing = sorted(set(own) - set(converted))
    unexpected = sorted(set(converted) - set(own))
    shapes = [
        f'{k}: checkpoint {tuple(converted[k].shape)} vs model '
        f'{tuple(own[k].shape)}' for k in sorted(set(own) & set(converted))
        if tuple(own[k].shape) != tuple(converted[k].shape)
    ]
    if missing or unexpected or shapes:
        raise ValueError(
            f'the converted checkpoint does not fit {config}: missing '
            f'{missing[:8]}, unexpected {unexpected[:8]}, shape mismatches '
            f'{shapes[:8]}')
    model.load_state_dict(converted, strict=True)


def convert_centernet_checkpoint(src: str, dst: str,
                                 config: str = None) -> Dict[str, int]:
    """Convert the checkpoint file ``src`` and save ``{'state_dict': ...,
    'meta': {...}}`` to ``dst`` (loadable with ``load_from`` /
    ``tools/test.py``). With ``config``, the result is first loaded strictly
    into that config's model (:func:`check_against_config`); nothing is
    written if it does not fit. Returns counts (``converted`` tensors,
    ``epoch`` of the source when known, else -1)."""
    ckpt, state_dict = load_checkpoint_file(src)
    converted = convert_centernet_state_dict(state_dict)
    if config is not None:
        check_against_config(converted, config)
    epoch = ckpt.get('epoch') if isinstance(ckpt.get('epoch'), int) else -1
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    torch.save(
        dict(state_dict=converted,
             meta=dict(converted_from=os.path.basename(src),
                       source_epoch=epoch)), dst)
    return dict(converted=len(converted), epoch=epoch)

"""Ungrouped CenterNet checkpoint -> checkpoint of the grouped model.

The torch side of the grouping toolkit: reads and writes mmengine
checkpoints; the row maths is numpy (:func:`mmkp_ext.grouping.group_rows`).

In an ungrouped ``CenterNetPoseHead`` the last convolution of the keypoint
regression branch (``<prefix>keypoint_reg.2``) has ``2K`` output rows (x / y
of keypoint ``k`` at ``2k`` / ``2k+1``) and that of the keypoint heatmap
branch (``<prefix>keypoint_heatmap.2``) ``K`` rows. The grouped head's rows
are the member means (weights and biases; x and y separately); every other
tensor is copied unchanged, so the result loads into the grouped model with
``strict=True``. Given the grouped model's state dict (``model_state``, e.g.
from :func:`grouped_model_state` of the grouped config), the result is
checked against it before anything is written: a checkpoint whose other
tensors do not fit (another backbone width, another head_conv, another
number of categories) is refused with every difference named.
"""
import os
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Union

import numpy as np
import torch

from mmkp_ext.grouping import group_rows, load_grouping

from .checkpoint_file import load_checkpoint_file

__all__ = [
    'LAST_CONVS', 'load_checkpoint_file', 'find_head_prefix',
    'read_head_rows', 'group_head_state_dict', 'convert_checkpoint',
    'check_fits_model', 'grouped_model_state'
]

#: Branch -> (module path of its last convolution, grouping field, kind).
LAST_CONVS = {
    'keypoint_reg': ('keypoint_reg.2', 'reg_group', 'reg'),
    'keypoint_heatmap': ('keypoint_heatmap.2', 'hm_group', 'hm'),
}




def find_head_prefix(state_dict: Mapping, prefix: Optional[str] = None) -> str:
    """The key prefix of the CenterNet head (``'head.'`` in an mmpose
    estimator), found from the keypoint branches' last convolutions.

    Raises:
        KeyError: the keys are absent (with ``prefix``) or not found at all,
            or found under several prefixes; the message names the keys.
    """
    suffix = LAST_CONVS['keypoint_reg'][0] + '.weight'
    if prefix is not None:
        missing = [
            prefix + conv + '.' + p for conv, _, _ in LAST_CONVS.values()
            for p in ('weight', 'bias') if prefix + conv + '.' + p not in
            state_dict
        ]
        if missing:
            raise KeyError(f'the checkpoint lacks the head keys {missing} '
                           f'(prefix {prefix!r}); is it a CenterNetPoseHead '
                           'checkpoint?')
        return prefix
    found = sorted(k[:-len(suffix)] for k in state_dict if k.endswith(suffix))
    if not found:
        some = list(state_dict)[:5]
        raise KeyError(
            f'no key ending in {suffix!r} (nor keypoint_heatmap.2.*): the '
            'checkpoint has no CenterNetPoseHead keypoint branches (first '
            f'keys: {some})')
    if len(found) > 1:
        raise KeyError(f'CenterNet head keys under several prefixes {found}; '
                       'pass prefix=')
    return find_head_prefix(state_dict, found[0])


def _numpy(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else \
        np.asarray(t)


def read_head_rows(state_dict: Mapping,
                   prefix: Optional[str] = None) -> Dict[str, np.ndarray]:
    """Weights and biases of the two keypoint branches' last convolutions
    as numpy arrays: ``reg_weight`` ``(2K, C, 1, 1)``, ``reg_bias``
    ``(2K,)``, ``hm_weight`` ``(K, C, 1, 1)``, ``hm_bias`` ``(K,)``."""
    prefix = find_head_prefix(state_dict, prefix)
    out = {}
    for conv, _, kind in LAST_CONVS.values():
        for p in ('weight', 'bias'):
            out[f'{kind}_{p}'] = _numpy(state_dict[f'{prefix}{conv}.{p}'])
    return out


def group_head_state_dict(state_dict: Mapping,
                          grouping: Union[str, os.PathLike, Mapping],
                          prefix: Optional[str] = None) -> 'OrderedDict':
    """State dict of the grouped model: the keypoint branches' last rows
    replaced by group means, every other tensor copied.

    Args:
        state_dict: ungrouped model state dict (tensors).
        grouping: grouping JSON path or dict.
        prefix (str, optional): head key prefix (found when ``None``).

    Raises:
        KeyError: head keys absent.
        ValueError: the checkpoint's keypoint count differs from the
            grouping's, or the checkpoint is already grouped; the message
            names both numbers.
    """
    prefix = find_head_prefix(state_dict, prefix)
    g = load_grouping(grouping)
    k = g['num_keypoints']
    hm_rows = state_dict[prefix + LAST_CONVS['keypoint_heatmap'][0] +
                         '.weight'].shape[0]
    reg_rows = state_dict[prefix + LAST_CONVS['keypoint_reg'][0] +
                          '.weight'].shape[0]
    if hm_rows != k or reg_rows != 2 * k:
        raise ValueError(
            f'the checkpoint head has {hm_rows} keypoint heatmap channels and '
            f'{reg_rows} regression channels, but the grouping is for {k} '
            f'keypoints (an ungrouped head for it has {k} and {2 * k}); the '
            'grouping and the checkpoint do not match')
    out = OrderedDict((key, value) for key, value in state_dict.items())
    for conv, field, kind in LAST_CONVS.values():
        wkey, bkey = f'{prefix}{conv}.weight', f'{prefix}{conv}.bias'
        w, b = state_dict[wkey], state_dict[bkey]
        gw, gb = group_rows(_numpy(w), _numpy(b), g[field], kind, name=wkey)
        out[wkey] = torch.from_numpy(np.ascontiguousarray(gw)).to(w.dtype)
        out[bkey] = torch.from_numpy(np.ascontiguousarray(gb)).to(b.dtype)
    return out


#: Differences listed per kind in :func:`check_fits_model` (all counted).
_MAX_LISTED = 8


def _listed(items) -> str:
    more = len(items) - _MAX_LISTED
    return ', '.join(items[:_MAX_LISTED]) + (f' and {more} more'
                                             if more > 0 else '')


def check_fits_model(state_dict: Mapping, model_state: Mapping,
                     source: str = 'the checkpoint') -> None:
    """Check that ``state_dict`` loads into a model with ``model_state``
    under ``strict=True``: the same keys and the same tensor shapes.

    Raises:
        ValueError: naming the tensors of other shapes (both shapes), the
            keys the model needs but ``state_dict`` lacks, and the keys
            the model does not have (at most 8 of each listed, all counted).
    """
    shapes = [
        f'{k!r} {tuple(v.shape)} vs model {tuple(model_state[k].shape)}'
        for k, v in state_dict.items()
        if k in model_state and tuple(v.shape) != tuple(model_state[k].shape)
    ]
    missing = [repr(k) for k in model_state if k not in state_dict]
    extra = [repr(k) for k in state_dict if k not in model_state]
    problems = []
    if shapes:
        problems.append(f'{len(shapes)} tensor(s) of other shapes: '
                        f'{_listed(shapes)}')
    if missing:
        problems.append(f'{len(missing)} tensor(s) of the model missing: '
                        f'{_listed(missing)}')
    if extra:
        problems.append(f'{len(extra)} tensor(s) the model does not have: '
                        f'{_listed(extra)}')
    if problems:
        raise ValueError(
            f'{source} does not fit the grouped model: ' +
            '; '.join(problems) + '. It is not an ungrouped checkpoint of '
            'the same architecture as the grouped config (backbone, '
            'head_conv, categories); nothing was written')


def grouped_model_state(config: Union[str, os.PathLike],
                        grouping: Union[str, os.PathLike]) -> 'OrderedDict':
    """State dict (random weights) of the model of ``config`` with its
    head's ``grouping_file`` set to ``grouping`` (and without its decoder,
    which holds no tensors): the model the converted checkpoint is for.
    Weights are not initialised from pretrained files (nothing is
    downloaded)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmpose.registry import MODELS
    cfg = Config.fromfile(os.fspath(config))
    head = cfg.model.get('head')
    if head is None or head.get('type') != 'CenterNetPoseHead':
        got = head.get('type') if head is not None else None
        raise ValueError(f'{os.fspath(config)!r}: model.head is not a '
                         f'CenterNetPoseHead (got {got})')
    head['grouping_file'] = os.fspath(grouping)
    head.pop('decoder', None)  # holds no tensors; its grouping may differ
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(cfg.model)
    return model.state_dict()


def convert_checkpoint(src: Union[str, os.PathLike],
                       grouping: Union[str, os.PathLike],
                       dst: Union[str, os.PathLike],
                       prefix: Optional[str] = None,
                       model_state: Optional[Mapping] = None) -> dict:
    """Write the grouped-model checkpoint of ``src`` to ``dst``.

    The output holds ``state_dict`` and ``meta`` (the source's meta, plus
    ``grouping_init`` naming the source and the grouping); optimizer,
    scheduler and message-hub states are dropped (their shapes belong to
    the ungrouped model), so use it with ``load_from``, not ``--resume``.

    Args:
        model_state (Mapping, optional): State dict of the grouped model
            (:func:`grouped_model_state`); when given, the result must fit
            it exactly (:func:`check_fits_model`) or nothing is written.

    Returns:
        dict: summary (``prefix``, ``num_keypoints``, group counts, number
        of copied tensors, ``checked``: whether ``model_state`` was given).

    Raises:
        ValueError: the result does not fit ``model_state`` (or see
            :func:`group_head_state_dict`).
    """
    ckpt, state = load_checkpoint_file(src)
    prefix = find_head_prefix(state, prefix)
    g = load_grouping(grouping)
    new_state = group_head_state_dict(state, g, prefix)
    if model_state is not None:
        check_fits_model(new_state, model_state,
                         f'checkpoint {os.fspath(src)!r}')
    meta = dict(ckpt.get('meta') or {})
    meta['grouping_init'] = dict(
        source_checkpoint=os.fspath(src),
        grouping=os.fspath(grouping)
        if not isinstance(grouping, Mapping) else g['method'],
        num_keypoints=g['num_keypoints'],
        num_reg_groups=max(g['reg_group']) + 1,
        num_hm_groups=max(g['hm_group']) + 1)
    dst = os.fspath(dst)
    if os.path.dirname(dst):
        os.makedirs(os.path.dirname(dst), exist_ok=True)
    torch.save(dict(meta=meta, state_dict=new_state), dst)
    return dict(
        prefix=prefix,
        num_keypoints=g['num_keypoints'],
        num_reg_groups=meta['grouping_init']['num_reg_groups'],
        num_hm_groups=meta['grouping_init']['num_hm_groups'],
        copied=len(new_state) - 4,
        checked=model_state is not None)

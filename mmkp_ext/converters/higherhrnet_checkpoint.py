"""Published HigherHRNet / SWAHR checkpoints -> ``BottomupPoseEstimator``
with ``HRNet`` backbone and :class:`~mmkp_ext.models.heads.HigherHRNetHead`.

Two source layouts:

``mmpose0x``
    mmpose 0.x model zoo (``AssociativeEmbedding`` detector with
    ``AEHigherResolutionHead``): ``backbone.*`` (mmpose's HRNet, the same
    names in 1.x) and ``keypoint_head.final_layers.*`` /
    ``keypoint_head.deconv_layers.*``.
``swahr``
    greatlog/SWAHR-HumanPose ``PoseHigherResolutionNet`` (optionally with a
    ``module.`` prefix from DataParallel): backbone tensors at the top level
    (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``layer1``, ``transition1-3``,
    ``stage2-4``), ``final_layers.*``, ``deconv_layers.*`` and the scale
    branches ``conv_scale_layers.*``.

Targets: ``backbone.*`` unchanged below the prefix, ``head.final_layers.*``,
``head.deconv_layers.*``, ``head.scale_layers.*`` (the head's modules carry
the published names and structure, so no tensor is reshaped).

Channel order: the authors' network returns per resolution
``[alpha (K), heatmaps (K), tags (K)]``, but the alpha channels come from the
separate ``conv_scale_layers`` module, ``final_layers[0]`` outputs
``[heatmaps, tags]`` and the deconvolution input is ``[feature, heatmaps,
tags]`` (their ``y[:, K:]``), exactly our head's order. So the ``[scale,
heatmap, tag]`` order needs no permutation of weights; our head returns the
three as separate tensors (checked by running both layouts side by side in
``tests/test_converters/test_higherhrnet_checkpoint.py``).

Every key is mapped or :class:`ValueError` lists the unmapped ones; the head
tensors are checked for consistent shapes (``K`` heatmaps, ``K`` or 1 tags,
deconvolution input = feature + first output), and
:func:`check_against_model` compares names and shapes with the model a config
builds (missing / unexpected / mismatched keys listed). BatchNorm
``num_batches_tracked`` counters absent from old checkpoints are filled with
0 (they do not affect inference) so that the result loads strictly.
"""
import os
import re
from collections import OrderedDict
from typing import Dict, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor

from .checkpoint_file import load_checkpoint_file

__all__ = [
    'LAYOUTS', 'detect_layout', 'convert_higherhrnet_state_dict',
    'check_against_model', 'load_checkpoint_file',
    'convert_higherhrnet_checkpoint'
]

LAYOUTS = ('mmpose0x', 'swahr')

# Top-level module names of the authors' HRNet backbone.
_SWAHR_BACKBONE = re.compile(r'^(conv[12]|bn[12]|layer1|transition[123]|'
                             r'stage[234])\.')
_SWAHR_HEAD = {
    'final_layers.': 'head.final_layers.',
    'deconv_layers.': 'head.deconv_layers.',
    'conv_scale_layers.': 'head.scale_layers.',
}
_MMPOSE0X_HEAD = {
    'keypoint_head.final_layers.': 'head.final_layers.',
    'keypoint_head.deconv_layers.': 'head.deconv_layers.',
}


def _strip_module(state_dict: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    if state_dict and all(k.startswith('module.') for k in state_dict):
        return {k[len('module.'):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def detect_layout(state_dict: Mapping[str, Tensor]) -> str:
    """``'mmpose0x'`` or ``'swahr'`` from the key names.

    Raises:
        ValueError: neither layout's head keys are present.
    """
    keys = list(_strip_module(state_dict))
    if any(k.startswith('keypoint_head.final_layers.') for k in keys):
        return 'mmpose0x'
    if any(k.startswith('final_layers.') for k in keys):
        return 'swahr'
    if any(k.startswith('head.final_layers.') for k in keys):
        raise ValueError('the state dict is already in mmkp_ext\'s '
                         'HigherHRNetHead layout (head.final_layers.*)')
    raise ValueError(
        'not a HigherHRNet checkpoint: found neither '
        '"keypoint_head.final_layers.*" (mmpose 0.x) nor "final_layers.*" '
        f'(SWAHR / official); first keys: {keys[:5]}')


def _map_key(key: str, layout: str) -> Optional[str]:
    if layout == 'mmpose0x':
        if key.startswith('backbone.'):
            return key
        table = _MMPOSE0X_HEAD
    else:
        if _SWAHR_BACKBONE.match(key):
            return 'backbone.' + key
        table = _SWAHR_HEAD
    for src, dst in table.items():
        if key.startswith(src):
            return dst + key[len(src):]
    return None


def _check_head(out: Mapping[str, Tensor]) -> None:
    """Consistency of the head tensors (K heatmaps everywhere, K or 1 tags
    at the first resolution, deconv input = feature + first output)."""
    finals = sorted(
        int(m.group(1)) for k in out
        for m in [re.match(r'head\.final_layers\.(\d+)\.weight$', k)] if m)
    if not finals or finals != list(range(len(finals))):
        raise ValueError(f'head.final_layers.*.weight missing or not '
                         f'numbered 0..n-1: {finals}')
    if len(finals) < 2:
        raise ValueError('only one final layer: not a HigherHRNet head '
                         '(needs the 1/2-resolution output)')
    K = out[f'head.final_layers.{finals[-1]}.weight'].shape[0]
    first = out['head.final_layers.0.weight']
    if first.shape[0] not in (2 * K, K + 1):
        raise ValueError(
            f'head.final_layers.0 has {first.shape[0]} output channels; '
            f'expected {2 * K} (K={K} heatmaps + K tags) or {K + 1} (one '
            'shared tag)')
    for i in finals[1:-1]:
        n = out[f'head.final_layers.{i}.weight'].shape[0]
        if n != K:
            raise ValueError(f'head.final_layers.{i} has {n} output channels,'
                             f' expected {K} heatmaps')
    deconv = out.get('head.deconv_layers.0.0.0.weight')
    if deconv is None:
        raise ValueError('head.deconv_layers.0.0.0.weight (the first '
                         'deconvolution) is missing')
    cin = first.shape[1]
    if deconv.shape[0] not in (cin + first.shape[0], cin):
        raise ValueError(
            f'head.deconv_layers.0.0.0 takes {deconv.shape[0]} channels; '
            f'expected {cin + first.shape[0]} (feature {cin} + first output '
            f'{first.shape[0]}) or {cin} (no concatenation)')
    for k, v in out.items():
        m = re.match(r'head\.scale_layers\.(\d+)\.([03])\.weight$', k)
        if m and v.shape[0] != K:
            raise ValueError(f'{k} has {v.shape[0]} output channels, '
                             f'expected {K} (one scale map per keypoint)')


def convert_higherhrnet_state_dict(state_dict: Mapping[str, Tensor],
                                   layout: str = 'auto'
                                   ) -> Tuple['OrderedDict[str, Tensor]',
                                              str]:
    """Map a published state dict to the mmkp_ext model's names.

    Args:
        state_dict: the source tensors (a checkpoint's ``state_dict``).
        layout: ``'mmpose0x'``, ``'swahr'`` or ``'auto'``
            (:func:`detect_layout`).

    Returns:
        tuple: the converted ``OrderedDict`` (source order kept) and the
        layout used.

    Raises:
        ValueError: unknown layout, keys that cannot be mapped (all listed),
            or inconsistent head shapes.
    """
    if layout == 'auto':
        layout = detect_layout(state_dict)
    elif layout not in LAYOUTS:
        raise ValueError(f'layout must be "auto" or one of {LAYOUTS}, got '
                         f'{layout!r}')
    state = _strip_module(state_dict) if layout == 'swahr' else dict(
        state_dict)
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    unmapped = []
    for key, value in state.items():
        new = _map_key(key, layout)
        if new is None:
            unmapped.append(key)
        else:
            out[new] = value
    if unmapped:
        raise ValueError(
            f'{len(unmapped)} keys of the {layout} checkpoint cannot be '
            f'mapped to HigherHRNetHead / HRNet: {unmapped}')
    _check_head(out)
    return out, layout


def check_against_model(converted: Mapping[str, Tensor],
                        reference: Mapping[str, Tensor],
                        fill_num_batches_tracked: bool = True
                        ) -> 'OrderedDict[str, Tensor]':
    """Compare names and shapes with a model's state dict.

    Args:
        converted: output of :func:`convert_higherhrnet_state_dict`.
        reference: ``model.state_dict()`` of the target model.
        fill_num_batches_tracked: add missing BatchNorm
            ``num_batches_tracked`` counters as 0.

    Returns:
        OrderedDict: ``converted`` (plus filled counters), loadable with
        ``strict=True``.

    Raises:
        ValueError: listing missing keys, unexpected keys and shape
            mismatches (e.g. a W48 checkpoint for a W32 config, or another
            number of keypoints).
    """
    out = OrderedDict(converted)
    if fill_num_batches_tracked:
        for k, v in reference.items():
            if k.endswith('num_batches_tracked') and k not in out:
                out[k] = torch.zeros_like(v)
    missing = [k for k in reference if k not in out]
    unexpected = [k for k in out if k not in reference]
    mismatched = [
        f'{k}: checkpoint {tuple(out[k].shape)} vs model '
        f'{tuple(reference[k].shape)}' for k in reference
        if k in out and tuple(out[k].shape) != tuple(reference[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f'missing in the checkpoint ({len(missing)}): '
                         f'{missing}')
        if unexpected:
            parts.append(f'not in the model ({len(unexpected)}): '
                         f'{unexpected}')
        if mismatched:
            parts.append(f'shape mismatches ({len(mismatched)}): '
                         f'{mismatched}')
        raise ValueError('converted checkpoint does not fit the model; ' +
                         '; '.join(parts))
    return out




def convert_higherhrnet_checkpoint(src: Union[str, os.PathLike],
                                   dst: Union[str, os.PathLike],
                                   config=None,
                                   layout: str = 'auto') -> dict:
    """Convert a checkpoint file and save ``dict(state_dict=..., meta=...)``.

    Args:
        src, dst: source and output paths.
        config: optional config path / ``Config`` of the target model; when
            given the result is checked against it and loaded strictly.
        layout: see :func:`convert_higherhrnet_state_dict`.

    Returns:
        dict: ``layout``, ``num_tensors``, ``checked`` (bool).
    """
    _, state = load_checkpoint_file(src)
    out, layout = convert_higherhrnet_state_dict(state, layout)
    checked = False
    if config is not None:
        from mmengine.config import Config
        from mmengine.registry import init_default_scope
        from mmpose.registry import MODELS
        import mmkp_ext  # noqa: F401  (registration)
        cfg = Config.fromfile(config) if isinstance(config, str) else config
        init_default_scope(cfg.get('default_scope', 'mmpose'))
        model = MODELS.build(cfg.model)
        out = check_against_model(out, model.state_dict())
        model.load_state_dict(out, strict=True)
        checked = True
    torch.save(
        dict(
            state_dict=out,
            meta=dict(
                converted_from=os.fspath(src),
                source_layout=layout,
                converter='mmkp_ext.converters.higherhrnet_checkpoint')),
        os.fspath(dst))
    return dict(layout=layout, num_tensors=len(out), checked=checked)

"""Merge the checkpoints of an ensemble's members into one checkpoint.

mmpose's stock ``tools/test.py`` loads one checkpoint into the model it
builds. For :class:`~mmkp_ext.models.pose_estimators.EnsemblePoseEstimator`
that is a state dict whose keys are the members' keys prefixed with
``members.<i>.``. :func:`merge_ensemble_checkpoints` builds the ensemble
from its config, loads every member's checkpoint into its member strictly
(so a checkpoint of the wrong model fails here, naming the member, not later
in test.py) and saves the ensemble's state dict with a meta block recording
where each part came from.
"""
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

import torch
from mmengine.config import Config

from mmkp_ext.safe_load import load_checkpoint_dict

__all__ = ['merge_ensemble_checkpoints']


def merge_ensemble_checkpoints(config: Union[str, Config],
                               out_file: str,
                               checkpoints: Optional[Sequence[str]] = None
                               ) -> List[str]:
    """Write one checkpoint for an ensemble config.

    Args:
        config: Path of a config (or the Config) whose ``model`` is an
            ``EnsemblePoseEstimator``.
        out_file: Where to save the merged checkpoint (``torch.save`` of
            ``dict(meta=..., state_dict=...)``, the layout mmengine writes).
        checkpoints: One checkpoint per member, in the config's order;
            ``None`` uses the members' ``checkpoint`` entries.

    Returns:
        list[str]: The member checkpoints used.

    Raises:
        ValueError: not an ensemble config, wrong number of checkpoints, a
            member without a checkpoint, or a checkpoint that does not fit
            its member.
    """
    # Registration of mmkp_ext's and mmpose's models (import inside: the
    # converters package is imported by mmkp_ext itself).
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS

    cfg = Config.fromfile(config) if isinstance(config, str) else config
    model_cfg = cfg.model
    if model_cfg.get('type') != 'EnsemblePoseEstimator':
        raise ValueError('the config\'s model must be an '
                         f'EnsemblePoseEstimator, got {model_cfg.get("type")}')
    members = model_cfg['members']
    if checkpoints is None:
        checkpoints = [m.get('checkpoint') for m in members]
    checkpoints = list(checkpoints)
    if len(checkpoints) != len(members):
        raise ValueError(f'{len(checkpoints)} checkpoints given for '
                         f'{len(members)} ensemble members')
    for i, path in enumerate(checkpoints):
        if not path:
            raise ValueError(f'no checkpoint for members[{i}]: give it in '
                             'the config or on the command line')
    model_cfg = model_cfg.copy()
    model_cfg['members'] = [
        dict(m, checkpoint=path) for m, path in zip(members, checkpoints)
    ]
    init_default_scope(cfg.get('default_scope', 'mmpose'))
    model = MODELS.build(model_cfg)
    model.init_weights()  # strict per-member loading

    first = load_checkpoint_dict(checkpoints[0], map_location='cpu')
    meta = dict(
        ensemble_members=[
            dict(checkpoint=str(p), weight=w, config=str(n))
            for p, w, n in zip(checkpoints, model.weights,
                               model.member_names)
        ])
    if isinstance(first, dict) and 'dataset_meta' in first.get('meta', {}):
        meta['dataset_meta'] = first['meta']['dataset_meta']
    out_dir = osp.dirname(osp.abspath(out_file))
    os.makedirs(out_dir, exist_ok=True)
    torch.save(dict(meta=meta, state_dict=model.state_dict()), out_file)
    return [str(p) for p in checkpoints]

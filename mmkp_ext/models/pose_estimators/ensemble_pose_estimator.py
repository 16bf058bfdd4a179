"""Ensemble of top-down pose estimators (HRNet++ challenge report).

The report averages the keypoint coordinates of its heatmap model and of its
soft-argmax regression model. :class:`EnsemblePoseEstimator` holds ``M``
top-down estimators, each built from its own config (file or dict) and
initialised from its own checkpoint, runs all of them on the same crops and
returns the weighted mean of their decoded keypoints (and of their keypoint
scores)::

    model = dict(
        type='EnsemblePoseEstimator',
        members=[
            dict(config='{{fileDirname}}/td-hm_....py',
                 checkpoint='work_dirs/hm/best.pth', weight=1.0),
            dict(config='{{fileDirname}}/td-sa_....py',
                 checkpoint='work_dirs/sa/best.pth', weight=1.0),
        ],
        test_cfg=dict(flip_test=True,
                      tta=dict(scales=(0.8, 1.0, 1.2),
                               rotations=(-10.0, 10.0))))

Checkpoints: ``init_weights()`` loads each member's ``checkpoint`` strictly
(python API: ``model.init_weights()``). mmpose's stock ``tools/test.py`` takes
one checkpoint of the whole model: make it with
``tools/model_converters/merge_ensemble_checkpoint.py`` (keys ``members.<i>.<member key>``).

Flip test runs inside every member (each head fuses its own heatmaps with
the mirror image's, with the member's own ``flip_mode`` / ``shift_heatmap``);
``test_cfg['flip_test']`` of the ensemble, when given, overrides the
members'. ``test_cfg['tta']`` adds scale/rotation TTA
(:mod:`.topdown_tta`): every member sees all augmented crops in one forward,
the members are averaged per crop, then the crops are mapped back and
averaged.
"""
import copy
import os.path as osp
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.config import Config, ConfigDict
from mmengine.model import BaseModel
from mmengine.structures import InstanceData
from torch import Tensor, nn

from mmpose.models.pose_estimators import TopdownPoseEstimator
from mmpose.registry import MODELS
from mmpose.utils.typing import ConfigType, OptSampleList, SampleList

from mmkp_ext.safe_load import load_checkpoint_dict
from ..utils import refuse_mismatched_shapes
from .topdown_tta import TopdownTTAMixin, parse_tta_cfg, predict_topdown_crops

__all__ = ['EnsemblePoseEstimator', 'load_member_checkpoint']

_MEMBER_KEYS = ('config', 'model', 'checkpoint', 'weight')


def _member_model_cfg(spec: dict, index: int) -> dict:
    """The model config of one member spec (``config`` file or ``model``
    dict), as a plain dict."""
    if not isinstance(spec, dict):
        raise TypeError(f'members[{index}] must be a dict, got '
                        f'{type(spec).__name__}')
    unknown = set(spec) - set(_MEMBER_KEYS)
    if unknown:
        raise ValueError(f'members[{index}] has unknown keys '
                         f'{sorted(unknown)}; expected some of {_MEMBER_KEYS}')
    if ('config' in spec) == ('model' in spec):
        raise ValueError(f'members[{index}] needs exactly one of `config` '
                         '(a config file holding `model`) and `model` (a '
                         'model config dict)')
    if 'config' in spec:
        path = spec['config']
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'members[{index}].config {path!r} does not exist (relative '
                "paths are resolved from the working directory; use "
                "'{{fileDirname}}/...' for a path beside the ensemble config)")
        cfg = Config.fromfile(path)
        if 'model' not in cfg:
            raise ValueError(f'members[{index}].config {path!r} has no '
                             '`model`')
        model_cfg = cfg.model
    else:
        model_cfg = spec['model']
    if isinstance(model_cfg, ConfigDict):
        model_cfg = model_cfg.to_dict()
    return copy.deepcopy(dict(model_cfg))


def load_member_checkpoint(member: nn.Module, path: str,
                           name: str = 'member') -> None:
    """Load an mmengine checkpoint (or a bare state dict) into one member,
    strictly.

    Raises:
        ValueError: the checkpoint's keys or shapes do not match the member;
            the message names the file, the member and up to 10 keys.
    """
    ckpt = load_checkpoint_dict(path, map_location='cpu')
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict):
        raise ValueError(f'{path!r} holds no state dict')
    state = {(k[len('module.'):] if k.startswith('module.') else k): v
             for k, v in state.items()}
    try:
        missing, unexpected = member.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches raise even when not strict
        raise ValueError(f'checkpoint {path!r} does not fit {name}: '
                         f'{e}') from None
    if missing or unexpected:
        raise ValueError(
            f'checkpoint {path!r} does not fit {name}: '
            f'{len(missing)} missing keys {sorted(missing)[:10]}, '
            f'{len(unexpected)} unexpected keys {sorted(unexpected)[:10]}')


@MODELS.register_module()
class EnsemblePoseEstimator(TopdownTTAMixin, BaseModel):
    """Weighted average of top-down pose estimators, for testing.

    Args:
        members (list[dict]): One dict per model: ``config`` (path of a
            config file whose ``model`` is a top-down estimator) or
            ``model`` (the model config itself); ``checkpoint`` (optional,
            loaded by :meth:`init_weights`); ``weight`` (> 0, default 1).
            Weights are normalised to sum 1.
        data_preprocessor (dict, optional): Preprocessing shared by all
            members (they see the same crops). ``None``: the first member's.
            Members whose preprocessing differs from it are rejected.
        test_cfg (dict, optional): ``flip_test`` (overrides the members'),
            ``tta`` (see :func:`.topdown_tta.parse_tta_cfg`),
            ``output_keypoint_indices`` (as in mmpose).
        init_cfg (dict, optional): Unused (members are initialised from
            their checkpoints); kept for mmengine's interface.
        train_cfg (dict, optional): Must be ``None`` or empty: an ensemble
            is test-only. Accepted because ``mmpose.apis.init_model`` sets
            ``model.train_cfg = None`` on every config.

    Predictions: ``keypoints`` = sum_i w_i * keypoints_i, ``keypoint_scores``
    = sum_i w_i * scores_i, per keypoint, in crop pixels, then mapped to the
    image like ``TopdownPoseEstimator``.
    """

    def __init__(self,
                 members: Sequence[dict],
                 data_preprocessor: Optional[ConfigType] = None,
                 test_cfg: Optional[ConfigType] = None,
                 init_cfg: Optional[dict] = None,
                 train_cfg: Optional[ConfigType] = None):
        if train_cfg:
            raise ValueError('EnsemblePoseEstimator is test-only; train its '
                             f'members instead (got train_cfg={train_cfg!r})')
        if not isinstance(members, (list, tuple)) or not members:
            raise ValueError('members must be a non-empty list of member '
                             f'dicts, got {members!r}')
        model_cfgs = [_member_model_cfg(m, i) for i, m in enumerate(members)]
        pre_cfgs = [c.pop('data_preprocessor', None) for c in model_cfgs]
        if data_preprocessor is None:
            data_preprocessor = pre_cfgs[0]
        for i, pre in enumerate(pre_cfgs):
            if pre is not None and dict(pre) != dict(data_preprocessor):
                raise ValueError(
                    f'members[{i}] preprocesses its input differently '
                    f'({dict(pre)}) from the ensemble '
                    f'({dict(data_preprocessor)}); members must see the same '
                    'network input')
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        # A merged checkpoint must fit every member exactly (test only).
        refuse_mismatched_shapes(self)

        weights = []
        for i, m in enumerate(members):
            w = m.get('weight', 1.0)
            if isinstance(w, bool) or not isinstance(w, (int, float)) \
                    or not np.isfinite(w) or w <= 0:
                raise ValueError(f'members[{i}].weight must be a finite '
                                 f'number > 0, got {w!r}')
            weights.append(float(w))
        self.weights = [w / sum(weights) for w in weights]
        self.checkpoints = [m.get('checkpoint') for m in members]
        self.member_names = [
            m.get('config', f'members[{i}]') for i, m in enumerate(members)
        ]

        self.members = nn.ModuleList()
        for i, cfg in enumerate(model_cfgs):
            member = MODELS.build(cfg)
            if not isinstance(member, TopdownPoseEstimator) or \
                    not member.with_head:
                raise TypeError(
                    f'members[{i}] must be a top-down estimator with a head '
                    f'(TopdownPoseEstimator or a subclass), got '
                    f'{type(member).__name__}')
            self.members.append(member)

        sizes = {
            tuple(size) for size in (
                getattr(getattr(m.head, 'decoder', None), 'input_size', None)
                for m in self.members) if size is not None
        }
        if len(sizes) > 1:
            raise ValueError(f'members decode for different input sizes '
                             f'{sorted(sizes)}; they must share the crop')

        self.test_cfg = dict(test_cfg) if test_cfg else {}
        # Fail at build time on a bad tta config.
        parse_tta_cfg(self.test_cfg.get('tta'))

    def init_weights(self) -> None:
        """Load each member's ``checkpoint`` (strictly); members without one
        run their own ``init_weights``."""
        for i, (member, ckpt) in enumerate(zip(self.members,
                                               self.checkpoints)):
            if ckpt is None:
                member.init_weights()
            else:
                load_member_checkpoint(
                    member, ckpt, f'members[{i}] ({self.member_names[i]})')

    def member_test_cfg(self, index: int) -> dict:
        """The test config member ``index`` predicts with: its own, with
        ``flip_test`` from the ensemble's ``test_cfg`` when given, and
        without ``tta`` (TTA is done once, around the whole ensemble)."""
        cfg = dict(self.members[index].test_cfg)
        cfg.pop('tta', None)
        if 'flip_test' in self.test_cfg:
            cfg['flip_test'] = self.test_cfg['flip_test']
        return cfg

    def predict_crops(self, inputs: Tensor, data_samples: SampleList):
        """Weighted mean of the members' predictions in crop pixels.

        Args:
            inputs: ``(n, C, H, W)`` crops.
            data_samples: ``n`` samples.

        Returns:
            tuple: ``(instances, None)``, ``n`` InstanceData with
            ``keypoints`` ``(1, K, 2)`` and ``keypoint_scores`` ``(1, K)``
            (float32).
        """
        kpts, scores = 0.0, 0.0
        for i, (member, w) in enumerate(zip(self.members, self.weights)):
            insts, _ = predict_topdown_crops(member, inputs, data_samples,
                                             self.member_test_cfg(i))
            k = np.stack([np.asarray(p.keypoints) for p in insts])
            s = np.stack([np.asarray(p.keypoint_scores) for p in insts])
            if i and k.shape != kpts.shape:
                raise ValueError(
                    f'members[{i}] predicts keypoints of shape {k.shape}, '
                    f'members[0] {kpts.shape}')
            kpts = kpts + w * k.astype(np.float64)
            scores = scores + w * s.astype(np.float64)
        kpts = kpts.astype(np.float32)
        scores = scores.astype(np.float32)
        return [
            InstanceData(keypoints=k, keypoint_scores=s)
            for k, s in zip(kpts, scores)
        ], None

    def predict(self, inputs: Tensor, data_samples: SampleList) -> SampleList:
        """Ensemble predictions in image coordinates (``pred_instances`` as
        ``TopdownPoseEstimator`` writes them)."""
        tta = parse_tta_cfg(self.test_cfg.get('tta'))
        if tta is None:
            instances, fields = self.predict_crops(inputs, data_samples)
        else:
            instances, fields = self.tta_predict(inputs, data_samples, tta,
                                                 self.predict_crops)
        # Same crop-to-image mapping as the members (it reads only
        # self.test_cfg).
        return TopdownPoseEstimator.add_pred_to_datasample(
            self, instances, fields, data_samples)

    def forward(self,
                inputs: Union[Tensor, List[Tensor]],
                data_samples: OptSampleList = None,
                mode: str = 'tensor'):
        """``'predict'``: :meth:`predict`; ``'tensor'``: a tuple with each
        member's raw head output; ``'loss'`` is not supported (train the
        members with their own configs)."""
        if isinstance(inputs, list):
            inputs = torch.stack(inputs)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return tuple(m._forward(inputs) for m in self.members)
        if mode == 'loss':
            raise RuntimeError(
                'EnsemblePoseEstimator is for testing only: train each '
                'member with its own config, then merge the checkpoints '
                'with tools/model_converters/merge_ensemble_checkpoint.py')
        raise RuntimeError(f'Invalid mode {mode!r}; expected predict or '
                           'tensor')

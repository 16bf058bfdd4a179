"""Heads; importing registers them into ``mmpose.registry.MODELS``."""
from .centernet_pose_head import CenterNetPoseHead, group_flip_permutation
from .higherhrnet_head import HigherHRNetHead
from .poseur_head import PoseurHead
from .soft_argmax_head import (SoftArgmaxHead, soft_argmax_2d,
                               window_mass_scores)

__all__ = [
    'SoftArgmaxHead', 'soft_argmax_2d', 'window_mass_scores',
    'CenterNetPoseHead', 'group_flip_permutation'
]
__all__ += ['HigherHRNetHead']
__all__ += ['PoseurHead']

"""Backbones; importing registers them into ``mmpose.registry.MODELS``."""
from .dla import DLANet, dla34_imagenet_to_dlanet
from .hrnet_plus import HRNetPlus, load_hrnet_stage1
from .soft_gated_hourglass import SoftGatedHourglass, soft_gate_values

__all__ = ['DLANet', 'dla34_imagenet_to_dlanet']
__all__ += ['SoftGatedHourglass', 'soft_gate_values']
__all__ += ['HRNetPlus', 'load_hrnet_stage1']

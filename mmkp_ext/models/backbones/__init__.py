"""Backbones; importing registers them into ``mmpose.registry.MODELS``."""
from .dla import DLANet, dla34_imagenet_to_dlanet

__all__ = ['DLANet', 'dla34_imagenet_to_dlanet']

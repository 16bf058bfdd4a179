"""Necks; importing registers them into ``mmpose.registry.MODELS``."""
from .dla_up_neck import DLAUpNeck, bilinear_upsample_kernel

__all__ = ['DLAUpNeck', 'bilinear_upsample_kernel']

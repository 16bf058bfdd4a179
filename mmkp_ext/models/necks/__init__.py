"""Necks; importing registers them into ``mmpose.registry.MODELS``."""
from .dla_up_neck import DLAUpNeck, bilinear_upsample_kernel
from .subpixel_fusion import SubPixelFusion

__all__ = ['DLAUpNeck', 'bilinear_upsample_kernel']
__all__ += ['SubPixelFusion']

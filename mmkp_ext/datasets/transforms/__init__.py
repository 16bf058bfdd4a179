"""Data transforms; importing registers them into
``mmpose.registry.TRANSFORMS``."""
from .bottomup_ae_transforms import (BottomupIgnoreMask, polygons_to_mask,
                                     rle_to_mask)
from .centernet_transforms import INSTANCE_KEYS, CenterNetFilterInstances

__all__ = [
    'CenterNetFilterInstances', 'INSTANCE_KEYS', 'BottomupIgnoreMask',
    'rle_to_mask', 'polygons_to_mask'
]

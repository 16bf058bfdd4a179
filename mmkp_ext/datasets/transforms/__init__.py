"""Data transforms; importing registers them into
``mmpose.registry.TRANSFORMS``."""
from .centernet_transforms import INSTANCE_KEYS, CenterNetFilterInstances

__all__ = ['CenterNetFilterInstances', 'INSTANCE_KEYS']

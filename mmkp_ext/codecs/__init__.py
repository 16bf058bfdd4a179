"""Keypoint codecs; importing registers them into ``mmpose.registry.KEYPOINT_CODECS``."""
from .grouped_centernet_label import (DECODE_MODES, OUTPUT_KEYS,
                                      GroupedCenterNetLabel, draw_gaussians,
                                      gaussian_radius, resolve_grouping)

__all__ = [
    'GroupedCenterNetLabel', 'gaussian_radius', 'draw_gaussians',
    'resolve_grouping', 'OUTPUT_KEYS', 'DECODE_MODES'
]

"""Keypoint codecs; importing registers them into ``mmpose.registry.KEYPOINT_CODECS``."""
from ..grouping.layout import (class_channel_matrix, output_channels,
                               resolve_category_ranges, resolve_grouping)
from .grouped_centernet_label import (DECODE_MODES, OUTPUT_KEYS,
                                      GroupedCenterNetLabel)
from .multi_resolution_ae_label import (MultiResolutionAELabel,
                                        render_gaussian_heatmaps)
from .utils import draw_gaussians, gaussian_radius

__all__ = [
    'GroupedCenterNetLabel', 'gaussian_radius', 'draw_gaussians',
    'resolve_grouping', 'resolve_category_ranges', 'class_channel_matrix',
    'output_channels', 'OUTPUT_KEYS', 'DECODE_MODES',
    'MultiResolutionAELabel', 'render_gaussian_heatmaps'
]

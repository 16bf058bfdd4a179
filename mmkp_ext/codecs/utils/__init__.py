"""Target drawing and decode kernels of mmkp_ext's codecs (as mmpose keeps
its in ``mmpose/codecs/utils``)."""
from .centernet_decode import (NO_EVIDENCE_LOGIT, Heatmap, chunk_slices,
                               finite_outputs, local_max, nearest_peaks,
                               rescore_cells, values_at_cells)
from .centernet_targets import draw_gaussians, gaussian_radius

__all__ = [
    'NO_EVIDENCE_LOGIT', 'Heatmap', 'chunk_slices', 'finite_outputs',
    'local_max', 'nearest_peaks', 'rescore_cells', 'values_at_cells',
    'draw_gaussians', 'gaussian_radius'
]

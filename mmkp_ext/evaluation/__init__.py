"""Metrics; importing registers them into ``mmpose.registry.METRICS``."""
from .guarded_coco_metric import GuardedCocoMetric
from .multi_category_coco_metric import (SUMMARY_NAMES,
                                         MultiCategoryCocoMetric)
from .rescore_sigma_sweep import (best_rescore_setting, build_sweep_inputs,
                                  format_sweep_table, sweep_rescore_sigma,
                                  sweep_settings)

__all__ = ['GuardedCocoMetric', 'MultiCategoryCocoMetric', 'SUMMARY_NAMES']
__all__ += [
    'sweep_rescore_sigma', 'sweep_settings', 'best_rescore_setting',
    'format_sweep_table', 'build_sweep_inputs'
]

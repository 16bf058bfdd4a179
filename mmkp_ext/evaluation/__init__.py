"""Metrics; importing registers them into ``mmpose.registry.METRICS``."""
from .guarded_coco_metric import GuardedCocoMetric
from .multi_category_coco_metric import (SUMMARY_NAMES,
                                         MultiCategoryCocoMetric)

__all__ = ['GuardedCocoMetric', 'MultiCategoryCocoMetric', 'SUMMARY_NAMES']

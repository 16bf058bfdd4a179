"""Metrics; importing registers them into ``mmpose.registry.METRICS``."""
from .multi_category_coco_metric import (SUMMARY_NAMES,
                                         MultiCategoryCocoMetric)

__all__ = ['MultiCategoryCocoMetric', 'SUMMARY_NAMES']

"""Keypoint-grouping algorithms and the grouping JSON format (numpy / scipy / scikit-learn only, no torch)."""
from .grouping_file import (GROUPING_FIELDS, group_counts, identity_grouping,
                            inconsistent_pairs, load_grouping, save_grouping,
                            undecodable_pairs, validate_group)

__all__ = [
    'GROUPING_FIELDS', 'group_counts', 'identity_grouping',
    'inconsistent_pairs', 'load_grouping', 'save_grouping',
    'undecodable_pairs', 'validate_group'
]

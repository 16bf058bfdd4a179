"""Keypoint-grouping algorithms and the grouping JSON format (numpy / scipy / scikit-learn only, no torch)."""
from .auto import (DISTANCES, RESTRICT, auto_grouping, consensus_summary,
                   head_distances)
from .clustering import (LINKAGES, build_linkage, check_distances,
                         cluster_keypoints, cut, cut_all, merge_levels,
                         restrict_distances)
from .consensus import adjusted_rand_index, ari_curve, best_consensus_count
from .decodability import (ambiguity_matrix, decodable_frontier,
                           inconsistent_counts, keypoint_categories,
                           minimal_decodable, same_category_pairs)
from .distances import (euclidean_distances, head_row_features,
                        load_coco_annotations, mean_keypoint_offsets)
from .grouping_file import (GROUPING_FIELDS, group_counts, identity_grouping,
                            inconsistent_pairs, load_grouping, save_grouping,
                            undecodable_pairs, validate_group)
from .head_rows import group_rows, mean_matrix
from .layout import (DEEPFASHION2_CATEGORY_RANGES, KNOWN_LAYOUTS,
                     TOY_FASHION_CATEGORY_RANGES, class_channel_matrix,
                     get_category_keypoint_ranges, keypoint_category_matrix,
                     output_channels, resolve_category_ranges,
                     resolve_grouping)

__all__ = [
    'GROUPING_FIELDS', 'group_counts', 'identity_grouping',
    'inconsistent_pairs', 'load_grouping', 'save_grouping',
    'undecodable_pairs', 'validate_group', 'LINKAGES', 'build_linkage',
    'check_distances', 'cluster_keypoints', 'cut', 'cut_all',
    'merge_levels', 'restrict_distances', 'adjusted_rand_index', 'ari_curve',
    'best_consensus_count', 'ambiguity_matrix', 'decodable_frontier',
    'inconsistent_counts', 'keypoint_categories', 'minimal_decodable',
    'same_category_pairs', 'euclidean_distances', 'head_row_features',
    'load_coco_annotations', 'mean_keypoint_offsets', 'group_rows',
    'mean_matrix', 'DISTANCES', 'RESTRICT', 'auto_grouping',
    'consensus_summary', 'head_distances', 'DEEPFASHION2_CATEGORY_RANGES',
    'KNOWN_LAYOUTS', 'TOY_FASHION_CATEGORY_RANGES', 'class_channel_matrix',
    'get_category_keypoint_ranges', 'keypoint_category_matrix',
    'output_channels', 'resolve_category_ranges', 'resolve_grouping'
]

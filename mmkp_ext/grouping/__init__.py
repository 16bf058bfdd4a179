"""Keypoint-grouping algorithms and the grouping JSON format (numpy / scipy / scikit-learn only, no torch)."""

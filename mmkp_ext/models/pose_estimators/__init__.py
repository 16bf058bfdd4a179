"""Pose_estimators; importing registers them into ``mmpose.registry.MODELS``."""

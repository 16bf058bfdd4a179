"""Pose estimators; importing registers them into mmpose's MODELS."""
from .centernet_pose_estimator import CenterNetPoseEstimator

__all__ = ['CenterNetPoseEstimator']

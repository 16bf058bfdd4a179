"""Pose estimators; importing registers them into mmpose's MODELS."""
from .centernet_pose_estimator import CenterNetPoseEstimator
from .ensemble_pose_estimator import EnsemblePoseEstimator
from .topdown_tta import TopdownTTAPoseEstimator

__all__ = [
    'CenterNetPoseEstimator', 'EnsemblePoseEstimator', 'TopdownTTAPoseEstimator'
]

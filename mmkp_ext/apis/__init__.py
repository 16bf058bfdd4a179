"""High-level helpers over mmpose's APIs (image inference for any config)."""
from .image_inference import (check_score_thr, instance_scores, is_bottomup,
                              keep_confident, list_images, predict_image,
                              run_image_demo, sample_to_json)

__all__ = [
    'list_images', 'is_bottomup', 'instance_scores', 'check_score_thr',
    'keep_confident', 'predict_image', 'sample_to_json', 'run_image_demo'
]

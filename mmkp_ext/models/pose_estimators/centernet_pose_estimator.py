"""Bottom-up estimator for multi-class keypoint detection (CenterNet)."""
from itertools import zip_longest
from typing import Optional

import numpy as np

from mmpose.models.pose_estimators import BottomupPoseEstimator
from mmpose.registry import MODELS
from mmpose.utils.typing import InstanceList, PixelDataList, SampleList

__all__ = ['CenterNetPoseEstimator']


@MODELS.register_module()
class CenterNetPoseEstimator(BottomupPoseEstimator):
    """``BottomupPoseEstimator`` whose outputs keep the multi-class contract
    in image space.

    mmpose's ``BottomupPoseEstimator.add_pred_to_datasample`` already maps
    ``keypoints`` and ``bboxes`` from model-input pixels to image pixels and
    passes every other field (``category_id``, ``bbox_scores``) through. But
    it maps EVERY keypoint, so the keypoints a multi-class head leaves at
    ``(0, 0)`` with score 0 because they do not belong to the detected
    object's category come out at the image position of the input origin.
    This subclass maps the same way and keeps those keypoints at exactly
    ``(0, 0)``:

        image_xy = input_xy / input_size * input_scale + input_center
                   - input_scale / 2

    for keypoints (N, K, 2) and both corners of ``bboxes`` (N, 4, xyxy),
    with ``input_size`` (w, h), ``input_center`` and ``input_scale`` (2,)
    from the sample's metainfo (set by ``BottomupResize``). A keypoint counts
    as "not of the category" when the head gives it score exactly 0 at
    exactly ``(0, 0)``, the head's marking (``CenterNetPoseHead``);
    ``keypoints_visible`` defaults to ``keypoint_scores``. The head's
    ``category_id`` (N,), ``bbox_scores`` (N,) and any other field pass
    through unchanged. Training, ``extract_feat``, flip and multi-scale
    testing are those of ``BottomupPoseEstimator``.
    """

    def add_pred_to_datasample(self, batch_pred_instances: InstanceList,
                               batch_pred_fields: Optional[PixelDataList],
                               batch_data_samples: SampleList) -> SampleList:
        """Put each image's predictions, mapped to image pixels, into its
        data sample's ``pred_instances`` (and ``pred_fields``).

        Args:
            batch_pred_instances (list[InstanceData]): per image, the
                head's output in model-input pixels: ``keypoints``
                (N, K, 2), ``keypoint_scores`` (N, K), optionally
                ``bboxes`` (N, 4), ``bbox_scores`` (N,), ``category_id``
                (N,), ``keypoints_visible`` (N, K).
            batch_pred_fields (list[PixelData], optional): per-image
                fields (e.g. heatmaps), stored as ``pred_fields``.
            batch_data_samples (list[PoseDataSample]): the batch's samples
                with ``input_size``, ``input_center``, ``input_scale`` in
                their metainfo.

        Returns:
            list[PoseDataSample]: ``batch_data_samples`` with
            ``pred_instances`` set.
        """
        if len(batch_pred_instances) != len(batch_data_samples):
            raise ValueError(
                f'{len(batch_pred_instances)} prediction sets for '
                f'{len(batch_data_samples)} data samples')
        if batch_pred_fields is None:
            batch_pred_fields = []
        for pred_instances, pred_fields, data_sample in zip_longest(
                batch_pred_instances, batch_pred_fields, batch_data_samples):
            meta = data_sample.metainfo
            missing = [
                k for k in ('input_size', 'input_center', 'input_scale')
                if k not in meta
            ]
            if missing:
                raise ValueError(
                    f'data sample of image {meta.get("img_id")} lacks '
                    f'{missing} in its metainfo (BottomupResize sets them)')
            to_image = _InputToImage(meta['input_size'], meta['input_center'],
                                     meta['input_scale'])
            keypoints = np.asarray(pred_instances.keypoints)
            scores = np.asarray(pred_instances.keypoint_scores)
            if keypoints.ndim != 3 or scores.shape != keypoints.shape[:2]:
                raise ValueError(
                    'the head must give keypoints (N, K, 2) and '
                    f'keypoint_scores (N, K); got {keypoints.shape} and '
                    f'{scores.shape}')
            # The head's mark of a keypoint outside the object's category.
            absent = (scores == 0) & np.all(keypoints == 0, axis=-1)
            mapped = to_image(keypoints)
            mapped[absent] = 0
            pred_instances.keypoints = mapped
            if 'keypoints_visible' not in pred_instances:
                pred_instances.keypoints_visible = scores
            if 'bboxes' in pred_instances:
                bboxes = np.asarray(pred_instances.bboxes)
                pred_instances.bboxes = to_image(
                    bboxes.reshape(-1, 2, 2)).reshape(-1, 4)
            data_sample.pred_instances = pred_instances
            if pred_fields is not None:
                data_sample.pred_fields = pred_fields
        return batch_data_samples


class _InputToImage:
    """Affine map from model-input pixels to image pixels (the inverse of
    ``BottomupResize`` without rotation): ``xy / input_size * input_scale +
    input_center - input_scale / 2`` on arrays (..., 2)."""

    def __init__(self, input_size, input_center, input_scale) -> None:
        self.factor = np.asarray(input_scale, np.float64) / np.asarray(
            input_size, np.float64)
        self.offset = np.asarray(input_center, np.float64) - 0.5 * np.asarray(
            input_scale, np.float64)

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy)
        out = xy * self.factor + self.offset
        return out.astype(xy.dtype if xy.dtype.kind == 'f' else np.float64)

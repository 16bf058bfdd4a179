"""Bottom-up estimator for multi-class keypoint detection (CenterNet)."""
from typing import Optional

import numpy as np

from mmpose.models.pose_estimators import BottomupPoseEstimator
from mmpose.registry import MODELS
from mmpose.utils.typing import InstanceList, PixelDataList, SampleList

from ..utils import GROUPED_HEAD_FIX, refuse_mismatched_shapes

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
    This subclass validates the head's output, lets mmpose map it, then puts
    those keypoints back at exactly ``(0, 0)`` and keeps the head's float
    dtype (mmpose's mapping promotes to float64). The mapping is

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

    Loading a checkpoint with any tensor of another shape than the model's
    (e.g. an ungrouped checkpoint into a grouped config) raises
    :class:`~mmkp_ext.models.utils.CheckpointShapeError`, naming the fix
    (:func:`~mmkp_ext.models.utils.refuse_mismatched_shapes`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        refuse_mismatched_shapes(self, GROUPED_HEAD_FIX)

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
        absent_masks = []
        for pred_instances, data_sample in zip(batch_pred_instances,
                                               batch_data_samples):
            meta = data_sample.metainfo
            missing = [
                k for k in ('input_size', 'input_center', 'input_scale')
                if k not in meta
            ]
            if missing:
                raise ValueError(
                    f'data sample of image {meta.get("img_id")} lacks '
                    f'{missing} in its metainfo (BottomupResize sets them)')
            keypoints = np.asarray(pred_instances.keypoints)
            scores = np.asarray(pred_instances.keypoint_scores)
            if keypoints.ndim != 3 or scores.shape != keypoints.shape[:2]:
                raise ValueError(
                    'the head must give keypoints (N, K, 2) and '
                    f'keypoint_scores (N, K); got {keypoints.shape} and '
                    f'{scores.shape}')
            # The head's mark of a keypoint outside the object's category.
            absent_masks.append(((scores == 0)
                                 & np.all(keypoints == 0, axis=-1),
                                 _float_dtype(keypoints),
                                 _float_dtype(pred_instances.get('bboxes'))))
        # mmpose's own input -> image mapping of keypoints and boxes.
        batch_data_samples = super().add_pred_to_datasample(
            batch_pred_instances, batch_pred_fields, batch_data_samples)
        for data_sample, (absent, kpt_dtype, box_dtype) in zip(
                batch_data_samples, absent_masks):
            pred_instances = data_sample.pred_instances
            mapped = np.asarray(pred_instances.keypoints).astype(kpt_dtype)
            mapped[absent] = 0
            pred_instances.keypoints = mapped
            if 'bboxes' in pred_instances:
                pred_instances.bboxes = np.asarray(
                    pred_instances.bboxes).astype(box_dtype)
        return batch_data_samples


def _float_dtype(values) -> np.dtype:
    """The dtype to keep for mapped coordinates: the head's own float dtype
    (mmpose's mapping promotes to float64), float64 for integers."""
    if values is None:
        return np.dtype(np.float64)
    dtype = np.asarray(values).dtype
    return dtype if dtype.kind == 'f' else np.dtype(np.float64)

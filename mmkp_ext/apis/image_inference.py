"""Image inference for any mmkp_ext (or mmpose) config: the library side of
``tools/demo/image_demo.py``.

Top-down models run on person boxes (given, or the whole image); bottom-up
models (CenterNet, HigherHRNet / SWAHR) run on the whole image and their
instances are filtered by score before drawing, so a CenterNet model does not
draw all of its top-k candidates. Built on mmpose's own
:func:`mmpose.apis.init_model`, :func:`~mmpose.apis.inference_topdown`,
:func:`~mmpose.apis.inference_bottomup` and its ``PoseLocalVisualizer``.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import mmcv
import numpy as np
from mmpose.models import BottomupPoseEstimator
from mmpose.structures import PoseDataSample

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')


def list_images(path: str) -> List[str]:
    """``path`` itself when it is a file, else the images directly inside the
    folder ``path`` (sorted). Raises ``FileNotFoundError`` / ``ValueError``
    naming the path when there is nothing to read."""
    if osp.isfile(path):
        return [path]
    if not osp.isdir(path):
        raise FileNotFoundError(f'input {path!r} is neither an image file '
                                'nor a folder')
    files = sorted(
        osp.join(path, f) for f in os.listdir(path)
        if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise ValueError(f'folder {path!r} holds no image '
                         f'({", ".join(IMAGE_EXTENSIONS)})')
    return files


def is_bottomup(model) -> bool:
    """Whether ``model`` predicts every instance from the whole image."""
    return isinstance(model, BottomupPoseEstimator)


def instance_scores(sample: PoseDataSample) -> np.ndarray:
    """Per-instance score (N,): ``bbox_scores`` where the model gives them
    (CenterNet: the centre heatmap peak), else the mean keypoint score."""
    pred = sample.pred_instances
    if 'bbox_scores' in pred and len(pred.bbox_scores) == len(pred):
        return np.asarray(pred.bbox_scores, dtype=np.float64).reshape(-1)
    scores = np.asarray(pred.keypoint_scores, dtype=np.float64)
    return scores.reshape(len(pred), -1).mean(axis=1) if len(pred) else \
        np.zeros(0)


def check_score_thr(score_thr: float) -> None:
    """Raise ``ValueError`` unless ``score_thr`` lies in [0, 1]."""
    if not 0.0 <= score_thr <= 1.0:
        raise ValueError(f'score_thr must lie in [0, 1], got {score_thr}')


def keep_confident(sample: PoseDataSample,
                   score_thr: float) -> PoseDataSample:
    """Drop from ``sample.pred_instances`` the instances whose
    :func:`instance_scores` is below ``score_thr`` (in [0, 1]; bottom-up
    models, which return all their candidates). Returns ``sample``."""
    check_score_thr(score_thr)
    keep = instance_scores(sample) >= score_thr
    sample.pred_instances = sample.pred_instances[keep]
    return sample


def predict_image(model,
                  img: Union[str, np.ndarray],
                  bboxes: Optional[np.ndarray] = None,
                  score_thr: float = 0.3) -> PoseDataSample:
    """Predict the instances of one image.

    Args:
        model: an estimator from :func:`mmpose.apis.init_model`.
        img: image path or BGR array (H, W, 3).
        bboxes: top-down only: (N, 4) person boxes, xyxy in image pixels;
            ``None`` = the whole image as one box.
        score_thr: bottom-up only: instances whose :func:`instance_scores`
            is below this are dropped (top-down keeps one instance per box).

    Returns:
        PoseDataSample whose ``pred_instances`` hold ``keypoints`` (N, K, 2)
        in image pixels, ``keypoint_scores`` (N, K) and, where available,
        ``bboxes`` (N, 4) xyxy and ``bbox_scores`` (N,).
    """
    from mmpose.apis import inference_bottomup, inference_topdown
    from mmpose.structures import merge_data_samples
    check_score_thr(score_thr)
    if is_bottomup(model):
        if bboxes is not None:
            raise ValueError('bboxes are for top-down models; '
                             f'{type(model).__name__} is bottom-up')
        return keep_confident(inference_bottomup(model, img)[0], score_thr)
    if bboxes is not None:
        bboxes = np.asarray(bboxes, dtype=np.float32)
        if bboxes.ndim != 2 or bboxes.shape[1] != 4:
            raise ValueError('bboxes must have shape (N, 4) (xyxy), got '
                             f'{bboxes.shape}')
    return merge_data_samples(inference_topdown(model, img, bboxes))


def sample_to_json(sample: PoseDataSample) -> List[Dict]:
    """The predicted instances as JSON-ready dicts: ``keypoints`` (K x 2
    image pixels), ``keypoint_scores`` (K), ``bbox`` (xyxy) and
    ``bbox_score`` where present."""
    pred = sample.pred_instances
    out = []
    for i in range(len(pred)):
        inst = dict(keypoints=np.asarray(pred.keypoints[i]).tolist(),
                    keypoint_scores=np.asarray(
                        pred.keypoint_scores[i]).tolist())
        if 'bboxes' in pred:
            inst['bbox'] = np.asarray(pred.bboxes[i]).reshape(-1).tolist()
        if 'bbox_scores' in pred:
            inst['bbox_score'] = float(np.asarray(pred.bbox_scores[i]))
        out.append(inst)
    return out


def make_visualizer(model):
    """mmpose's visualiser of ``model.cfg`` (default ``PoseLocalVisualizer``)
    without saving backends, set to the model's dataset meta."""
    from mmpose.registry import VISUALIZERS
    vis_cfg = model.cfg.get('visualizer') or dict(
        type='PoseLocalVisualizer', name='visualizer')
    vis_cfg = dict(vis_cfg, save_dir=None)
    vis_cfg.pop('vis_backends', None)
    visualizer = VISUALIZERS.build(vis_cfg)
    visualizer.set_dataset_meta(model.dataset_meta)
    return visualizer


def write_outputs(path: str, sample: PoseDataSample, out_dir: str,
                  extra: dict, visualizer=None, kpt_thr: float = 0.3,
                  draw_bbox: bool = True) -> str:
    """Write ``out_dir/predictions/<stem>.json`` (``extra`` plus ``image``
    and ``instances`` = :func:`sample_to_json`) and, with a ``visualizer``,
    the drawn predictions ``out_dir/vis/<image name>``. Returns the JSON
    path."""
    stem = osp.splitext(osp.basename(path))[0]
    os.makedirs(osp.join(out_dir, 'predictions'), exist_ok=True)
    json_path = osp.join(out_dir, 'predictions', stem + '.json')
    with open(json_path, 'w') as f:
        json.dump(dict(extra, image=path, instances=sample_to_json(sample)),
                  f)
    if visualizer is not None:
        os.makedirs(osp.join(out_dir, 'vis'), exist_ok=True)
        img = mmcv.imread(path, channel_order='rgb')
        visualizer.add_datasample(
            stem, img, data_sample=sample, draw_gt=False,
            draw_bbox=draw_bbox and 'bboxes' in sample.pred_instances,
            kpt_thr=kpt_thr, show=False,
            out_file=osp.join(out_dir, 'vis', osp.basename(path)))
    return json_path


def run_image_demo(config: str,
                   checkpoint: Optional[str],
                   inputs: str,
                   out_dir: str,
                   device: str = 'cpu',
                   score_thr: float = 0.3,
                   kpt_thr: float = 0.3,
                   draw_bbox: bool = True,
                   cfg_options: Optional[dict] = None) -> Dict[str, str]:
    """Predict every image of ``inputs`` (a file or a folder) with the model
    of ``config`` + ``checkpoint`` and write ``out_dir/vis/<name>`` (drawn
    predictions) and ``out_dir/predictions/<stem>.json``
    (:func:`sample_to_json`). Returns {image path: JSON path}."""
    from mmpose.apis import init_model
    images = list_images(inputs)
    model = init_model(config, checkpoint, device=device,
                       cfg_options=cfg_options)
    visualizer = make_visualizer(model)
    written = {}
    for path in images:
        sample = predict_image(model, path, score_thr=score_thr)
        written[path] = write_outputs(
            path, sample, out_dir, dict(config=config, checkpoint=checkpoint),
            visualizer, kpt_thr=kpt_thr, draw_bbox=draw_bbox)
    return written


__all__: Sequence[str] = [
    'list_images', 'is_bottomup', 'instance_scores', 'check_score_thr',
    'keep_confident', 'predict_image', 'sample_to_json', 'make_visualizer', 'write_outputs', 'run_image_demo'
]

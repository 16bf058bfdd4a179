"""mmpose's own inference APIs on mmkp_ext configs (one per family, random
weights) and mmkp_ext.apis.image_inference / tools/demo/image_demo.py."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
from _helpers import REPO_ROOT, run_python

import mmkp_ext  # noqa: F401
from mmkp_ext import compat
from mmkp_ext.apis import (instance_scores, list_images, predict_image,
                           run_image_demo, sample_to_json)

CFG = osp.join(REPO_ROOT, 'configs')
TOPDOWN = {
    'ensemble_tta': 'hrnetpp/toy_persons/'
    'td-ensemble-hm-sa-tta_hrnetpp-w16-tiny_toy-persons-128x96.py',
    'hrnetpp_subpixel': 'hrnetpp/toy_persons/'
    'td-hm_hrnetpp-w16-tiny_1xb16-20e_toy-persons-128x96.py',
    'soft_argmax': 'soft_argmax/toy_persons/'
    'td-sa_res18-s8_1xb16-4e_toy-persons-64x48.py',
    'soft_gated': 'soft_gated/toy_persons/'
    'td-hm_softgated-hg2-c64_1xb16-10e_toy-persons-64x48.py',
    'poseur': 'poseur/toy_persons/'
    'poseur_res18-tiny_1xb16-40e_toy-persons-128x96.py',
}
BOTTOMUP = {
    'swahr': 'swahr/toy_persons/'
    'swahr_hrnet-w16-tiny_1xb16-36e_toy-persons-64x64.py',
    'centernet': 'centernet_grouping/toy_fashion/'
    'cn-pose_dla34-tiny_1xb16-80e_toy-fashion-128x128.py',
}


@pytest.fixture(scope='module')
def image(tmp_path_factory):
    rng = np.random.default_rng(0)
    img = (rng.random((90, 70, 3)) * 255).astype(np.uint8)
    path = tmp_path_factory.mktemp('img') / 'toy.png'
    cv2.imwrite(str(path), img)
    return str(path)


def _init(rel):
    from mmpose.apis import init_model
    return init_model(osp.join(CFG, rel), None, device='cpu')


@pytest.mark.parametrize('name', sorted(TOPDOWN))
def test_topdown_families_through_mmpose_apis(name, image):
    model = _init(TOPDOWN[name])
    boxes = np.array([[0, 0, 70, 90], [10, 20, 50, 80]], np.float32)
    sample = predict_image(model, image, bboxes=boxes)
    kpts = sample.pred_instances.keypoints
    assert kpts.shape[:1] == (2, ) and kpts.shape[2] == 2
    assert np.isfinite(kpts).all()
    # Top-down keypoints land in (around) their box, in image pixels: the
    # second, smaller box's keypoints stay near it.
    assert (kpts[1, :, 0] > 10 - 25).all() and (kpts[1, :, 0] < 50 + 25).all()
    assert (kpts[1, :, 1] > 20 - 30).all() and (kpts[1, :, 1] < 80 + 30).all()


@pytest.mark.parametrize('name', sorted(BOTTOMUP))
def test_bottomup_families_and_score_filter(name, image):
    from mmpose.apis import inference_bottomup
    model = _init(BOTTOMUP[name])
    full = inference_bottomup(model, image)[0]
    scores = instance_scores(full)
    assert len(scores) == len(full.pred_instances)
    thr = float(np.median(scores)) if len(scores) else 0.5
    kept = predict_image(model, image, score_thr=thr)
    assert len(kept.pred_instances) == int((scores >= thr).sum())
    if len(kept.pred_instances):
        assert np.isfinite(kept.pred_instances.keypoints).all()
    with pytest.raises(ValueError, match='bottom-up'):
        predict_image(model, image, bboxes=np.zeros((1, 4)))


def test_init_model_still_resets_backbone_init_cfg():
    """The ensemble fix leaves mmpose's branch for normal configs intact: a
    backbone pointing at a missing pretrained file still builds."""
    from mmpose.apis import init_model
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(CFG, TOPDOWN['soft_argmax']))
    cfg.model.backbone.init_cfg = dict(type='Pretrained',
                                       checkpoint='/nonexistent/r18.pth')
    model = init_model(cfg, None, device='cpu')
    assert model.cfg.model.backbone.init_cfg is None


def test_mmpose_inferencer_whole_image(image, tmp_path):
    from mmpose.apis import MMPoseInferencer
    for rel in (TOPDOWN['soft_argmax'], BOTTOMUP['centernet']):
        inferencer = MMPoseInferencer(pose2d=osp.join(CFG, rel),
                                      device='cpu', det_model='whole_image')
        out = list(inferencer(image, pred_out_dir=str(tmp_path / 'p')))
        preds = out[0]['predictions'][0]
        assert len(preds) >= 1
        assert np.isfinite(np.asarray(preds[0]['keypoints'])).all()


def test_mmpose_inferencer_detector_message():
    """mmpose says "MMDetection (v3.0.0 or above) is required" even with
    mmdet installed; we name the real reason and the settings that work."""
    error = compat.mmdet_inferencer_error()
    if error is None:
        pytest.skip('mmdet detectors import here (full mmcv): mmpose builds '
                    'its default detector, which needs downloaded weights')
    from mmpose.apis import MMPoseInferencer
    cfg = osp.join(CFG, 'soft_argmax/coco/td-sa_hrnet-w32_8xb64-20e_coco-'
                   '256x192.py')
    with pytest.raises(RuntimeError, match="det_model='whole_image'") as e:
        MMPoseInferencer(pose2d=cfg, device='cpu')
    assert error.split(':')[0] in str(e.value)


def test_run_image_demo_writes_vis_and_json(image, tmp_path):
    written = run_image_demo(osp.join(CFG, BOTTOMUP['centernet']), None,
                             osp.dirname(image), str(tmp_path),
                             score_thr=0.0)
    assert list(written) == [image]
    with open(written[image]) as f:
        data = json.load(f)
    assert data['image'] == image
    inst = data['instances']
    assert len(inst) > 0 and len(inst[0]['keypoints'][0]) == 2
    assert 'bbox' in inst[0] and 'bbox_score' in inst[0]
    assert osp.isfile(tmp_path / 'vis' / osp.basename(image))


def test_list_images_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='neither'):
        list_images(str(tmp_path / 'missing'))
    with pytest.raises(ValueError, match='holds no image'):
        list_images(str(tmp_path))


def test_sample_to_json_round_trip():
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample
    s = PoseDataSample()
    s.pred_instances = InstanceData(
        keypoints=np.arange(12, dtype=np.float32).reshape(2, 3, 2),
        keypoint_scores=np.full((2, 3), 0.5, np.float32))
    out = sample_to_json(s)
    assert out[1]['keypoints'] == [[6, 7], [8, 9], [10, 11]]
    assert out[0]['keypoint_scores'] == [0.5] * 3 and 'bbox' not in out[0]


def test_image_demo_cli(tmp_path, image):
    help_text = run_python(['tools/demo/image_demo.py', '--help']).stdout
    assert 'Examples:' in help_text and 'predictions/<stem>.json' in help_text
    proc = run_python(['tools/demo/image_demo.py', 'cfg.py', 'none',
                       str(tmp_path / 'nope')], check=False)
    assert proc.returncode != 0 and 'neither an image file' in proc.stdout

"""mmpose's stock train.py / test.py on the grouped CenterNet configs.

Two real runs through ``tools/train.py`` and ``tools/test.py`` (our thin
wrappers over the scripts in the mmpose wheel), each two iterations and one
validation (whether the model learns is tests/test_learning/'s concern):

* the toy fashion config on a generated 8-image toy fashion set;
* the DeepFashion2 config on the real two-image fixture in
  ``../shared/data/deepfashion2`` (skipped when absent), shrunk by a child
  config to a tiny DLA at 128x128 without ImageNet weights.

Each run must log the six losses (finite) at every iteration and write a
checkpoint holding the head it was configured with, in which the masked
keypoint loss left exactly the heatmap channels of categories absent from
the training images at their initial bias. test.py must reload that
checkpoint, print the same overall and per-category AP as the validation at
the end of training, and dump predictions that keep the multi-class
contract; on DeepFashion2 they must equal what the checkpoint, loaded here,
predicts.
"""
import math
import os.path as osp
import pickle
import re
import textwrap

import numpy as np
import pytest
import torch
from _helpers import (REPO_ROOT, load_json, run_python, shared_data_dir,
                      toy_run_options)
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint

import mmkp_ext  # noqa: F401
from mmkp_ext.datasets import (get_category_keypoint_ranges,
                               keypoint_category_matrix, make_toy_dataset)
from mmkp_ext.utils import parse_metric_values
from mmpose.registry import DATASETS, MODELS

TOY_CONFIG = osp.join(
    REPO_ROOT, 'configs/centernet_grouping/toy_fashion/'
    'cn-pose_dla34-tiny_1xb16-80e_toy-fashion-128x128.py')
DF2_CONFIG = osp.join(
    REPO_ROOT, 'configs/centernet_grouping/deepfashion2/'
    'cn-pose_dla34_8xb32-140e_deepfashion2-512x512.py')
LOSSES = ('loss_center_heatmap', 'loss_center_offset', 'loss_box_size',
          'loss_keypoint_reg', 'loss_keypoint_heatmap', 'loss_keypoint_offset')
# one thread per run: other jobs share the machine
ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')

# The DeepFashion2 config with a tiny model at 128x128 and no ImageNet
# weights; everything else (dataset class, pipeline, loss, metric) is the
# config's own. The codec appears in the head and in the train pipeline, so
# both are restated.
DF2_TINY = '''
_base_ = [{base!r}]
tiny = (8, 16, 32, 64, 128, 256)
input_size = (128, 128)
codec = dict(
    type='GroupedCenterNetLabel',
    input_size=input_size,
    heatmap_size=(32, 32),
    num_keypoints=294,
    category_keypoints='deepfashion2',
    decode_mode='rescore',
    rescore_sigma=2.0,
    topk=20)
model = dict(
    backbone=dict(channels=tiny, init_cfg=None),
    neck=dict(in_channels=tiny, out_channels=32),
    head=dict(in_channels=32, head_conv=16, decoder=codec))
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImage'),
    dict(type='BottomupRandomAffine', input_size=input_size,
         shift_factor=0.1, rotate_factor=0, scale_factor=(0.6, 1.4)),
    dict(type='RandomFlip', direction='horizontal'),
    dict(type='CenterNetFilterInstances', category_keypoints='deepfashion2'),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]))
val_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImage'),
    dict(type='BottomupResize', input_size=input_size),
    dict(type='PackPoseInputs'),
]))
test_dataloader = val_dataloader
'''


def _options(data_root, train_ann, val_ann, img_prefixes, batch_size):
    """--cfg-options for a short CPU run: 1 epoch, then validation and a
    checkpoint, no worker processes; the splits' annotation files and image
    folders as given (the DeepFashion2 fixture is not in the toy layout)."""
    opts = toy_run_options(data_root, batch_size, ann=val_ann) + [
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1'
    ]
    for split, ann in (('train', train_ann), ('val', val_ann),
                       ('test', val_ann)):
        opts += [
            f'{split}_dataloader.dataset.ann_file={ann}',
            f'{split}_dataloader.dataset.data_prefix.img={img_prefixes[split]}'
        ]
    return opts


def _train_and_test(config, work, opts):
    """train.py, then test.py on the last checkpoint with its predictions
    dumped to ``work/preds.pkl``; returns both logs and the checkpoint
    path."""
    train = run_python(
        ['tools/train.py', config, '--work-dir',
         str(work), '--cfg-options', *opts],
        env=ENV).stdout
    ckpt = osp.join(work, 'epoch_1.pth')
    # mmpose's test.py turns test_evaluator into [evaluator, DumpResults]
    # for --dump BEFORE it applies --cfg-options, so address it by index.
    test_opts = [
        o.replace('test_evaluator.', 'test_evaluator.0.', 1) for o in opts
    ]
    test = run_python([
        'tools/test.py', config, ckpt, '--work-dir',
        str(work / 'test'), '--dump',
        str(work / 'preds.pkl'), '--cfg-options', *test_opts
    ],
                      env=ENV).stdout
    return train, test, ckpt


def _check_losses(log, iterations):
    """Every loss logged once per iteration, all finite."""
    lines = [line for line in log.splitlines() if 'Epoch(train)' in line]
    assert len(lines) == iterations, log[-3000:]
    for line in lines:
        for name in LOSSES:
            found = re.search(rf'\b{name}: (\S+)', line)
            assert found, (name, line)
            assert math.isfinite(float(found.group(1))), line


def _check_metrics(train_log, test_log, prefix, categories):
    """Training validated once and test.py once; test.py printed the
    overall AP / AR and the per-category AP of ``categories`` exactly as
    the last validation did (same checkpoint, same images), each in
    [0, 1]."""
    for key in [f'{prefix}/AP', f'{prefix}/AR'
                ] + [f'{prefix}/AP_{c}' for c in categories]:
        val = parse_metric_values(train_log, key)
        test = parse_metric_values(test_log, key)
        assert len(val) == 1 and len(test) == 1, (key, val, test)
        assert 0.0 <= test[0] <= 1.0
        assert test[0] == val[-1], (key, val, test)


def _head_weights(ckpt, present_categories, ranges):
    """Shapes of the last convolution of every head branch, after checking
    what training changed: every centre-heatmap bias (focal loss on all
    classes) moved away from its -2.19 start, while the masked keypoint
    loss left exactly the keypoint-heatmap channels of categories absent
    from the training images untouched (zero gradient, so Adam never moved
    them)."""
    state = _load_checkpoint(ckpt)['state_dict']
    moved = (state['head.center_heatmap.2.bias'] + 2.19).abs() > 1e-6
    assert moved.all()
    moved = (state['head.keypoint_heatmap.2.bias'] + 2.19).abs() > 1e-6
    member = keypoint_category_matrix(ranges, len(moved))
    expected = member[[c - 1 for c in present_categories]].any(axis=0)
    np.testing.assert_array_equal(moved.numpy(), expected)
    return {
        k: tuple(v.shape)
        for k, v in state.items() if re.fullmatch(r'head\.\w+\.2\.weight', k)
    }


def _check_dump(path, ranges, topk, img_ids, heatmap_width=32):
    """test.py's dumped predictions keep the multi-class contract: per
    image ``topk`` objects with ids in 1..C, the keypoints of other
    categories at (0, 0) with score 0; their box centres (heatmap peaks
    mapped back) lie inside their image (image pixels) up to one heatmap
    cell: a centre is its peak cell plus the regressed sub-cell offset,
    which a two-iteration model does not yet keep inside [0, 1) (a peak in
    column 0 with offset -0.4 lands 0.4 cells left of the image; CI once
    saw exactly that). That the mapping back is the right one is checked
    against the model's own prediction in the DeepFashion2 test. Returns
    them by image id."""
    with open(path, 'rb') as f:
        dumped = pickle.load(f)
    by_image = {d['img_id']: d['pred_instances'] for d in dumped}
    assert sorted(by_image) == sorted(img_ids)
    for d in dumped:
        h, w = d['ori_shape'][:2]
        cell = max(h, w) / heatmap_width  # image pixels per heatmap cell
        x0, y0, x1, y1 = np.asarray(d['pred_instances']['bboxes']).T
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        assert np.all((cx >= -cell) & (cx <= w + cell)), (cx, w, cell)
        assert np.all((cy >= -cell) & (cy <= h + cell)), (cy, h, cell)
    for pred in by_image.values():
        cats = np.asarray(pred['category_id'])
        assert cats.shape == (topk, )
        assert np.all((cats >= 1) & (cats <= len(ranges)))
        member = keypoint_category_matrix(ranges, pred['keypoints'].shape[1])
        other = ~member[cats - 1]
        assert not np.asarray(pred['keypoints'])[other].any()
        assert not np.asarray(pred['keypoint_scores'])[other].any()
    return by_image


def test_toy_fashion_train_and_test(tmp_path):
    root = tmp_path / 'toy_fashion'
    info = make_toy_dataset('fashion', str(root), num_images=8, seed=1)
    assert info['num_train_images'] == 6 and info['num_val_images'] == 2
    opts = _options(
        root,
        'annotations/train.json',
        'annotations/val.json',
        dict(train='images/train/', val='images/val/', test='images/val/'),
        batch_size=3)
    train, test, ckpt = _train_and_test(TOY_CONFIG, tmp_path / 'work', opts)
    _check_losses(train, iterations=2)  # 6 images / batch 3
    train_cats = {
        a['category_id']
        for a in load_json(info['train_ann_file'])['annotations']
    }
    # 3 classes, 32 keypoints ungrouped, head_conv 32
    assert _head_weights(ckpt, train_cats,
                         get_category_keypoint_ranges('toy_fashion')) == {
        'head.center_heatmap.2.weight': (3, 32, 1, 1),
        'head.center_offset.2.weight': (2, 32, 1, 1),
        'head.box_size.2.weight': (2, 32, 1, 1),
        'head.keypoint_reg.2.weight': (64, 32, 1, 1),
        'head.keypoint_heatmap.2.weight': (32, 32, 1, 1),
        'head.keypoint_offset.2.weight': (2, 32, 1, 1),
    }
    _check_metrics(train, test, 'toy_fashion', _val_categories(info))
    img_ids = [img['id'] for img in load_json(info['val_ann_file'])['images']]
    _check_dump(tmp_path / 'work' / 'preds.pkl',
                get_category_keypoint_ranges('toy_fashion'), 20, img_ids)


def _val_categories(info):
    """Names of the categories present in the generated val split (the
    metric reports per-category AP only for those)."""
    coco = load_json(info['val_ann_file'])
    present = {a['category_id'] for a in coco['annotations']}
    return sorted(c['name'] for c in coco['categories'] if c['id'] in present)


def _df2_fixture():
    root = osp.join(shared_data_dir(), 'deepfashion2')
    if not osp.isfile(osp.join(root, 'deepfashion2.json')):
        pytest.skip(f'real-data fixture {root}/deepfashion2.json not '
                    'available')
    return root


def test_deepfashion2_fixture_train_and_test(tmp_path):
    root = _df2_fixture()
    config = tmp_path / 'df2_tiny.py'
    config.write_text(textwrap.dedent(DF2_TINY.format(base=DF2_CONFIG)))
    opts = _options(
        root,
        'deepfashion2.json',
        'deepfashion2.json',
        dict(train='', val='', test=''),
        batch_size=1)
    train, test, ckpt = _train_and_test(str(config), tmp_path / 'work', opts)
    _check_losses(train, iterations=2)  # 2 images / batch 1
    assert Config.fromfile(str(config)).model.backbone.init_cfg is None
    meta = _load_checkpoint(ckpt)['meta']['dataset_meta']
    assert meta['num_keypoints'] == 294
    assert np.asarray(meta['sigmas']).shape == (294, )
    # 13 classes, 294 keypoints ungrouped, the tiny head_conv 16; only
    # long_sleeved_dress (11) is in the fixture, so only its 37 keypoint
    # channels (219-255) learn
    assert _head_weights(ckpt, [11],
                         get_category_keypoint_ranges('deepfashion2')) == {
        'head.center_heatmap.2.weight': (13, 16, 1, 1),
        'head.center_offset.2.weight': (2, 16, 1, 1),
        'head.box_size.2.weight': (2, 16, 1, 1),
        'head.keypoint_reg.2.weight': (588, 16, 1, 1),
        'head.keypoint_heatmap.2.weight': (294, 16, 1, 1),
        'head.keypoint_offset.2.weight': (2, 16, 1, 1),
    }
    _check_metrics(train, test, 'df2', ['long_sleeved_dress'])
    dumped = _check_dump(tmp_path / 'work' / 'preds.pkl',
                         get_category_keypoint_ranges('deepfashion2'), 20,
                         [264, 265])

    # test.py evaluated THIS checkpoint: the same model built here from the
    # config, loaded from it, predicts the same (flip test included).
    cfg = Config.fromfile(str(config))
    dataset_cfg = cfg.test_dataloader.dataset
    dataset_cfg.update(data_root=root, ann_file='deepfashion2.json',
                       data_prefix=dict(img=''))
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(cfg.model)
        dataset = DATASETS.build(dataset_cfg)
    load_checkpoint(model, ckpt, map_location='cpu')
    model.eval()
    with torch.no_grad():
        samples = model.test_step(
            pseudo_collate([dataset[i] for i in range(len(dataset))]))
    for sample in samples:
        ours, theirs = sample.pred_instances, dumped[sample.img_id]
        for key in ('bbox_scores', 'bboxes', 'keypoints', 'keypoint_scores'):
            np.testing.assert_allclose(
                ours[key], theirs[key], rtol=1e-4, atol=1e-3, err_msg=key)
        np.testing.assert_array_equal(ours.category_id,
                                      theirs['category_id'])


def test_deepfashion2_config_as_written():
    """The full-size config: DLA-34 of the ImageNet layout + DLA-up,
    head_conv 256, 901 output channels, CenterNet's schedule and learning
    rate, ImageNet init, flip test."""
    cfg = Config.fromfile(DF2_CONFIG)
    assert cfg.optim_wrapper.optimizer.type == 'Adam'
    # 1.25e-4 per 32 images at 8 x 32 images
    assert cfg.optim_wrapper.optimizer.lr == pytest.approx(1e-3)
    assert cfg.train_dataloader.batch_size * 8 == \
        cfg.auto_scale_lr.base_batch_size
    assert cfg.train_cfg.max_epochs == 140
    assert [s.milestones for s in cfg.param_scheduler
            if s.type == 'MultiStepLR'] == [[90, 120]]
    assert cfg.model.backbone.init_cfg.checkpoint.endswith(
        'dla34-ba72cf86.pth')
    assert cfg.val_evaluator.category_keypoints == 'deepfashion2'
    cfg.model.backbone.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(cfg.model)
    # DLA-34 at full width: the 15,229,104 ImageNet parameters without fc
    # (docs/dla34_imagenet_weights.md)
    assert sum(p.numel() for p in model.backbone.parameters()) == 15229104
    assert model.test_cfg['flip_test']
    head = model.head
    assert head.num_output_channels == 901
    assert head.masked_keypoint_loss
    assert head.head_conv == 256 and head.in_channels == 64
    assert head.decoder.input_size == (512, 512)
    assert head.decoder.heatmap_size == (128, 128)

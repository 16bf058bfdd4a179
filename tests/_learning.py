"""In-process training loop shared by the per-method learning tests
(``tests/test_learning/``). Importable as ``_learning`` (pytest.ini puts
tests/ on the path).

A learning test fits a tiny model of one method (its own head, loss and
codec) to a small fixed set of generated images and checks that

* the training loss falls by a stated fraction, and
* the method's metric on those same images passes a threshold,

while the same run with ``lr=0`` (the control: identical data, steps and
forward passes, so batch-norm statistics still adapt, but no weight moves)
stays below that threshold.

The set is fixed: the pipelines are deterministic (no random flip, affine
or crop), every sample goes through its pipeline once, the batches are
collated and preprocessed once, and training cycles through them. This
keeps a test to a few seconds of model time and makes "fit the images"
well defined. Runs use the calling thread count; the tests run with one
thread (OMP_NUM_THREADS=1) in CI.
"""
import logging
import random
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

import mmkp_ext  # noqa: F401  (registers the components)
from mmpose.registry import DATASETS, MODELS

#: Mean / std of mmpose's ImageNet-normalising data preprocessor.
PREPROCESSOR = dict(
    type='PoseDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True)

#: Where mmpose finds the COCO keypoint metainfo (its own config file).
COCO_METAINFO = dict(from_file='configs/_base_/datasets/coco.py')

#: meta_keys of PackPoseInputs for bottom-up evaluation without
#: 'category_id' (bottom-up samples carry one per annotation, and
#: CocoMetric would take that list as every result's category).
BOTTOMUP_META_KEYS = ('id', 'img_id', 'img_path', 'crowd_index',
                      'ori_shape', 'img_shape', 'input_size',
                      'input_center', 'input_scale', 'flip',
                      'flip_direction', 'flip_indices', 'raw_ann_info',
                      'skeleton_links')


def fixed_bottomup_affine(input_size):
    """``BottomupRandomAffine`` with every random part switched off: the
    image is only fitted to ``input_size`` (no shift, scale, rotation or
    shear), so a training sample is the same every time."""
    return dict(type='BottomupRandomAffine', input_size=input_size,
                shift_prob=0.0, scale_prob=0.0, rotate_prob=0.0,
                shear_prob=0.0)


@contextmanager
def _quiet_mmengine():
    """mmengine's current logger at WARNING inside the block."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_dataset(dataset_cfg: dict):
    """An mmpose dataset from ``dataset_cfg`` (mmpose scope)."""
    with DefaultScope.overwrite_default_scope('mmpose'):
        return DATASETS.build(dict(dataset_cfg))


def collate(dataset, batch_size: int) -> List[dict]:
    """Every sample of ``dataset`` through its pipeline once, in order,
    collated into batches of at most ``batch_size``."""
    samples = [dataset[i] for i in range(len(dataset))]
    return [
        pseudo_collate(samples[i:i + batch_size])
        for i in range(0, len(samples), batch_size)
    ]


@dataclass
class FitResult:
    """What :func:`fit` returns: the trained model (eval mode) and the
    total training loss at every step (``losses[i]`` is the loss that step
    ``i`` minimised, before its update)."""
    model: torch.nn.Module
    losses: List[float] = field(default_factory=list)

    def loss_drop(self, window: int = 3) -> float:
        """1 - (mean of the last ``window`` losses) / (mean of the first
        ``window``): 0.6 means the loss fell by 60 %."""
        first = float(np.mean(self.losses[:window]))
        last = float(np.mean(self.losses[-window:]))
        return 1.0 - last / first

    def loss_fall(self, window: int = 3) -> float:
        """(mean of the first ``window`` losses) - (mean of the last
        ``window``), for losses that may go negative (negative
        log-likelihoods)."""
        return float(np.mean(self.losses[:window]) -
                     np.mean(self.losses[-window:]))


def fit(model_cfg: dict,
        batches: Sequence[dict],
        steps: int,
        lr: float,
        seed: int = 0,
        weight_decay: float = 0.0,
        warmup: int = 0,
        grad_clip: Optional[float] = None) -> FitResult:
    """Build ``model_cfg`` (mmpose scope) with torch seeded by ``seed``,
    initialise it, and train it for ``steps`` Adam(W) steps, cycling
    through the fixed ``batches``.

    The learning rate ramps linearly from ``lr / warmup`` to ``lr`` over
    the first ``warmup`` steps, then stays. ``lr=0`` is the control: the
    same forward passes in training mode (batch-norm running statistics
    still update, the same losses are recorded) but no parameter ever
    changes. Since an Adam(W) step at lr 0 leaves every parameter exactly
    as it was, the control skips the backward pass and the optimiser (a
    third of the cost) instead of computing gradients it would not use.

    Raises:
        AssertionError: if a loss is not finite (names the step and the
            loss terms).
    """
    seed_everything(seed)
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(model_cfg)
    with _quiet_mmengine():
        # (mmengine logs every parameter's initialiser at INFO)
        model.init_weights()
    model.train()
    # Preprocess once: the batches are fixed.
    with torch.no_grad():
        data = [model.data_preprocessor(b, True) for b in batches]
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    result = FitResult(model=model)
    for step in range(steps):
        if warmup:
            for group in optim.param_groups:
                group['lr'] = lr * min(1.0, (step + 1) / warmup)
        batch = data[step % len(data)]
        with torch.set_grad_enabled(lr > 0):
            losses = model(**batch, mode='loss')
            loss, log = model.parse_losses(losses)
        if not torch.isfinite(loss):
            raise AssertionError(
                f'step {step}: loss {loss.item()} not finite; terms '
                f'{ {k: float(v) for k, v in log.items()} }')
        if lr > 0:
            optim.zero_grad()
            loss.backward()
            if grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optim.step()
        result.losses.append(float(loss.detach()))
    model.eval()
    return result


def evaluate(model: torch.nn.Module, batches: Sequence[dict],
             metric_cfg: dict, dataset_meta: dict) -> Dict[str, float]:
    """The metric of ``model``'s predictions (``test_step``, i.e. the
    config's test-time decoding and mapping to image pixels) on
    ``batches``, through mmengine's Evaluator as the runner uses it."""
    with DefaultScope.overwrite_default_scope('mmpose'):
        evaluator = Evaluator(dict(metric_cfg))
    evaluator.dataset_meta = dataset_meta
    model.eval()
    size = 0
    with torch.no_grad():
        for batch in batches:
            outputs = model.test_step(batch)
            evaluator.process(data_samples=outputs, data_batch=batch)
            size += len(outputs)
    return evaluator.evaluate(size)


def topdown_batches(info: dict, codec: dict, batch_size: int = 64):
    """(dataset metainfo, batches) of every person in the train split of
    the generated toy-persons set ``info`` (a ``make_toy_dataset`` summary),
    top-down: the ground-truth box's crop at the codec's input size and the
    codec's training targets (the same batches serve for prediction, which
    ignores the targets)."""
    dataset = build_dataset(dict(
        type='CocoDataset', data_root=info['out_dir'], data_mode='topdown',
        metainfo=COCO_METAINFO, ann_file=info['train_ann_file'],
        data_prefix=dict(img=info['train_img_dir']),
        pipeline=[
            dict(type='LoadImage'),
            dict(type='GetBBoxCenterScale'),
            dict(type='TopdownAffine', input_size=codec['input_size']),
            dict(type='GenerateTarget', encoder=codec),
            dict(type='PackPoseInputs')
        ]))
    return dataset.metainfo, collate(dataset, batch_size)


def coco_ap(model: torch.nn.Module, batches, info: dict, meta: dict,
            **metric_kwargs) -> float:
    """coco/AP (mmpose's CocoMetric) of ``model`` on the images it was
    trained on (the train split's annotations)."""
    metrics = evaluate(model, batches,
                       dict(type='CocoMetric',
                            ann_file=info['train_ann_file'],
                            **metric_kwargs), meta)
    return metrics['coco/AP']


def bottomup_batches(info: dict, codec: dict, dataset_type: str,
                     metainfo: Optional[dict] = None,
                     batch_size: int = 16, extra_train: Sequence = (),
                     test_meta_keys: Optional[Sequence[str]] = (
                         BOTTOMUP_META_KEYS)):
    """(dataset metainfo, training batches, prediction batches) of the
    train split of the generated toy set ``info``, bottom-up, every image
    fitted to the codec's input size: training samples through
    :func:`fixed_bottomup_affine` (+ ``extra_train`` transforms) and the
    codec's targets, prediction samples through ``BottomupResize`` as the
    configs' val pipelines do (so predictions map back to image pixels),
    packed with ``test_meta_keys`` (None: PackPoseInputs' default)."""
    common = dict(
        type=dataset_type, data_root=info['out_dir'], data_mode='bottomup',
        ann_file=info['train_ann_file'],
        data_prefix=dict(img=info['train_img_dir']))
    if metainfo is not None:
        common['metainfo'] = metainfo
    train = build_dataset(dict(common, pipeline=[
        dict(type='LoadImage'),
        fixed_bottomup_affine(codec['input_size']),
        *extra_train,
        dict(type='GenerateTarget', encoder=codec),
        dict(type='PackPoseInputs')
    ]))
    test = build_dataset(dict(common, test_mode=True, pipeline=[
        dict(type='LoadImage'),
        dict(type='BottomupResize', input_size=codec['input_size'],
             size_factor=32, resize_mode='fit'),
        dict(type='PackPoseInputs') if test_meta_keys is None else dict(
            type='PackPoseInputs', meta_keys=tuple(test_meta_keys))
    ]))
    return (train.metainfo, collate(train, batch_size),
            collate(test, batch_size))



def learning_tests(namespace: dict, name: str, data, run, min_loss: float,
                   min_metric: float, metric: str = 'coco/AP',
                   loss_measure: str = 'loss_drop',
                   subject: str = 'toy_persons') -> None:
    """Add a learning-test module's data, fixture and two tests to its
    ``namespace`` (its ``globals()``):

    * ``DATA(toy_dataset)`` -> the fitted set: ``data`` = (kind, image
      size, number of images) of the ``toy_dataset`` session fixture (read
      by ``benchmarks/learning_seeds.py`` too);
    * the module fixture ``info`` (that set);
    * ``test_<name>_fits_<subject>``: ``run(info)`` (-> FitResult, metric)
      reaches ``FitResult.<loss_measure>() >= min_loss`` and ``metric >=
      min_metric``;
    * ``test_<name>_lr0_control_stays_below``: ``run(info, lr=0.0)`` stays
      below both.
    """
    import pytest

    def DATA(toy_dataset):
        return toy_dataset(*data)

    @pytest.fixture(scope='module')
    def info(toy_dataset):
        return DATA(toy_dataset)

    def test_fits(info):
        result, value = run(info)
        print(f'loss {result.losses[0]:.5f} -> {result.losses[-1]:.5f}, '
              f'{metric} {value:.3f}')
        assert getattr(result, loss_measure)() >= min_loss, result.losses
        assert value >= min_metric

    def test_lr0_control(info):
        result, value = run(info, lr=0.0)
        print(f'lr=0: {metric} {value:.3f}')
        assert value < min_metric
        assert getattr(result, loss_measure)() < min_loss

    namespace.update(DATA=DATA, info=info)
    namespace[f'test_{name}_fits_{subject}'] = test_fits
    namespace[f'test_{name}_lr0_control_stays_below'] = test_lr0_control


def topdown_learning_module(namespace: dict, name: str, model: dict,
                            codec: dict, steps: int, lr: float,
                            min_loss_drop: float, min_ap: float,
                            data=('persons', 64, 12)) -> None:
    """Fill a top-down learning-test module's ``namespace`` (its
    ``globals()``) with the protocol that ``benchmarks/learning_seeds.py``
    reads and the two tests:

    * ``STEPS``, ``LR``, ``MIN_LOSS_DROP``, ``MIN_AP``, ``MODEL``, ``CODEC``;
    * ``prepare(info)`` -> (metainfo, training batches, prediction batches)
      of every person of the toy set (ground-truth box crops at the codec's
      input size with its targets; the same batches predict);
    * ``score(model, batches, info, meta)`` -> coco/AP on the fitted images;
    * ``run(info, seed=0, lr=LR, steps=STEPS)`` -> (FitResult, coco/AP);
    * ``DATA``, the fixture ``info`` and the two tests of
      :func:`learning_tests` (loss drop and coco/AP).
    """

    def prepare(info):
        meta, batches = topdown_batches(info, codec)
        return meta, batches, batches

    def score(model_, batches, info, meta):
        return coco_ap(model_, batches, info, meta)

    def run(info, seed=0, lr=lr, steps=steps):
        meta, train, test = prepare(info)
        result = fit(model, train, steps, lr, seed=seed)
        return result, score(result.model, test, info, meta)

    namespace.update(
        STEPS=steps, LR=lr, MIN_LOSS_DROP=min_loss_drop, MIN_AP=min_ap,
        MODEL=model, CODEC=codec, prepare=prepare, score=score, run=run)
    learning_tests(namespace, name, data, run, min_loss_drop, min_ap)

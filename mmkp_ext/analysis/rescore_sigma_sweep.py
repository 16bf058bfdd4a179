"""Sweep of the rescoring sigma of grouped CenterNet decoding.

The paper tunes ``rescore_sigma`` (the std, in output pixels, of the
Gaussian mask centred at each coarse keypoint; see
``shared/specs/centernet_grouping.md``) per model on a validation subset.
Decoding is cheap next to the network, so :func:`sweep_rescore_sigma` runs
the network ONCE per batch and decodes that batch's outputs with every
setting (each ``rescore_sigma`` and, optionally, ``nearest``), feeding one
fresh evaluator per setting.

Memory: the outputs are kept only while their batch is decoded (they stay
on the model's device, as in a normal ``predict``), so the sweep holds one
batch of fused head outputs, ``C + 2 + 2 + 2 G_r + G_h + 2`` channels of
``H x W`` float32 per image (DeepFashion2 ungrouped at 512 x 512 input:
901 x 128 x 128 x 4 B = 56 MB per image; 62/62 groups: 205 channels,
13 MB), plus what each setting's metric stores per image (the decoded
objects: ``topk x K x 3`` floats; 100 x 294 x 3 x 8 B = 0.7 MB per image
and setting for DeepFashion2 in ``CocoMetric``'s float64). Nothing grows
with the dataset except the metrics' results, as in a normal test run.

The evaluation of each setting equals a normal test run
(``model.test_step`` with ``model.test_cfg`` set to that setting, then the
same evaluator) on the same images.
"""
import copy
import math
from collections import OrderedDict
from numbers import Integral, Real
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.evaluator import Evaluator
from mmengine.model import is_model_wrapper

from mmpose.registry import METRICS
from ..models.heads.centernet_pose_head import CenterNetPoseHead

__all__ = [
    'sweep_settings', 'sweep_rescore_sigma', 'best_rescore_setting',
    'format_sweep_table', 'build_sweep_inputs'
]

#: Columns of :func:`format_sweep_table`: header -> metric name (the part
#: after the evaluator's prefix, as ``CocoMetric`` names it).
TABLE_COLUMNS = (
    ('AP', 'AP'),
    ('AP50', 'AP .5'),
    ('AP75', 'AP .75'),
    ('AR', 'AR'),
)


def sweep_settings(sigmas: Sequence[float],
                   include_nearest: bool = True) -> List[dict]:
    """The decoding settings of a sweep, in order.

    Args:
        sigmas: rescoring sigmas in output pixels (finite, > 0, distinct).
        include_nearest: append CenterNet's ``nearest`` decoding.

    Returns:
        list of dict with ``name`` (``'sigma=2'`` / ``'nearest'``),
        ``decode_mode`` and ``rescore_sigma`` (float, ``None`` for
        ``nearest``).

    Raises:
        TypeError: ``sigmas`` is not a sequence of real numbers.
        ValueError: ``sigmas`` is empty, or holds a non-positive, non-finite
            or repeated value.
    """
    if isinstance(sigmas, (str, bytes)) or not hasattr(sigmas, '__len__'):
        raise TypeError('sigmas must be a sequence of numbers, got '
                        f'{type(sigmas).__name__}')
    if len(sigmas) == 0:
        raise ValueError('sigmas is empty: give at least one rescore_sigma '
                         'to evaluate')
    settings = []
    seen = set()
    for s in sigmas:
        if isinstance(s, bool) or not isinstance(s, Real):
            raise TypeError(f'every sigma must be a number, got {s!r} '
                            f'({type(s).__name__})')
        s = float(s)
        if not math.isfinite(s) or s <= 0:
            raise ValueError(f'rescore_sigma must be finite and > 0 (output '
                             f'pixels), got {s!r}')
        if s in seen:
            raise ValueError(f'rescore_sigma {s:g} is listed twice')
        seen.add(s)
        settings.append(
            dict(name=f'sigma={s:g}', decode_mode='rescore', rescore_sigma=s))
    if include_nearest:
        settings.append(
            dict(name='nearest', decode_mode='nearest', rescore_sigma=None))
    return settings


def _unwrap_checked(model) -> Tuple[torch.nn.Module, CenterNetPoseHead]:
    """The bare model and its CenterNet head; errors name what is wrong."""
    if is_model_wrapper(model):
        model = model.module
    head = getattr(model, 'head', None)
    if not isinstance(head, CenterNetPoseHead):
        raise TypeError(
            'the rescore_sigma sweep needs a model whose head is a '
            f'CenterNetPoseHead, got {type(model).__name__} with head '
            f'{type(head).__name__}')
    for attr in ('extract_feat', 'add_pred_to_datasample',
                 'data_preprocessor'):
        if not hasattr(model, attr):
            raise TypeError(f'{type(model).__name__} has no {attr}; the '
                            'sweep needs a bottom-up pose estimator '
                            '(CenterNetPoseEstimator)')
    return model, head


def _metric_cfgs(evaluator_cfg) -> List[dict]:
    """The evaluator config as a list of metric configs (copies)."""
    if isinstance(evaluator_cfg, dict):
        if evaluator_cfg.get('type') == 'Evaluator':
            metrics = evaluator_cfg.get('metrics')
            return _metric_cfgs(metrics)
        return [copy.deepcopy(dict(evaluator_cfg))]
    if isinstance(evaluator_cfg, (list, tuple)) and evaluator_cfg and all(
            isinstance(m, dict) for m in evaluator_cfg):
        return [copy.deepcopy(dict(m)) for m in evaluator_cfg]
    raise TypeError('evaluator_cfg must be a metric config dict or a '
                    'non-empty list of them (a config\'s val_evaluator), got '
                    f'{type(evaluator_cfg).__name__}')


def _restrict_coco_gt(evaluator: Evaluator, img_ids: Sequence) -> None:
    """Restrict the COCO ground truth of every COCO-style metric (those with
    a loaded ``coco``, e.g. mmpose's ``CocoMetric`` and its subclasses) to
    ``img_ids``: ``COCOeval`` scores every image of its GT, so images left
    out of a subset would count as missed."""
    keep = set(img_ids)
    for metric in evaluator.metrics:
        coco = getattr(metric, 'coco', None)
        if coco is None or not hasattr(coco, 'dataset'):
            continue
        dataset = dict(coco.dataset)
        dataset['images'] = [
            im for im in dataset.get('images', []) if im['id'] in keep
        ]
        dataset['annotations'] = copy.deepcopy([
            a for a in dataset.get('annotations', []) if a['image_id'] in keep
        ])
        restricted = type(coco)()
        restricted.dataset = dataset
        restricted.createIndex()
        metric.coco = restricted


def _slice_batch(data_batch, num: int):
    """The first ``num`` samples of a collated batch (dict of lists or
    tensors)."""
    if isinstance(data_batch, dict):
        return {k: _slice_batch(v, num) for k, v in data_batch.items()}
    if isinstance(data_batch, (list, tuple, torch.Tensor)):
        return data_batch[:num]
    return data_batch


def _batch_len(data_batch) -> int:
    samples = data_batch.get('data_samples') if isinstance(data_batch,
                                                           dict) else None
    if samples is None:
        raise ValueError('the dataloader must yield dicts with data_samples '
                         '(mmpose\'s PackPoseInputs + pseudo_collate)')
    return len(samples)


def _extract_feats(model, inputs, test_cfg: dict):
    """Features as ``BottomupPoseEstimator.predict`` computes them (the
    flipped image's too under ``flip_test``)."""
    if test_cfg.get('multiscale_test', False):
        raise ValueError('the rescore_sigma sweep does not support '
                         'multiscale_test (nor does CenterNetPoseHead)')
    if not isinstance(inputs, torch.Tensor):
        raise TypeError('expected one batched input tensor from the data '
                        f'preprocessor, got {type(inputs).__name__}')
    if test_cfg.get('flip_test', False):
        return [
            model.extract_feat(inputs),
            model.extract_feat(inputs.flip(-1))
        ]
    return model.extract_feat(inputs)


def sweep_rescore_sigma(model,
                        dataloader,
                        evaluator_cfg: Union[dict, Sequence[dict]],
                        sigmas: Sequence[float],
                        include_nearest: bool = True,
                        subset: Optional[int] = None) -> List[dict]:
    """Evaluate several decoding settings of one CenterNet model with one
    forward pass per image.

    For each batch of ``dataloader``: the data preprocessor and the
    features (flipped too under ``model.test_cfg['flip_test']``), then the
    head's fused outputs (:meth:`CenterNetPoseHead.fuse_outputs`) are
    computed once; for every setting of :func:`sweep_settings` they are
    decoded (:meth:`CenterNetPoseHead.decode_outputs` with
    ``model.test_cfg`` updated by the setting's ``decode_mode`` /
    ``rescore_sigma``), mapped to the image by the model's own
    ``add_pred_to_datasample`` and given to that setting's evaluator (a
    fresh ``Evaluator`` built from ``evaluator_cfg``).

    Args:
        model: a ``CenterNetPoseEstimator`` (or another bottom-up estimator
            with a ``CenterNetPoseHead``; a model wrapper is unwrapped).
            Put into eval mode for the sweep, its mode restored after.
        dataloader: the validation loader (mmpose samples, in a fixed
            order).
        evaluator_cfg: the config's ``val_evaluator`` (a metric config or a
            list of them).
        sigmas: rescoring sigmas in output pixels.
        include_nearest: also evaluate ``decode_mode='nearest'``.
        subset: evaluate only the first ``subset`` images of the loader
            (``None``: all). The COCO ground truth of COCO-style metrics
            is then restricted to those images, so that the images left out
            do not count as missed.

    Returns:
        list of dict, one per setting in order: ``name``, ``decode_mode``,
        ``rescore_sigma`` (``None`` for nearest), ``num_images`` and
        ``metrics`` (the evaluator's dict, e.g. ``'toy_fashion/AP'``).

    Raises:
        TypeError: the model's head is not a ``CenterNetPoseHead``.
        ValueError: bad ``sigmas`` (see :func:`sweep_settings`) or
            ``subset``; ``multiscale_test``; an empty loader.
    """
    settings = sweep_settings(sigmas, include_nearest)
    model, head = _unwrap_checked(model)
    if subset is not None and (isinstance(subset, bool) or
                               not isinstance(subset, Integral) or subset < 1):
        raise ValueError(f'subset must be an int >= 1 or None, got '
                         f'{subset!r}')
    total = len(dataloader.dataset)
    num = total if subset is None else min(int(subset), total)
    if num == 0:
        raise ValueError('the dataloader\'s dataset is empty')
    metric_cfgs = _metric_cfgs(evaluator_cfg)
    base_cfg = dict(model.test_cfg or {})

    evaluators = []
    for _ in settings:
        # mmpose's registry: no default scope needed, and a fresh metric
        # instance (own results, own GT copy) per setting.
        evaluator = Evaluator(
            [METRICS.build(copy.deepcopy(m)) for m in metric_cfgs])
        if hasattr(dataloader.dataset, 'metainfo'):
            # as mmengine's ValLoop does (CocoMetric may load the dataset's
            # ann_file here)
            evaluator.dataset_meta = dataloader.dataset.metainfo
        evaluators.append(evaluator)

    was_training = model.training
    model.eval()
    seen_ids = []
    try:
        with torch.no_grad():
            for data_batch in dataloader:
                take = min(num - len(seen_ids), _batch_len(data_batch))
                if take < _batch_len(data_batch):
                    data_batch = _slice_batch(data_batch, take)
                data = model.data_preprocessor(data_batch, False)
                samples = data['data_samples']
                # The one forward pass of this batch.
                feats = _extract_feats(model, data['inputs'], base_cfg)
                outputs, logits = head.fuse_outputs(feats, samples, base_cfg)
                del feats
                for setting, evaluator in zip(settings, evaluators):
                    test_cfg = dict(base_cfg,
                                    decode_mode=setting['decode_mode'])
                    if setting['rescore_sigma'] is not None:
                        test_cfg['rescore_sigma'] = setting['rescore_sigma']
                    preds = head.decode_outputs(outputs, logits, test_cfg)
                    # Overwrites the previous setting's pred_instances; the
                    # evaluator has already copied them.
                    model.add_pred_to_datasample(preds, None, samples)
                    evaluator.process(samples, data_batch)
                del outputs
                seen_ids.extend(s.metainfo.get('img_id') for s in samples)
                if len(seen_ids) >= num:
                    break  # do not load the next batch
    finally:
        model.train(was_training)
    if not seen_ids:
        raise ValueError('the dataloader yielded no batch')

    results = []
    for setting, evaluator in zip(settings, evaluators):
        if num < total:
            _restrict_coco_gt(evaluator, seen_ids)
        metrics = evaluator.evaluate(len(seen_ids))
        results.append(
            dict(name=setting['name'],
                 decode_mode=setting['decode_mode'],
                 rescore_sigma=setting['rescore_sigma'],
                 num_images=len(seen_ids),
                 metrics=OrderedDict(metrics)))
    return results


def _short_name(key: str) -> str:
    return key.rsplit('/', 1)[-1]


def _lookup(metrics: Dict[str, float], name: str) -> Optional[float]:
    """Value of metric ``name`` ignoring the evaluator's prefix."""
    for key, value in metrics.items():
        if _short_name(key) == name:
            return float(value)
    return None


def best_rescore_setting(results: Sequence[dict], metric: str = 'AP') -> dict:
    """The ``rescore`` result with the highest ``metric`` (first one on
    ties; NaN ranks last).

    Raises:
        ValueError: no rescore result, or ``metric`` missing from one.
    """
    rescored = [r for r in results if r['decode_mode'] == 'rescore']
    if not rescored:
        raise ValueError('no rescore setting among the results')

    def value(r):
        v = _lookup(r['metrics'], metric)
        if v is None:
            raise ValueError(f'metric {metric!r} missing from the results '
                             f'of {r["name"]} ({list(r["metrics"])})')
        return -math.inf if math.isnan(v) else v

    return max(rescored, key=value)


def format_sweep_table(results: Sequence[dict]) -> str:
    """Markdown table: one row per setting; columns AP, AP50, AP75, AR and
    the per-category ``AP_<name>`` metrics (in the evaluator's order; ``-``
    where a setting lacks one), values with 4 decimals."""
    if not results:
        raise ValueError('no results to tabulate')
    categories = []
    for r in results:
        for key in r['metrics']:
            name = _short_name(key)
            if name.startswith('AP_') and name not in categories:
                categories.append(name)
    headers = ['setting'] + [h for h, _ in TABLE_COLUMNS
                             ] + [f'AP {c[3:]}' for c in categories]
    names = [m for _, m in TABLE_COLUMNS] + categories
    lines = [
        '| ' + ' | '.join(headers) + ' |',
        '|' + '|'.join(['---'] + ['---:'] * (len(headers) - 1)) + '|'
    ]
    for r in results:
        cells = [r['name']]
        for name in names:
            v = _lookup(r['metrics'], name)
            cells.append('-' if v is None else f'{v:.4f}')
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def build_sweep_inputs(cfg,
                       checkpoint: Optional[str],
                       device: Union[str, torch.device] = 'cpu',
                       strict: bool = True):
    """Model (weights from ``checkpoint``), validation loader and evaluator
    config of an mmengine config, ready for :func:`sweep_rescore_sigma`.

    Imports the config's ``custom_imports``, sets its default scope
    (``'mmpose'`` unless it names one), builds ``cfg.model`` through the
    registry and checks its head before reading the checkpoint or the
    data. ``init_weights`` is not called (no pretrained download): the
    weights come from ``checkpoint`` (mmkp_ext's safe loader and mmengine's key matching,
    ``strict`` key matching; ``None`` keeps the random initialisation).

    Returns:
        tuple: ``(model, dataloader, evaluator_cfg)`` with the model on
        ``device`` in eval mode.

    Raises:
        TypeError: the model's head is not a ``CenterNetPoseHead``.
        ValueError: the config has no ``val_dataloader`` or
            ``val_evaluator``.
    """
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    from mmengine.runner.checkpoint import _load_checkpoint_to_model

    from mmkp_ext.safe_load import load_checkpoint_dict
    from mmengine.utils import import_modules_from_strings

    from mmpose.registry import MODELS

    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg['custom_imports'])
    init_default_scope(cfg.get('default_scope') or 'mmpose')
    for key in ('model', 'val_dataloader', 'val_evaluator'):
        if cfg.get(key) is None:
            raise ValueError(f'the config has no {key}')
    model = MODELS.build(copy.deepcopy(cfg['model']))
    _unwrap_checked(model)
    if checkpoint is not None:
        # mmkp_ext's safe loader (weights_only=True passed explicitly),
        # then mmengine's key matching.
        _load_checkpoint_to_model(
            model, load_checkpoint_dict(checkpoint, map_location='cpu'),
            strict=strict)
    model.to(device)
    model.eval()
    dataloader = Runner.build_dataloader(copy.deepcopy(cfg['val_dataloader']))
    return model, dataloader, copy.deepcopy(cfg['val_evaluator'])

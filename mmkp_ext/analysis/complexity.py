"""Parameter and FLOP counts that include ``grid_sample`` (deformable
attention), on top of mmengine's jit-trace ``FlopAnalyzer`` (fvcore).

Counting convention (fvcore's, which mmengine and mmpose's ``get_flops``
use): one fused multiply-add = one FLOP, so a ``Linear(C_in, C_out)`` on
``n`` vectors counts ``n * C_in * C_out``, a convolution its MACs, an
``einsum``/``matmul`` its MACs. GFLOPs below are 1e9 of these.

``grid_sample`` is counted per output element (``N * C * H_out * W_out``):

* bilinear: 4 (a weighted sum of the 4 neighbouring pixels);
* bicubic: 16 (4 x 4 neighbours);
* nearest: 0 (a gather, like mmengine's ignored indexing ops).

The interpolation weights, computed once per output location and shared by
all channels, are not counted. mmengine's own table assumes bilinear (4)
for every mode; the handle here reads the mode from the traced call.

Attention: mmengine has no handle for ``aten::scaled_dot_product_attention``
(``nn.MultiheadAttention``'s core in torch 2.x) nor for the fused
``aten::_native_multi_head_attention`` (taken in eval mode without
autograd), so its own count drops them silently (the fused op hides the
projections too). Both are counted here: ``q k^T`` and ``attn v`` as
matmuls, plus the projections for the fused op.

What is not counted: every traced op without a handle (element-wise
``add``/``mul``/``div``/``exp``, ``softmax``, ``sigmoid``, ``sum``, pooling
other than adaptive average, ...). :func:`count_complexity` returns them in
``uncounted_ops`` (op name -> number of calls) so reports can say so;
shape/copy ops (view, permute, cat, ...) are 0 by definition and are not
listed. The data preprocessor (normalisation) is outside the count.
"""
import os.path as osp
from collections import Counter
from dataclasses import dataclass, field
from math import prod
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

__all__ = [
    'GRID_SAMPLE_FLOPS_PER_OUTPUT', 'ComplexityResult', 'grid_sampler_flop',
    'sdpa_flop', 'native_mha_flop', 'count_complexity', 'config_input_size',
    'build_model_from_config', 'complexity_from_config'
]

# torch's interpolation-mode enum of aten::grid_sampler -> FLOPs per output
# element (multiply-adds).
GRID_SAMPLE_FLOPS_PER_OUTPUT = {'bilinear': 4, 'nearest': 0, 'bicubic': 16}
_GRID_SAMPLE_MODES = {0: 'bilinear', 1: 'nearest', 2: 'bicubic'}


def grid_sampler_flop(inputs: list, outputs: list) -> int:
    """FlopAnalyzer handle for ``aten::grid_sampler`` (and ``_2d``): FLOPs
    per output element by interpolation mode (see the module docstring)."""
    from mmengine.analysis.jit_handles import get_shape
    mode_id = inputs[2].toIValue() if len(inputs) > 2 else 0
    mode = _GRID_SAMPLE_MODES.get(mode_id)
    if mode is None:
        raise ValueError(f'unknown grid_sample interpolation mode {mode_id}')
    out_shape = get_shape(outputs[0])
    return GRID_SAMPLE_FLOPS_PER_OUTPUT[mode] * prod(out_shape)


def sdpa_flop(inputs: list, outputs: list) -> int:
    """Handle for ``aten::scaled_dot_product_attention`` (what
    ``nn.MultiheadAttention`` runs in torch 2.x): ``q k^T`` and
    ``softmax(.) v`` as matmuls, ``prod(batch) * Lq * Lk * (E + Ev)``."""
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(inputs[i]) for i in range(3))
    return prod(q[:-1]) * k[-2] * (q[-1] + v[-1])


def native_mha_flop(inputs: list, outputs: list) -> int:
    """Handle for ``aten::_native_multi_head_attention`` (the fused path
    ``nn.MultiheadAttention`` takes in eval mode without autograd): the q,
    k, v and output projections plus the two attention matmuls.
    Inputs: query (B, Lq, E), key (B, Lk, E), value (B, Lk, E), ..."""
    from mmengine.analysis.jit_handles import get_shape
    q, k, v = (get_shape(inputs[i]) for i in range(3))
    batch, lq, e = prod(q[:-2]), q[-2], q[-1]
    lk = k[-2]
    proj = batch * (2 * lq * e * e + 2 * lk * e * e)
    return proj + batch * lq * lk * 2 * e


@dataclass
class ComplexityResult:
    """Result of :func:`count_complexity`.

    Attributes:
        params (int): number of parameters (each shared tensor once).
        flops (int): total FLOPs (multiply-adds) of one forward.
        flops_by_operator (Counter): op name (``linear``, ``conv``,
            ``grid_sampler``, ...) -> FLOPs.
        flops_by_module (dict): child module name -> FLOPs.
        uncounted_ops (Counter): traced ops with no FLOP handle -> calls.
        input_shape (tuple): the input the model was traced with.
    """
    params: int
    flops: int
    flops_by_operator: Counter
    flops_by_module: Dict[str, int] = field(default_factory=dict)
    uncounted_ops: Counter = field(default_factory=Counter)
    input_shape: Tuple[int, ...] = ()

    def summary(self) -> str:
        """Human-readable lines: params, GFLOPs, per-op and per-module
        split, and the ops that were not counted."""
        lines = [
            f'Input shape: {tuple(self.input_shape)}',
            f'Params: {self.params / 1e6:.3f} M ({self.params})',
            f'GFLOPs: {self.flops / 1e9:.4f} (1 FLOP = 1 multiply-add; '
            'grid_sample: 4 per output element, bilinear)',
        ]
        if self.flops_by_module:
            lines.append('GFLOPs by module: ' + ', '.join(
                f'{k}={v / 1e9:.4f}' for k, v in self.flops_by_module.items()))
        lines.append('GFLOPs by operator: ' + ', '.join(
            f'{k}={v / 1e9:.4f}'
            for k, v in self.flops_by_operator.most_common()))
        if self.uncounted_ops:
            lines.append('Not counted (no FLOP handle; calls): ' + ', '.join(
                f'{k}={v}' for k, v in sorted(self.uncounted_ops.items())))
        else:
            lines.append('Not counted: none')
        return '\n'.join(lines)


def count_complexity(model: nn.Module,
                     inputs: Union[torch.Tensor, Tuple[Any, ...]],
                     breakdown_of: str = '') -> ComplexityResult:
    """Trace ``model(*inputs)`` once and count its FLOPs (including
    ``grid_sample``) and parameters.

    Args:
        model (nn.Module): the module; traced as it is (call ``.eval()``
            first for inference-time counts).
        inputs (Tensor | tuple): positional inputs of ``model.forward``.
        breakdown_of (str): submodule whose children get a FLOP line each
            in ``flops_by_module`` (default: ``model`` itself).

    Returns:
        ComplexityResult
    """
    from mmengine.analysis import FlopAnalyzer, parameter_count
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs, )
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle('aten::grid_sampler', grid_sampler_flop,
                           'aten::grid_sampler_2d', grid_sampler_flop,
                           'aten::scaled_dot_product_attention', sdpa_flop,
                           'aten::_native_multi_head_attention',
                           native_mha_flop)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    flops = int(analyzer.total())
    by_module = analyzer.by_module()
    prefix = f'{breakdown_of}.' if breakdown_of else ''
    children = {
        name: int(by_module.get(prefix + name, 0))
        for name, _ in model.get_submodule(breakdown_of).named_children()
    }
    uncounted = Counter()
    for op, n in analyzer.unsupported_ops().items():
        uncounted[op] += n
    first = inputs[0]
    shape = tuple(first.shape) if isinstance(first, torch.Tensor) else ()
    return ComplexityResult(
        params=int(parameter_count(model)['']),
        flops=flops,
        flops_by_operator=Counter(
            {k: int(v)
             for k, v in analyzer.by_operator().items()}),
        flops_by_module=children,
        uncounted_ops=uncounted,
        input_shape=shape)


def _find_input_size(obj: Any) -> Optional[Sequence[int]]:
    """First ``input_size`` (w, h) found in a codec/pipeline-like dict."""
    if isinstance(obj, dict):
        size = obj.get('input_size')
        if size is not None and len(size) == 2:
            return size
        for val in obj.values():
            found = _find_input_size(val)
            if found is not None:
                return found
    elif isinstance(obj, (list, tuple)):
        for val in obj:
            found = _find_input_size(val)
            if found is not None:
                return found
    return None


def config_input_size(cfg) -> Tuple[int, int]:
    """The model input ``(H, W)`` a top-down config declares: ``input_size``
    (mmpose order ``(w, h)``) of the model's codec (``model.head.decoder``),
    else of the config's ``codec``, else of the test pipeline's
    ``TopdownAffine``.

    Raises:
        ValueError: if the config declares none.
    """
    places = []
    model = cfg.get('model', {})
    head = model.get('head', {}) if isinstance(model, dict) else {}
    if isinstance(head, dict) and head.get('decoder') is not None:
        places.append(head['decoder'])
    if cfg.get('codec') is not None:
        places.append(cfg['codec'])
    for loader in ('test_dataloader', 'val_dataloader'):
        dl = cfg.get(loader)
        if isinstance(dl, dict):
            places.append(dl.get('dataset', {}).get('pipeline', []))
    for place in places:
        size = _find_input_size(place)
        if size is not None:
            w, h = (int(v) for v in size)
            return h, w
    raise ValueError('the config declares no input_size (codec or '
                     'TopdownAffine); pass the input shape (H, W) explicitly')


def build_model_from_config(config, cfg_options: Optional[dict] = None
                            ) -> Tuple[nn.Module, Any]:
    """Build ``cfg.model`` in mmpose's scope (the config's
    ``custom_imports`` are imported), eval mode, SyncBN reverted, no
    weights loaded and no ``init_weights`` (so no download). Returns
    ``(model, cfg)``."""
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope

    if isinstance(config, str):
        if not osp.isfile(config):
            raise FileNotFoundError(f'config file not found: {config}')
        cfg = Config.fromfile(config)
    else:
        cfg = config
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpose'))
    from mmpose.registry import MODELS
    model = MODELS.build(cfg.model)
    model = revert_sync_batchnorm(model)
    model.eval()
    return model, cfg


def complexity_from_config(config,
                           input_shape: Optional[Sequence[int]] = None,
                           cfg_options: Optional[dict] = None
                           ) -> ComplexityResult:
    """Params and FLOPs of a config's model on one ``3 x H x W`` image.

    The estimator's ``_forward`` (backbone, neck, head forward, inference
    mode) is traced, as mmpose's ``get_flops`` does, but with
    ``grid_sample`` counted (see the module docstring).

    Args:
        config (str | Config): config path or object.
        input_shape (sequence of int, optional): ``(H, W)``; default the
            config's input size (:func:`config_input_size`).
        cfg_options (dict, optional): overrides merged into the config.
    """
    model, cfg = build_model_from_config(config, cfg_options)
    if input_shape is None:
        h, w = config_input_size(cfg)
    else:
        if len(input_shape) != 2:
            raise ValueError(f'input_shape must be (H, W), got {input_shape}')
        h, w = (int(v) for v in input_shape)
    if not hasattr(model, '_forward'):
        raise TypeError(f'{type(model).__name__} has no _forward (tensor '
                        'forward) to trace')
    inputs = torch.randn(1, 3, h, w)

    class _TensorForward(nn.Module):
        """Exposes ``model._forward`` as ``forward`` for tracing; the model
        is a child so per-module counts keep its names."""

        def __init__(self, inner):
            super().__init__()
            self.model = inner

        def forward(self, x):
            return self.model._forward(x)

    # Traced with autograd on: under no_grad nn.MultiheadAttention may take
    # its fused path (counted too, but as one op without module split).
    return count_complexity(_TensorForward(model), inputs,
                            breakdown_of='model')

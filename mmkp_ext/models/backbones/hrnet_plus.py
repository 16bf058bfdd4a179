"""HRNet++ backbone (COCO 2019 keypoint challenge report).

``HRNetPlus`` is mmpose's :class:`~mmpose.models.backbones.HRNet` with the
report's three backbone changes, each behind its own switch so that ablations
are possible:

1. ``se_ratio``: squeeze-and-excitation on the residual branch of every
   residual unit (stage-1 bottlenecks and all branch blocks), applied after
   the branch's last norm layer and before the identity is added (mmpose's
   ``SELayer``: global average pool, 1x1 conv to ``C // r`` + ReLU, 1x1 conv
   back to ``C`` + sigmoid; the report uses ``r = 8``).
2. ``avg_pool_downsample``: every stride-2 3x3 convolution except the two
   stem convolutions (i.e. those of the transition layers that open a new
   branch and of the exchange blocks' downsampling paths) becomes a 2x2
   average pool followed by a 1x1 convolution. The replacement keeps the
   parameter name of the convolution it replaces (only the kernel shrinks to
   1x1) and every output shape.
3. ``cross_module_skips``: DenseNet-like skips between exchange (fusion)
   blocks. Every HR module with more than one branch ends with an exchange
   block; its output at branch ``b`` is additionally fed into every later
   exchange block (in the same and in later stages) at branch ``b``, i.e. at
   the same resolution. The skipped feature map passes a 1x1 convolution (+
   norm layer, like every convolution of HRNet) to the receiving branch's
   channel count and is summed into that exchange block's input (the output
   of the branch's residual units).

The report's fourth change, the sub-pixel-convolution head, is the neck
:class:`~mmkp_ext.models.necks.SubPixelFusion`.

With every switch off (the default) ``HRNetPlus`` builds exactly mmpose's
``HRNet``: the same modules, parameter names and forward, so mmpose's HRNet
model-zoo checkpoints load strictly. With switches on, the stem and stage 1
keep their names and shapes (SE only adds ``layer1.*.se_layer.*``), so the
report's initialisation (only stem + stage 1 from an ImageNet HRNet) is
available as the weight initialiser ``HRNetStage1Pretrained`` or the function
:func:`load_hrnet_stage1`; mmengine's ``Pretrained`` would also load every
later tensor whose name and shape happen to match.
"""
import functools
from numbers import Integral
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmengine.model.weight_init import update_init_info
from mmengine.logging import print_log
from torch import Tensor, nn

from mmpose.models.backbones.hrnet import HRModule, HRNet
from mmpose.models.backbones.resnet import BasicBlock, Bottleneck
from mmpose.models.backbones.utils.se_layer import SELayer
from mmpose.registry import MODELS, WEIGHT_INITIALIZERS

__all__ = [
    'HRNetPlus', 'SEBasicBlock', 'SEBottleneck', 'AvgPoolConv2d',
    'CrossSkipHRModule', 'load_hrnet_stage1', 'HRNetStage1PretrainedInit'
]

#: Parameter-name prefixes of the stem and stage 1 (besides the stem norms,
#: whose names depend on ``norm_cfg``: ``bn1``/``bn2`` for BN).
_STAGE1_PREFIXES = ('conv1.', 'conv2.', 'layer1.')


# ---------------------------------------------------------------------------
# 1. SE residual units
# ---------------------------------------------------------------------------
def _build_se(channels: int, ratio: int) -> SELayer:
    if channels // ratio < 1:
        raise ValueError(
            f'se_ratio={ratio} leaves no hidden channel for a residual unit '
            f'with {channels} channels (needs channels // se_ratio >= 1); '
            'use a smaller se_ratio or wider branches')
    return SELayer(channels, ratio=ratio)


class _SEResidual:
    """SE on the residual branch of an mmpose block: ``out = relu(
    SE(branch(x)) + identity)`` with ``branch`` the block's convolutions and
    norms up to (not including) the last ReLU. The SE layer is
    ``self.se_layer`` and its ratio the class attribute ``se_ratio``
    (mmpose's HRNet builds blocks with a fixed argument list, so
    :func:`se_block` binds the ratio by subclassing)."""
    se_ratio = 8

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.se_layer = _build_se(self.out_channels, self.se_ratio)

    def _branch(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:

        def _inner_forward(x):
            out = self.se_layer(self._branch(x))
            identity = x if self.downsample is None else self.downsample(x)
            return out + identity

        if self.with_cp and x.requires_grad:
            out = cp.checkpoint(_inner_forward, x, use_reentrant=False)
        else:
            out = _inner_forward(x)
        return self.relu(out)


class SEBasicBlock(_SEResidual, BasicBlock):
    """mmpose's ``BasicBlock`` with SE on the residual branch:
    ``out = relu(SE(bn2(conv2(relu(bn1(conv1(x)))))) + identity)``."""

    def _branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        return self.norm2(self.conv2(out))


class SEBottleneck(_SEResidual, Bottleneck):
    """mmpose's ``Bottleneck`` with SE on the residual branch (after
    ``norm3``, before the addition)."""

    def _branch(self, x: Tensor) -> Tensor:
        out = self.relu(self.norm1(self.conv1(x)))
        out = self.relu(self.norm2(self.conv2(out)))
        return self.norm3(self.conv3(out))


@functools.lru_cache(maxsize=None)
def se_block(block: type, se_ratio: int) -> type:
    """The SE variant of mmpose's ``BasicBlock`` / ``Bottleneck`` with
    ``se_ratio`` bound as a class attribute (one class per pair, cached)."""
    base = {BasicBlock: SEBasicBlock, Bottleneck: SEBottleneck}[block]
    if se_ratio == base.se_ratio:
        return base
    return type(base.__name__, (base, ), {
        'se_ratio': se_ratio,
        '__module__': __name__,
        '__qualname__': f'{base.__name__}[se_ratio={se_ratio}]'
    })


# ---------------------------------------------------------------------------
# 2. Average-pool downsampling
# ---------------------------------------------------------------------------
class AvgPoolConv2d(nn.Conv2d):
    """2x2 average pool (stride 2) followed by a 1x1 convolution.

    Replaces a stride-2 3x3 convolution. It is an ``nn.Conv2d`` (kernel 1)
    so the parameter keeps the replaced convolution's name (``...weight``,
    now ``(C_out, C_in, 1, 1)``) and conv initialisers apply to it.
    ``ceil_mode=True`` gives the strided 3x3 convolution's output size
    ``ceil(H / 2) x ceil(W / 2)`` also for odd inputs (a last, partial window
    averages the pixels it covers).
    """

    def __init__(self, in_channels: int, out_channels: int,
                 bias: bool = False):
        super().__init__(in_channels, out_channels, kernel_size=1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.avg_pool2d(x, 2, ceil_mode=True))


def _is_strided_conv3x3(m: nn.Module) -> bool:
    return (isinstance(m, nn.Conv2d) and not isinstance(m, AvgPoolConv2d)
            and m.kernel_size == (3, 3) and m.stride == (2, 2))


# ---------------------------------------------------------------------------
# 3. Cross-module skips
# ---------------------------------------------------------------------------
class CrossSkipHRModule(HRModule):
    """mmpose's ``HRModule`` whose exchange block also receives the outputs
    of earlier exchange blocks at the same resolution.

    Args:
        *args, **kwargs: Those of ``HRModule``.
        skip_in_channels (Sequence[Sequence[int]]): Per branch ``b``, the
            channel counts of the earlier exchange outputs at branch ``b``,
            oldest first. ``cross_skips[b][k]`` (1x1 conv + norm, to the
            branch's channel count) maps the ``k``-th of them.

    ``forward(x, skips)`` takes ``skips[b]``, the earlier exchange outputs at
    branch ``b`` (same order and count as ``skip_in_channels[b]``), and sums
    ``cross_skips[b][k](skips[b][k])`` into the output of branch ``b``'s
    residual units before the exchange block.
    """

    def __init__(self, *args,
                 skip_in_channels: Sequence[Sequence[int]] = (),
                 **kwargs):
        super().__init__(*args, **kwargs)
        if len(skip_in_channels) > self.num_branches:
            raise ValueError(
                f'skip_in_channels has {len(skip_in_channels)} entries for '
                f'{self.num_branches} branches')
        self.cross_skips = nn.ModuleList()
        for b, chans in enumerate(skip_in_channels):
            self.cross_skips.append(
                nn.ModuleList(
                    self._make_skip(c, self.in_channels[b]) for c in chans))

    def _make_skip(self, in_channels: int, out_channels: int) -> nn.Module:
        return nn.Sequential(
            build_conv_layer(
                self.conv_cfg, in_channels, out_channels, kernel_size=1,
                bias=False),
            build_norm_layer(self.norm_cfg, out_channels)[1])

    def forward(self, x: List[Tensor],
                skips: Optional[Sequence[Sequence[Tensor]]] = None
                ) -> List[Tensor]:
        """Branches, cross-module skips, exchange.

        Args:
            x (list[Tensor]): Per branch ``(B, C_b, H_b, W_b)``.
            skips (Sequence[Sequence[Tensor]], optional): Per branch, the
                earlier exchange outputs at that resolution; the counts must
                match ``cross_skips``. ``None``: no earlier exchange exists.

        Returns:
            list[Tensor]: The exchange outputs (one per output branch).
        """
        if self.num_branches == 1:  # no exchange block, nothing to skip to
            return [self.branches[0](x[0])]
        feats = [branch(xi) for branch, xi in zip(self.branches, x)]
        skips = list(skips) if skips is not None else []
        expected = [len(c) for c in self.cross_skips]
        expected += [0] * (self.num_branches - len(expected))
        got = [len(s) for s in skips]
        got += [0] * (self.num_branches - len(got))
        if got != expected:
            raise ValueError(f'expected {expected} earlier exchange outputs '
                             f'per branch, got {got}')
        for b, convs in enumerate(self.cross_skips):
            for conv, earlier in zip(convs, skips[b]):
                feats[b] = feats[b] + conv(earlier)

        # Exchange, summed in mmpose's order (bit-identical to HRModule).
        outs = []
        for i, fuse in enumerate(self.fuse_layers):
            y = 0
            for j in range(self.num_branches):
                y = y + (feats[j] if i == j else fuse[j](feats[j]))
            outs.append(self.relu(y))
        return outs


# ---------------------------------------------------------------------------
# The backbone
# ---------------------------------------------------------------------------
@MODELS.register_module()
class HRNetPlus(HRNet):
    """HRNet++: mmpose's HRNet with switchable SE residual units,
    average-pool downsampling and cross-module skip connections.

    See the module docstring for what each switch changes. All switches off
    gives mmpose's ``HRNet`` exactly (names, shapes, outputs).

    Args:
        extra (dict): Stage configuration, as for mmpose's ``HRNet``.
        se_ratio (int, optional): SE reduction ratio ``r`` (the report: 8);
            ``None`` disables SE. Every residual unit needs
            ``channels // r >= 1``.
        avg_pool_downsample (bool): Replace every strided 3x3 conv except
            the stem's two by AvgPool(2) + 1x1 conv.
        cross_module_skips (bool): Feed each exchange block's outputs into
            every later exchange block at the same resolution.
        **kwargs: ``in_channels``, ``conv_cfg``, ``norm_cfg``, ``norm_eval``,
            ``with_cp``, ``zero_init_residual``, ``frozen_stages``,
            ``init_cfg`` of mmpose's ``HRNet``. ``avg_pool_downsample``
            needs the default ``conv_cfg=None`` (plain ``nn.Conv2d``).

    Initialisation (``init_cfg``): the default is mmpose HRNet's (normal
    std 0.001 for convs, 1 for norms). An mmpose HRNet checkpoint loads
    fully with ``dict(type='Pretrained', checkpoint=...)`` only with all
    switches off. With switches on, load just the stem and stage 1, as the
    report does, after the default initialisation::

        init_cfg=[
            dict(type='Normal', std=0.001, layer=['Conv2d']),
            dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm']),
            dict(type='HRNetStage1Pretrained',
                 checkpoint='https://download.openmmlab.com/mmpose/'
                 'pretrain_models/hrnet_w48-8ef0771d.pth'),
        ]

    (``prefix='backbone.'`` selects the backbone of a pose-model
    checkpoint). SE layers inside stage 1 are not in such checkpoints and
    keep their initialisation.

    Forward: ``(B, in_channels, H, W)`` -> tuple of the stage-4 outputs, as
    ``HRNet`` (by default one map ``(B, C_0, H/4, W/4)``).
    """

    def __init__(self,
                 extra: dict,
                 se_ratio: Optional[int] = None,
                 avg_pool_downsample: bool = False,
                 cross_module_skips: bool = False,
                 **kwargs):
        if se_ratio is not None and (isinstance(se_ratio, bool)
                                     or not isinstance(se_ratio, Integral)
                                     or se_ratio < 1):
            raise ValueError(
                f'se_ratio must be None (no SE) or an int >= 1, got '
                f'{se_ratio!r}')
        for name, flag in (('avg_pool_downsample', avg_pool_downsample),
                           ('cross_module_skips', cross_module_skips)):
            if not isinstance(flag, bool):
                raise ValueError(f'{name} must be True or False, got '
                                 f'{flag!r}')
        if avg_pool_downsample and kwargs.get('conv_cfg') is not None:
            raise ValueError(
                'avg_pool_downsample replaces convolutions by nn.Conv2d-based '
                f'AvgPoolConv2d and needs conv_cfg=None, got '
                f'{kwargs["conv_cfg"]!r}')
        _check_extra(extra, HRNet.blocks_dict)

        # Read by the overridden builders while HRNet.__init__ runs (plain
        # Python values may be set before nn.Module.__init__).
        self.se_ratio = se_ratio
        self.avg_pool_downsample = avg_pool_downsample
        self.cross_module_skips = cross_module_skips
        if se_ratio is not None:
            self.blocks_dict = {
                k: se_block(v, int(se_ratio))
                for k, v in HRNet.blocks_dict.items()
            }
        # Per branch: channels of the exchange outputs built so far.
        self._exchange_channels: Dict[int, List[int]] = {}
        super().__init__(extra, **kwargs)
        del self._exchange_channels

        if avg_pool_downsample:
            self._replace_strided_convs()
            self._freeze_stages()  # the replacements of frozen stages

    def _replace_strided_convs(self) -> None:
        """Swap every stride-2 3x3 conv outside the stem for
        :class:`AvgPoolConv2d`, under the same name."""
        stem = {id(self.conv1), id(self.conv2)}
        targets = [(name, m) for name, m in self.named_modules()
                   if _is_strided_conv3x3(m) and id(m) not in stem]
        for name, m in targets:
            parent_name, _, child = name.rpartition('.')
            parent = self.get_submodule(parent_name)
            setattr(parent, child,
                    AvgPoolConv2d(m.in_channels, m.out_channels,
                                  bias=m.bias is not None))

    def _make_stage(self, layer_config, in_channels, multiscale_output=True):
        """mmpose's stage builder; with ``cross_module_skips`` the modules
        are :class:`CrossSkipHRModule` wired to all earlier exchanges."""
        if not self.cross_module_skips:
            return super()._make_stage(layer_config, in_channels,
                                       multiscale_output)
        num_modules = layer_config['num_modules']
        num_branches = layer_config['num_branches']
        block = self.blocks_dict[layer_config['block']]
        modules = []
        for i in range(num_modules):
            # As in HRNet: only the stage's last module may drop the lower
            # resolution outputs.
            multiscale = multiscale_output or i < num_modules - 1
            skip_in = [
                list(self._exchange_channels.get(b, []))
                for b in range(num_branches)
            ] if num_branches > 1 else []
            module = CrossSkipHRModule(
                num_branches,
                block,
                layer_config['num_blocks'],
                in_channels,
                layer_config['num_channels'],
                multiscale,
                with_cp=self.with_cp,
                norm_cfg=self.norm_cfg,
                conv_cfg=self.conv_cfg,
                upsample_cfg=self.upsample_cfg,
                skip_in_channels=skip_in)
            in_channels = module.in_channels
            if num_branches > 1:
                for b in range(len(module.fuse_layers)):
                    self._exchange_channels.setdefault(b, []).append(
                        in_channels[b])
            modules.append(module)
        return nn.Sequential(*modules), in_channels

    def forward(self, x: Tensor) -> tuple:
        """``(B, C_in, H, W)`` -> tuple of stage-4 outputs (see class
        docstring)."""
        if not self.cross_module_skips:
            return super().forward(x)
        x = self.relu(self.norm1(self.conv1(x)))
        x = self.relu(self.norm2(self.conv2(x)))
        y_list = [self.layer1(x)]
        history: Dict[int, List[Tensor]] = {}  # branch -> exchange outputs
        for s in (2, 3, 4):
            transition = getattr(self, f'transition{s - 1}')
            num_branches = getattr(self, f'stage{s}_cfg')['num_branches']
            # Same inputs as HRNet.forward (a transition reads the last
            # branch of the previous stage).
            x_list = [
                y_list[i] if transition[i] is None else transition[i](
                    y_list[-1]) for i in range(num_branches)
            ]
            for module in getattr(self, f'stage{s}'):
                if module.num_branches == 1:
                    x_list = module(x_list)
                    continue
                skips = [
                    history.get(b, []) for b in range(module.num_branches)
                ]
                x_list = module(x_list, skips)
                for b, y in enumerate(x_list):
                    history.setdefault(b, []).append(y)
            y_list = x_list
        return tuple(y_list)


def _check_extra(extra, blocks_dict) -> None:
    """Clear errors for a malformed ``extra`` (mmpose raises KeyError)."""
    if not isinstance(extra, dict):
        raise ValueError(f'extra must be a dict of stage configs, got '
                         f'{type(extra).__name__}')
    for s in ('stage1', 'stage2', 'stage3', 'stage4'):
        if s not in extra:
            raise ValueError(f'extra lacks {s!r} (HRNet needs stage1..4)')
        cfg = extra[s]
        for key in ('num_modules', 'num_branches', 'block', 'num_blocks',
                    'num_channels'):
            if key not in cfg:
                raise ValueError(f'extra[{s!r}] lacks {key!r}')
        if cfg['block'] not in blocks_dict:
            raise ValueError(f'extra[{s!r}]["block"] must be one of '
                             f'{sorted(blocks_dict)}, got {cfg["block"]!r}')


# ---------------------------------------------------------------------------
# Partial initialisation: stem + stage 1
# ---------------------------------------------------------------------------
def _stage1_scope(backbone: HRNet):
    norms = (f'{backbone.norm1_name}.', f'{backbone.norm2_name}.')
    prefixes = _STAGE1_PREFIXES + norms
    return lambda k: k.startswith(prefixes)


def load_hrnet_stage1(backbone: HRNet,
                      checkpoint: Union[str, Dict[str, Tensor]],
                      prefix: Optional[str] = None,
                      map_location: str = 'cpu') -> List[str]:
    """Load the stem and stage 1 of an HRNet checkpoint into ``backbone``.

    Loads ``conv1``, ``conv2``, their norms and ``layer1.*`` and nothing
    else: the report initialises only stage 1 from an ImageNet HRNet. SE
    layers of ``backbone``'s stage 1 (``*.se_layer.*``) are allowed to be
    absent from the checkpoint and then keep their values.

    Args:
        backbone (HRNet): An ``HRNet`` or ``HRNetPlus``.
        checkpoint (str | dict): File or URL (mmengine's loader, which
            unwraps ``state_dict``), or a state dict.
        prefix (str, optional): Key prefix to select and strip, e.g.
            ``'backbone.'`` for a pose model's checkpoint; keys without it
            are ignored.
        map_location (str): Where to load tensors.

    Returns:
        list[str]: The loaded keys (backbone names), sorted.

    Raises:
        ValueError: The checkpoint lacks one of ``backbone``'s stem/stage-1
            tensors, has stem/stage-1 tensors ``backbone`` lacks, or shapes
            differ (e.g. another width or block type).
    """
    if isinstance(checkpoint, str):
        from mmkp_ext.safe_load import load_checkpoint_dict
        ckpt = load_checkpoint_dict(checkpoint, map_location=map_location)
        state = ckpt.get('state_dict', ckpt)
        where = checkpoint
    else:
        state, where = checkpoint, 'the given state dict'
    if not isinstance(state, dict):
        raise ValueError(f'{where} holds no state dict')
    if prefix:
        state = {
            k[len(prefix):]: v
            for k, v in state.items() if k.startswith(prefix)
        }
    in_scope = _stage1_scope(backbone)
    own = {k: v for k, v in backbone.state_dict().items() if in_scope(k)}
    src = {k: v for k, v in state.items() if in_scope(k)}

    missing = sorted(
        k for k in own
        if k not in src and '.se_layer.' not in k
        and not k.endswith('num_batches_tracked'))
    unexpected = sorted(k for k in src if k not in own)
    mismatched = sorted(f'{k}: checkpoint {tuple(src[k].shape)} vs model '
                        f'{tuple(own[k].shape)}' for k in src
                        if k in own and src[k].shape != own[k].shape)
    problems = []
    if missing:
        problems.append(f'missing stem/stage-1 tensors {missing[:5]}'
                        f'{" ..." if len(missing) > 5 else ""}')
    if unexpected:
        problems.append(f'stem/stage-1 tensors the model lacks '
                        f'{unexpected[:5]}'
                        f'{" ..." if len(unexpected) > 5 else ""}')
    if mismatched:
        problems.append(f'shape mismatches {mismatched[:5]}')
    if problems:
        raise ValueError(
            f'{where} (prefix={prefix!r}) does not match the stem and stage '
            f'1 of this {type(backbone).__name__}: ' + '; '.join(problems))

    with torch.no_grad():
        for k, v in src.items():
            own[k].copy_(v.to(own[k].dtype))
    return sorted(src)


@WEIGHT_INITIALIZERS.register_module(name='HRNetStage1Pretrained')
class HRNetStage1PretrainedInit:
    """Weight initialiser: the stem and stage 1 of an HRNet checkpoint
    (:func:`load_hrnet_stage1`); every other weight keeps what the earlier
    initialisers of the ``init_cfg`` list gave it.

    Args:
        checkpoint (str): File or URL of an HRNet (ImageNet or mmpose)
            checkpoint.
        prefix (str, optional): E.g. ``'backbone.'`` for a pose model.
        map_location (str): Where to load tensors.
    """

    def __init__(self, checkpoint: str, prefix: Optional[str] = None,
                 map_location: str = 'cpu'):
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.map_location = map_location

    def __call__(self, module: nn.Module) -> None:
        if not isinstance(module, HRNet):
            raise TypeError('HRNetStage1Pretrained initialises an HRNet or '
                            f'HRNetPlus, got {type(module).__name__}')
        keys = load_hrnet_stage1(module, self.checkpoint, self.prefix,
                                 self.map_location)
        print_log(
            f'HRNetStage1Pretrained: loaded {len(keys)} stem/stage-1 tensors '
            f'from {self.checkpoint}', logger='current')
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=self._get_init_info())

    def _get_init_info(self) -> str:
        return (f'{self.__class__.__name__}: stem and stage 1 from '
                f'{self.checkpoint}')

"""DLA-34 backbone (Deep Layer Aggregation, Yu et al., CVPR 2018).

The network of the grouped-CenterNet paper: a 7x7 stem, two plain
convolution levels and four hierarchical aggregation trees of basic residual
blocks. Level ``i`` (``i = 0..5``) has stride ``2**i`` with respect to the
input and ``channels[i]`` channels (16, 32, 64, 128, 256, 512 for DLA-34).

Parameter names follow the public ImageNet DLA-34 checkpoints (timm's
``dla34``; the original ucbdrive/dla file also used by CenterNet), so those
weights load into :class:`DLANet` with strict key matching once the
classifier ``fc.*`` is dropped (see :func:`dla34_imagenet_to_dlanet` and
``docs/dla34_imagenet_weights.md``)::

    base_layer.{0: conv7x7, 1: norm}
    level0.{0: conv3x3, 1: norm}            level1.{0: conv3x3 s2, 1: norm}
    levelN.tree1 / .tree2                   basic blocks (conv1, bn1,
                                            conv2, bn2) or nested trees
    levelN[...].root.{conv, bn}             1x1 aggregation node
    levelN[...].project.{0: conv1x1, 1: norm}
                                            shortcut projection of a leaf
                                            tree whose channels change

Like timm's implementation, a tree only owns a ``project`` where it uses
one (a leaf tree whose input and output channels differ). The original
ucbdrive file also stores ``project`` weights of the two-level trees
``level3`` and ``level4`` that its own forward pass computes but never uses;
:func:`dla34_imagenet_to_dlanet` drops them. Keeping them would leave
parameters without gradients, which breaks ``DistributedDataParallel`` with
its default ``find_unused_parameters=False``.
"""
import copy
from collections import OrderedDict
from numbers import Integral
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from mmcv.cnn import build_norm_layer
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmpose.models.backbones.base_backbone import BaseBackbone
from mmpose.registry import MODELS
from mmpose.utils.typing import ConfigType, OptMultiConfig
from ...utils.validation import check_int_seq

__all__ = ['DLANet', 'dla34_imagenet_to_dlanet']

#: Architecture of each supported depth: (levels, channels). ``levels[0]``
#: and ``levels[1]`` count the 3x3 convolutions of the two plain levels,
#: ``levels[2:]`` the depths of the four aggregation trees.
ARCH_SETTINGS = {
    34: ((1, 1, 1, 2, 2, 1), (16, 32, 64, 128, 256, 512)),
}

#: Number of levels (outputs) of a DLA network.
NUM_LEVELS = 6


def _norm(norm_cfg: ConfigType, num_features: int) -> nn.Module:
    """Normalisation layer from ``norm_cfg`` (only the layer, the name is
    fixed by the checkpoint layout, not by mmcv's naming)."""
    return build_norm_layer(norm_cfg, num_features)[1]


class DLABasicBlock(nn.Module):
    """Residual block ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut)``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Stride of ``conv1`` (1 or 2).
        norm_cfg (dict): Normalisation layer config.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 norm_cfg: ConfigType):
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size=3,
            stride=stride,
            padding=1,
            bias=False)
        self.bn1 = _norm(norm_cfg, out_channels)
        self.conv2 = nn.Conv2d(
            out_channels,
            out_channels,
            kernel_size=3,
            stride=1,
            padding=1,
            bias=False)
        self.bn2 = _norm(norm_cfg, out_channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor, shortcut: Optional[Tensor] = None) -> Tensor:
        """``x``: ``(B, C_in, H, W)``; ``shortcut``: the residual branch,
        ``(B, C_out, H/stride, W/stride)``, ``x`` itself when ``None``.
        Returns ``(B, C_out, H/stride, W/stride)``."""
        if shortcut is None:
            shortcut = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # In place: batch norm's backward does not need its output.
        out += shortcut
        return self.relu(out)


class DLARoot(nn.Module):
    """Aggregation node: ``relu(bn(conv1x1(cat(inputs))))`` (+ the first
    input before the ReLU when ``residual``; DLA-34 has no residual root).

    Args:
        in_channels (int): Total channels of the concatenated inputs.
        out_channels (int): Output channels.
        norm_cfg (dict): Normalisation layer config.
        residual (bool): Add the first input to the node's output.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 norm_cfg: ConfigType,
                 residual: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size=1, stride=1, bias=False)
        self.bn = _norm(norm_cfg, out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual

    def forward(self, *inputs: Tensor) -> Tensor:
        """Inputs ``(B, C_k, H, W)`` with ``sum(C_k) == in_channels``;
        returns ``(B, out_channels, H, W)``."""
        out = self.bn(self.conv(torch.cat(inputs, dim=1)))
        if self.residual:
            out += inputs[0]
        return self.relu(out)


class DLATree(nn.Module):
    """Hierarchical deep aggregation tree of :class:`DLABasicBlock`.

    A tree of depth 1 holds two blocks and a root that aggregates both
    blocks' outputs (and the extra ``children``); a tree of depth ``d > 1``
    holds two sub-trees of depth ``d - 1`` and hands its first sub-tree's
    output down to the root of the second one. With ``level_root`` the
    (down-sampled) tree input is also fed to the deepest root.

    Args:
        levels (int): Depth of the tree (>= 1).
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        stride (int): Down-sampling factor of the tree (1 or 2).
        norm_cfg (dict): Normalisation layer config.
        level_root (bool): Feed the down-sampled input to the root.
        root_dim (int): Input channels of the root; 0 means
            ``2 * out_channels`` (+ ``in_channels`` with ``level_root``).
        root_residual (bool): Residual connection in the root.
    """

    def __init__(self,
                 levels: int,
                 in_channels: int,
                 out_channels: int,
                 stride: int,
                 norm_cfg: ConfigType,
                 level_root: bool = False,
                 root_dim: int = 0,
                 root_residual: bool = False):
        super().__init__()
        if root_dim == 0:
            root_dim = 2 * out_channels
        if level_root:
            root_dim += in_channels
        self.levels = levels
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.level_root = level_root
        self.root_dim = root_dim
        self.downsample = (
            nn.MaxPool2d(stride, stride=stride)
            if stride > 1 else nn.Identity())
        self.project = nn.Identity()
        if levels == 1:
            self.tree1 = DLABasicBlock(in_channels, out_channels, stride,
                                       norm_cfg)
            self.tree2 = DLABasicBlock(out_channels, out_channels, 1, norm_cfg)
            self.root = DLARoot(root_dim, out_channels, norm_cfg,
                                root_residual)
            if in_channels != out_channels:
                # Only a leaf tree feeds the projected shortcut to a block.
                self.project = nn.Sequential(
                    nn.Conv2d(
                        in_channels,
                        out_channels,
                        kernel_size=1,
                        stride=1,
                        bias=False), _norm(norm_cfg, out_channels))
        else:
            self.tree1 = DLATree(
                levels - 1,
                in_channels,
                out_channels,
                stride,
                norm_cfg,
                root_dim=0,
                root_residual=root_residual)
            # The second sub-tree's root also receives this tree's children
            # (root_dim channels so far) and the first sub-tree's output.
            self.tree2 = DLATree(
                levels - 1,
                out_channels,
                out_channels,
                1,
                norm_cfg,
                root_dim=root_dim + out_channels,
                root_residual=root_residual)

    def forward(self,
                x: Tensor,
                children: Optional[List[Tensor]] = None) -> Tensor:
        """``x``: ``(B, in_channels, H, W)`` with even ``H, W`` when the
        tree down-samples; returns ``(B, out_channels, H/s, W/s)``."""
        children = [] if children is None else list(children)
        if self.levels == 1:
            bottom = self.downsample(x)
            if self.level_root:
                children.append(bottom)
            x1 = self.tree1(x, self.project(bottom))
            x2 = self.tree2(x1)
            return self.root(x2, x1, *children)
        if self.level_root:
            children.append(self.downsample(x))
        x1 = self.tree1(x)
        children.append(x1)
        return self.tree2(x1, children=children)


@MODELS.register_module()
class DLANet(BaseBackbone):
    """DLA backbone (DLA-34) returning the feature maps of selected levels.

    Level ``i`` has stride ``2**i`` and ``channels[i]`` channels; levels 2 to
    5 are aggregation trees (deformable convolutions are not used anywhere:
    the grouped-CenterNet paper trains DLA-34 with plain 3x3 convolutions).

    Args:
        depth (int): Network depth; only 34 is supported.
        in_channels (int): Input image channels.
        levels (Sequence[int], optional): 6 ints: the number of 3x3
            convolutions of levels 0 and 1, then the depths of the trees of
            levels 2-5. ``None``: DLA-34's ``(1, 1, 1, 2, 2, 1)``.
        channels (Sequence[int], optional): 6 output channels per level.
            ``None``: DLA-34's ``(16, 32, 64, 128, 256, 512)``. Small values
            are allowed (tests); ImageNet weights need the default.
        out_indices (Sequence[int] | int): Levels to return, strictly
            increasing, each in ``0..5``. Levels above the largest index are
            not computed.
        norm_cfg (dict): Normalisation layer config (mmcv's
            ``build_norm_layer``), e.g. ``dict(type='SyncBN')``.
        frozen_stages (int): ``-1``: train everything; ``k`` in ``0..5``:
            put ``base_layer`` and ``level0`` .. ``level{k}`` in eval mode
            and stop their gradients.
        norm_eval (bool): Keep all batch-norm layers in eval mode (frozen
            running statistics) during training.
        init_cfg (dict | list, optional): Initialisation config. ``None``:
            DLA's own scheme (Kaiming-normal, fan-out convolutions; unit
            norm weights, zero biases). Use
            ``dict(type='Pretrained', checkpoint=...)`` for ImageNet weights
            (see ``docs/dla34_imagenet_weights.md``).

    Inputs of shape ``(B, in_channels, H, W)`` need ``H`` and ``W``
    divisible by ``2**max(out_indices)`` (so every level has exactly its
    stride). The output is a tuple of ``(B, channels[i], H / 2**i,
    W / 2**i)`` tensors for ``i`` in ``out_indices``.

    Example:
        >>> backbone = dict(type='DLANet', depth=34)
        >>> neck = dict(type='DLAUpNeck', in_channels=(16, 32, 64, 128, 256,
        ...             512), first_level=2, last_level=5, out_channels=64)
    """

    default_init_cfg = [
        dict(
            type='Kaiming',
            layer='Conv2d',
            mode='fan_out',
            nonlinearity='relu',
            distribution='normal'),
        dict(
            type='Constant', val=1, bias=0, layer=['_BatchNorm', 'GroupNorm'])
    ]

    def __init__(self,
                 depth: int = 34,
                 in_channels: int = 3,
                 levels: Optional[Sequence[int]] = None,
                 channels: Optional[Sequence[int]] = None,
                 out_indices: Sequence[int] = (0, 1, 2, 3, 4, 5),
                 norm_cfg: ConfigType = dict(type='BN'),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg: OptMultiConfig = None):
        if init_cfg is None:
            init_cfg = copy.deepcopy(self.default_init_cfg)
        super().__init__(init_cfg)
        if depth not in ARCH_SETTINGS:
            raise ValueError(
                f'DLANet supports depth {sorted(ARCH_SETTINGS)} only, got '
                f'{depth!r}')
        if (isinstance(in_channels, bool)
                or not isinstance(in_channels, Integral) or in_channels < 1):
            raise ValueError(
                f'in_channels must be a positive int, got {in_channels!r}')
        default_levels, default_channels = ARCH_SETTINGS[depth]
        levels = check_int_seq('levels',
                                default_levels if levels is None else levels,
                                NUM_LEVELS, 1)
        channels = check_int_seq(
            'channels', default_channels if channels is None else channels,
            NUM_LEVELS, 1)
        if isinstance(out_indices, Integral):
            out_indices = (out_indices, )
        if (isinstance(out_indices,
                       (str, bytes)) or not isinstance(out_indices, Sequence)
                or len(out_indices) == 0):
            raise TypeError('out_indices must be an int or a non-empty '
                            f'sequence of ints, got {out_indices!r}')
        if any(
                isinstance(i, bool) or not isinstance(i, Integral)
                or not 0 <= i < NUM_LEVELS for i in out_indices):
            raise ValueError(f'out_indices must lie in 0..{NUM_LEVELS - 1}, '
                             f'got {list(out_indices)}')
        if any(a >= b for a, b in zip(out_indices, out_indices[1:])):
            raise ValueError('out_indices must be strictly increasing, got '
                             f'{list(out_indices)}')
        if (isinstance(frozen_stages, bool)
                or not isinstance(frozen_stages, Integral)
                or not -1 <= frozen_stages < NUM_LEVELS):
            raise ValueError(f'frozen_stages must be an int in -1..'
                             f'{NUM_LEVELS - 1}, got {frozen_stages!r}')
        if not isinstance(norm_cfg, dict) or 'type' not in norm_cfg:
            raise TypeError(
                f'norm_cfg must be a dict with a "type", got {norm_cfg!r}')
        norm_cfg = copy.deepcopy(norm_cfg)

        self.depth = depth
        self.levels = levels
        self.channels = channels
        self.out_indices = tuple(int(i) for i in out_indices)
        self.frozen_stages = int(frozen_stages)
        self.norm_eval = bool(norm_eval)

        self.base_layer = nn.Sequential(
            nn.Conv2d(
                in_channels,
                channels[0],
                kernel_size=7,
                stride=1,
                padding=3,
                bias=False), _norm(norm_cfg, channels[0]),
            nn.ReLU(inplace=True))
        self.level0 = self._make_conv_level(channels[0], channels[0],
                                            levels[0], 1, norm_cfg)
        self.level1 = self._make_conv_level(channels[0], channels[1],
                                            levels[1], 2, norm_cfg)
        # Levels 3-5 feed their down-sampled input to the root as well
        # (level_root); level 2 does not.
        for i in range(2, NUM_LEVELS):
            self.add_module(
                f'level{i}',
                DLATree(
                    levels[i],
                    channels[i - 1],
                    channels[i],
                    2,
                    norm_cfg,
                    level_root=i > 2))
        self._freeze_stages()

    @staticmethod
    def _make_conv_level(in_channels: int, out_channels: int, num_convs: int,
                         stride: int, norm_cfg: ConfigType) -> nn.Sequential:
        """``num_convs`` x (conv3x3, norm, ReLU); the first has ``stride``."""
        modules = []
        for i in range(num_convs):
            modules += [
                nn.Conv2d(
                    in_channels,
                    out_channels,
                    kernel_size=3,
                    stride=stride if i == 0 else 1,
                    padding=1,
                    bias=False),
                _norm(norm_cfg, out_channels),
                nn.ReLU(inplace=True)
            ]
            in_channels = out_channels
        return nn.Sequential(*modules)

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """Feature maps of the levels in ``out_indices``.

        Args:
            x (Tensor): ``(B, in_channels, H, W)`` images, ``H`` and ``W``
                divisible by ``2**max(out_indices)``.

        Returns:
            tuple[Tensor]: ``(B, channels[i], H / 2**i, W / 2**i)`` for each
            ``i`` in ``out_indices``, in that order.
        """
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise ValueError('DLANet expects a (B, C, H, W) tensor, got '
                             f'{getattr(x, "shape", type(x).__name__)}')
        top = self.out_indices[-1]
        H, W = x.shape[-2:]
        if H % 2**top or W % 2**top:
            raise ValueError(
                f'DLANet input size {H}x{W} must be divisible by '
                f'{2**top} (the stride of level {top}) so that each level '
                'has exactly stride 2**level')
        outs = []
        x = self.base_layer(x)
        for i in range(top + 1):
            x = getattr(self, f'level{i}')(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)

    def _freeze_stages(self):
        """Eval mode and no gradients for ``base_layer`` and the levels
        ``0..frozen_stages``."""
        if self.frozen_stages < 0:
            return
        stages = [self.base_layer] + [
            getattr(self, f'level{i}') for i in range(self.frozen_stages + 1)
        ]
        for m in stages:
            m.eval()
            for param in m.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        """Switch to train/eval mode, keeping frozen stages (and, with
        ``norm_eval``, every batch-norm layer) in eval mode."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


def _unused_project_prefixes(model: nn.Module) -> List[str]:
    """``'<name>.project.'`` of every tree of depth > 1 whose channels
    change: the ucbdrive layout stores (unused) weights there."""
    return [
        f'{name}.project.' for name, m in model.named_modules()
        if isinstance(m, DLATree) and m.levels > 1
        and m.in_channels != m.out_channels
    ]


def _listing(keys: Sequence[str], limit: int = 12) -> str:
    keys = sorted(keys)
    more = f' ... (+{len(keys) - limit} more)' if len(keys) > limit else ''
    return ', '.join(keys[:limit]) + more


def dla34_imagenet_to_dlanet(state_dict: Mapping[str, Tensor]
                             ) -> 'OrderedDict[str, Tensor]':
    """Convert an ImageNet DLA-34 state dict to :class:`DLANet` keys.

    Accepts timm's ``dla34`` layout and the original ucbdrive/dla layout
    (``dla34-ba72cf86.pth``, the file CenterNet loads), optionally wrapped
    as ``{'state_dict': ...}`` and/or with a ``module.`` (DataParallel) or
    ``backbone.`` (mmpose model) prefix. The conversion

    - drops the classifier ``fc.*``;
    - drops ``level3.project.*`` and ``level4.project.*`` (ucbdrive layout
      only; the original network never uses them);
    - with a ``backbone.`` prefix keeps only the backbone's keys;
    - fills a missing batch-norm ``num_batches_tracked`` (older files) with
      0, which is what PyTorch loads for files saved without it.

    The result has exactly the keys of ``DLANet(depth=34)`` with matching
    shapes, so ``DLANet(depth=34).load_state_dict(result, strict=True)``
    succeeds; anything else raises.

    Args:
        state_dict (Mapping[str, Tensor]): The checkpoint's tensors.

    Returns:
        OrderedDict[str, Tensor]: The converted state dict (same tensors,
        not copied).

    Raises:
        TypeError: If ``state_dict`` is not a mapping of str to tensors.
        ValueError: Listing unexpected keys, missing keys and shape
            mismatches when the input is not a DLA-34 ImageNet state dict.
    """
    if (isinstance(state_dict, Mapping) and 'state_dict' in state_dict
            and isinstance(state_dict['state_dict'], Mapping)):
        state_dict = state_dict['state_dict']
    if not isinstance(state_dict, Mapping):
        raise TypeError('state_dict must be a mapping of parameter names to '
                        f'tensors, got {type(state_dict).__name__}')
    bad = [
        k for k, v in state_dict.items()
        if not isinstance(k, str) or not isinstance(v, Tensor)
    ]
    if bad:
        raise TypeError('state_dict must map str keys to tensors; offending '
                        f'keys: {_listing([str(k) for k in bad])}')

    items = [(k[len('module.'):] if k.startswith('module.') else k, v)
             for k, v in state_dict.items()]
    if any(k.startswith('backbone.') for k, _ in items):
        items = [(k[len('backbone.'):], v) for k, v in items
                 if k.startswith('backbone.')]

    # The reference key set and shapes, without allocating 15M parameters
    # where torch supports devices as context managers (torch >= 2.0).
    if hasattr(torch.device, '__enter__'):
        with torch.device('meta'):
            reference = DLANet(depth=34)
    else:
        reference = DLANet(depth=34)
    expected: Dict[str, Tensor] = reference.state_dict()
    droppable = ['fc.'] + _unused_project_prefixes(reference)

    out = OrderedDict()
    unexpected = []
    for k, v in items:
        if any(k.startswith(p) for p in droppable):
            continue
        if k not in expected:
            unexpected.append(k)
            continue
        out[k] = v
    for k, ref in expected.items():
        if k.endswith('.num_batches_tracked') and k not in out:
            out[k] = torch.zeros((), dtype=ref.dtype)
    missing = [k for k in expected if k not in out]
    mismatched = [
        f'{k}: {tuple(out[k].shape)} vs {tuple(expected[k].shape)}'
        for k in out if out[k].shape != expected[k].shape
    ]
    problems = []
    if unexpected:
        problems.append(f'{len(unexpected)} unexpected key(s): '
                        f'{_listing(unexpected)}')
    if missing:
        problems.append(f'{len(missing)} missing key(s): {_listing(missing)}')
    if mismatched:
        problems.append(f'{len(mismatched)} shape mismatch(es) (checkpoint '
                        f'vs DLANet): {_listing(mismatched)}')
    if problems:
        raise ValueError('Not an ImageNet DLA-34 state dict in the timm/'
                         'ucbdrive layout: ' + '; '.join(problems))
    # DLANet's own key order, so the result reads like model.state_dict().
    return OrderedDict((k, out[k]) for k in expected)

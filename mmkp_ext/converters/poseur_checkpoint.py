"""Official Poseur checkpoints (aim-uofa/Poseur, mmpose 0.28) -> mmkp_ext.

The official model is ``backbone`` + ``neck`` (mmdet-style ``ChannelMapper``)
+ ``keypoint_head`` (``Poseur_noise_sample`` with a ``PoseurTransformer``).
The backbone and neck keys are the same in mmpose 1.x (ResNet, HRNet,
MobileNetV2 and ``ChannelMapper`` kept their layouts) and pass through
unchanged; every ``keypoint_head.*`` key is renamed to ``head.*`` of
:class:`~mmkp_ext.models.heads.PoseurHead` (official key after
``keypoint_head.`` -> ours after ``head.``)::

    transformer.level_embeds                 -> level_embeds
    transformer.fc_coord.linear.*            -> coarse_coord.linear.*
    transformer.fc_sigma.linear.*            -> coarse_sigma.*
    transformer.pos_trans.*                  -> query_proj.*
    transformer.pos_trans_norm.*             -> query_norm.*
    transformer.pos_embed.weight             -> class_embed.weight
    transformer.decoder.layers.{i}.
      attentions.0.attn.*                    -> layers.{i}.self_attn.*
      attentions.1.{sampling_offsets,
        attention_weights,output_proj}.*     -> layers.{i}.cross_attn.*
      attentions.1.value_proj_weight.weight  -> layers.{i}.cross_attn.
                                                value_proj_weight
      attentions.1.value_proj_bias.weight    -> layers.{i}.cross_attn.
                                                value_proj_bias
      ffns.0.layers.0.0.*                    -> layers.{i}.ffn_in.*
      ffns.0.layers.1.*                      -> layers.{i}.ffn_out.*
      norms.{0,1,2}.*                        -> layers.{i}.norm{1,2,3}.*
    fc_coord_branches.{l}.{0,2,4}.*          -> coord_branches.{l}.{0,2,4}.*
    fc_coord_output_branches.{l}.{0,2,4}.*   -> coord_output_branches.{l}...
    fc_sigma_branches.{l}.{0,1}.*            -> sigma_branches.{l}.{0,1}.*
    fc_sigma_branches.{l}.2.linear.*         -> sigma_branches.{l}.2.*
    enc_flow.*                               -> loss_coarse.flow.*
    dec_flow.*                               -> loss_decoder.flow.*

No tensor is reshaped: the EMSDA value projection is stored in the official
``nn.Embedding`` layout by :class:`~mmkp_ext.models.layers.EMSDeformAttn`.
Keys that match none of these raise :class:`PoseurCheckpointError` listing
all of them; :func:`check_state_dict` compares the result with a model's own
state dict (missing keys, extra keys, shapes) so that it loads strictly.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Mapping, Optional, Tuple

import torch

__all__ = [
    'PoseurCheckpointError', 'convert_poseur_state_dict', 'check_state_dict',
    'convert_poseur_checkpoint'
]


class PoseurCheckpointError(ValueError):
    """A checkpoint that cannot be converted or does not fit the model."""


_LAYER = r'transformer\.decoder\.layers\.(\d+)\.'
#: (official pattern after ``keypoint_head.``, our name after ``head.``);
#: the first full match wins.
_HEAD_RULES: List[Tuple[str, str]] = [
    (r'transformer\.level_embeds', r'level_embeds'),
    (r'transformer\.fc_coord\.linear\.(weight|bias)',
     r'coarse_coord.linear.\1'),
    (r'transformer\.fc_sigma\.linear\.(weight|bias)', r'coarse_sigma.\1'),
    (r'transformer\.pos_trans\.(weight|bias)', r'query_proj.\1'),
    (r'transformer\.pos_trans_norm\.(weight|bias)', r'query_norm.\1'),
    (r'transformer\.pos_embed\.weight', r'class_embed.weight'),
    (_LAYER + r'attentions\.0\.attn\.(in_proj_weight|in_proj_bias|'
     r'out_proj\.weight|out_proj\.bias)', r'layers.\1.self_attn.\2'),
    (_LAYER + r'attentions\.1\.(sampling_offsets|attention_weights|'
     r'output_proj)\.(weight|bias)', r'layers.\1.cross_attn.\2.\3'),
    (_LAYER + r'attentions\.1\.(value_proj_weight|value_proj_bias)\.weight',
     r'layers.\1.cross_attn.\2'),
    (_LAYER + r'ffns\.0\.layers\.0\.0\.(weight|bias)',
     r'layers.\1.ffn_in.\2'),
    (_LAYER + r'ffns\.0\.layers\.1\.(weight|bias)', r'layers.\1.ffn_out.\2'),
    (_LAYER + r'norms\.0\.(weight|bias)', r'layers.\1.norm1.\2'),
    (_LAYER + r'norms\.1\.(weight|bias)', r'layers.\1.norm2.\2'),
    (_LAYER + r'norms\.2\.(weight|bias)', r'layers.\1.norm3.\2'),
    (r'fc_coord_branches\.(\d+)\.([024])\.(weight|bias)',
     r'coord_branches.\1.\2.\3'),
    (r'fc_coord_output_branches\.(\d+)\.([024])\.(weight|bias)',
     r'coord_output_branches.\1.\2.\3'),
    (r'fc_sigma_branches\.(\d+)\.([01])\.(weight|bias)',
     r'sigma_branches.\1.\2.\3'),
    (r'fc_sigma_branches\.(\d+)\.2\.linear\.(weight|bias)',
     r'sigma_branches.\1.2.\2'),
    (r'enc_flow\.(mask|[st]\.\d+\.[024]\.(?:weight|bias))',
     r'loss_coarse.flow.\1'),
    (r'dec_flow\.(mask|[st]\.\d+\.[024]\.(?:weight|bias))',
     r'loss_decoder.flow.\1'),
]
_HEAD_RULES = [(re.compile(p), r) for p, r in _HEAD_RULES]
#: Prefixes kept as they are (same layouts in mmpose 0.x and 1.x).
_PASS_THROUGH = ('backbone.', 'neck.')


def _rename(key: str) -> Optional[str]:
    if key.startswith(_PASS_THROUGH):
        return key
    if not key.startswith('keypoint_head.'):
        return None
    rest = key[len('keypoint_head.'):]
    for pattern, repl in _HEAD_RULES:
        if pattern.fullmatch(rest):
            return 'head.' + pattern.sub(repl, rest)
    return None


def convert_poseur_state_dict(
        state_dict: Mapping[str, torch.Tensor]) -> 'OrderedDict':
    """Rename the keys of an official Poseur state dict (see the module
    docstring). Values are not copied or reshaped.

    Args:
        state_dict: The official ``state_dict`` (keys ``backbone.*``,
            ``neck.*``, ``keypoint_head.*``; a leading ``module.`` from
            distributed training is dropped).

    Returns:
        OrderedDict: Our keys -> the same tensors.

    Raises:
        PoseurCheckpointError: Listing every key that matches no rule, or
            two keys that map onto the same name.
    """
    out = OrderedDict()
    unmapped = []
    for key, value in state_dict.items():
        name = key[len('module.'):] if key.startswith('module.') else key
        new = _rename(name)
        if new is None:
            unmapped.append(key)
        elif new in out:
            raise PoseurCheckpointError(
                f'two checkpoint keys map onto {new!r} (the second is '
                f'{key!r})')
        else:
            out[new] = value
    if unmapped:
        raise PoseurCheckpointError(
            f'{len(unmapped)} key(s) of the checkpoint match no Poseur key '
            f'rule (not an official Poseur checkpoint, or an unsupported '
            f'variant such as use_heatmap_loss=True): ' + ', '.join(unmapped))
    return out


def check_state_dict(converted: Mapping[str, torch.Tensor],
                     expected: Mapping[str, torch.Tensor]) -> None:
    """Check converted weights against a model's ``state_dict()``.

    Raises:
        PoseurCheckpointError: Naming the keys the model has and the
            checkpoint lacks, the keys the model lacks, and every shape
            mismatch (key, checkpoint shape, model shape).
    """
    missing = [k for k in expected if k not in converted]
    extra = [k for k in converted if k not in expected]
    shapes = [
        f'{k}: checkpoint {tuple(v.shape)} vs model '
        f'{tuple(expected[k].shape)}' for k, v in converted.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append('missing in the checkpoint: ' + ', '.join(missing))
    if extra:
        problems.append('not in the model: ' + ', '.join(extra))
    if shapes:
        problems.append('shape mismatch: ' + '; '.join(shapes))
    if problems:
        raise PoseurCheckpointError(
            'converted checkpoint does not fit the model (check that the '
            'config matches the checkpoint: backbone, number of decoder '
            'layers, width): ' + ' | '.join(problems))


def _build_model_state(config: str) -> Dict[str, torch.Tensor]:
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    import mmkp_ext  # noqa: F401  (registration)
    from mmpose.registry import MODELS
    cfg = Config.fromfile(config)
    # The model is only built for its key names and shapes: no downloads.
    cfg.model.backbone.pop('init_cfg', None)
    with DefaultScope.overwrite_default_scope('mmpose'):
        model = MODELS.build(cfg.model)
    return model.state_dict()


def convert_poseur_checkpoint(src: str,
                              dst: str,
                              config: Optional[str] = None) -> Dict:
    """Convert an official checkpoint file and save it for ``load_from`` /
    ``tools/test.py``.

    Args:
        src: Official checkpoint (``.pth`` with ``state_dict``, or a bare
            state dict).
        dst: Output path; written as ``{'state_dict': ..., 'meta': ...}``.
        config: Our config of the same model; when given, the result is
            checked against the model it builds (strict keys and shapes)
            before anything is written.

    Returns:
        dict: The converted state dict.
    """
    from mmkp_ext.safe_load import CheckpointFileError, load_checkpoint_dict
    try:
        ckpt = load_checkpoint_dict(src, map_location='cpu')
    except (CheckpointFileError, FileNotFoundError) as e:
        raise PoseurCheckpointError(str(e)) from e
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, Mapping) or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise PoseurCheckpointError(
            f'{src} holds no state dict of tensors (top-level keys: '
            f'{list(ckpt)[:10] if isinstance(ckpt, dict) else type(ckpt)})')
    converted = convert_poseur_state_dict(state)
    if config is not None:
        check_state_dict(converted, _build_model_state(config))
    torch.save(
        dict(
            state_dict=converted,
            meta=dict(converted_from=str(src), converter='mmkp_ext poseur')),
        dst)
    return converted

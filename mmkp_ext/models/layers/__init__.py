"""Reusable layers of mmkp_ext's models (attention, gates, ...).

Layers are plain ``torch.nn`` modules; the backbones and heads that use them
are what is registered into mmpose's ``MODELS``.
"""
from .poseur_deform_attn import EMSDeformAttn, MSDeformAttn  # noqa: F401
from .soft_gated_block import GATE_MODES, SoftGatedBlock  # noqa: F401
from .modulated_deform_conv import (  # noqa: F401
    ModulatedDeformConv2dPure, available_backends, modulated_deform_conv2d,
    modulated_deform_conv2d_pure)

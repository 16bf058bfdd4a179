"""Helpers shared by mmkp_ext's models: non-finite output handling and the
state-dict shape check (neither registers anything)."""
from .finite import NonFiniteOutputWarning, sanitize_outputs
from .state_dict_check import (CheckpointShapeError, GROUPED_HEAD_FIX,
                               refuse_mismatched_shapes)

__all__ = [
    'NonFiniteOutputWarning', 'sanitize_outputs', 'CheckpointShapeError',
    'GROUPED_HEAD_FIX', 'refuse_mismatched_shapes'
]

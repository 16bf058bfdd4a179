"""Training hooks registered into mmpose's HOOKS registry."""
from .atomic_checkpoint_hook import (AtomicCheckpointHook,
                                     checkpoint_looks_complete,
                                     find_resume_checkpoint)
from .rng_state_hook import (RNGStateHook, capture_rng_state,
                             restore_rng_state)

__all__ = [
    'AtomicCheckpointHook', 'RNGStateHook', 'find_resume_checkpoint',
    'checkpoint_looks_complete', 'capture_rng_state', 'restore_rng_state'
]

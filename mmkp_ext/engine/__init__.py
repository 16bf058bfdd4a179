"""Engine pieces (model wrappers, hooks) registered into mmpose's
registries."""
from .cpu_ddp_wrapper import MMKPDistributedDataParallel
from .hooks import AtomicCheckpointHook, RNGStateHook

__all__ = ['MMKPDistributedDataParallel', 'AtomicCheckpointHook',
           'RNGStateHook']

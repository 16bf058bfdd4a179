"""Engine pieces (model wrappers) registered into mmpose's registries."""
from .cpu_ddp_wrapper import MMKPDistributedDataParallel

__all__ = ['MMKPDistributedDataParallel']

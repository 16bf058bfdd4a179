"""Analysis helpers (library code behind ``tools/analysis/``)."""
from .complexity import (GRID_SAMPLE_FLOPS_PER_OUTPUT, ComplexityResult,
                         build_model_from_config, complexity_from_config,
                         config_input_size, count_complexity,
                         grid_sampler_flop, native_mha_flop, sdpa_flop)

__all__ = [
    'GRID_SAMPLE_FLOPS_PER_OUTPUT', 'ComplexityResult', 'grid_sampler_flop',
    'sdpa_flop', 'native_mha_flop', 'count_complexity', 'config_input_size',
    'build_model_from_config', 'complexity_from_config'
]

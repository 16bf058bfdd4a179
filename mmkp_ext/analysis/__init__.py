"""Analysis helpers (library code behind ``tools/analysis_tools/``): model
complexity and the grouped-CenterNet rescore-sigma sweep."""
from .complexity import (GRID_SAMPLE_FLOPS_PER_OUTPUT, ComplexityResult,
                         build_model_from_config, complexity_from_config,
                         config_input_size, count_complexity,
                         grid_sampler_flop, native_mha_flop, sdpa_flop)

__all__ = [
    'GRID_SAMPLE_FLOPS_PER_OUTPUT', 'ComplexityResult', 'grid_sampler_flop',
    'sdpa_flop', 'native_mha_flop', 'count_complexity', 'config_input_size',
    'build_model_from_config', 'complexity_from_config'
]
from .rescore_sigma_sweep import (best_rescore_setting,  # noqa: E402
                                  build_sweep_inputs, format_sweep_table,
                                  sweep_rescore_sigma, sweep_settings)

__all__ += [
    'sweep_rescore_sigma', 'sweep_settings', 'best_rescore_setting',
    'format_sweep_table', 'build_sweep_inputs'
]

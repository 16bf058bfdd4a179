# Shared runtime of the mmkp_ext configs: mmpose's default runtime (hooks,
# visualiser, log processor, env) plus the plugin import. The checkpoint hook
# is declared here so that every config that inherits this file takes its
# type from one place: AtomicCheckpointHook (mmengine's CheckpointHook that
# writes atomically, deletes old files only after the new one is complete and
# lets `--resume` fall back to the newest complete checkpoint) every 10
# epochs, and RNGStateHook (python / numpy / torch / sampler random states
# saved with each checkpoint, so a resumed run repeats the uninterrupted one;
# docs/checkpoints.md). mmpose's custom_hooks list is restated whole.
# Configs that extend an mmpose method config (mmpose::body_2d_keypoint/...)
# get the same runtime through that config instead: mmengine does not allow
# two bases that define the same key.
_base_ = ['mmpose::_base_/default_runtime.py']
custom_imports = dict(imports=['mmkp_ext'], allow_failed_imports=False)

default_hooks = dict(
    checkpoint=dict(type='AtomicCheckpointHook', interval=10))
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='RNGStateHook')]

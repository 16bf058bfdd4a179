# Runtime of the small configs that train on a CPU in minutes (generated toy
# data, `make demo-*`, the CI learning tests): the shared runtime plus a
# fixed seed (the figures in docs/benchmarks.md are reproducible), a log line
# every 10 iterations, one kept checkpoint, and the CPU-capable DDP wrapper.
# Method configs set the checkpoint interval and save_best (the metric's
# name depends on the dataset).
_base_ = ['./default_runtime.py']

randomness = dict(seed=0)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(max_keep_ckpts=1))

# Distributed runs on CPU (torchrun / dist_train.sh with --launcher pytorch):
# a DDP wrapper that leaves device_ids out for CPU modules; on GPUs it is the
# stock MMDistributedDataParallel. The scope prefix is needed because
# mmengine's Runner looks model wrappers up in its root registry.
model_wrapper_cfg = dict(type='mmpose.MMKPDistributedDataParallel')

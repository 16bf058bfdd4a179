"""A DDP model wrapper that also works for models on the CPU."""
from mmengine.model import MMDistributedDataParallel
from mmpose.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class MMKPDistributedDataParallel(MMDistributedDataParallel):
    """:class:`mmengine.model.MMDistributedDataParallel` that drops
    ``device_ids`` / ``output_device`` for a module whose parameters all live
    on the CPU.

    mmengine's Runner passes ``device_ids=[LOCAL_RANK]`` to every
    DistributedDataParallel wrapper, and torch rejects device ids for CPU
    modules. On GPUs this wrapper behaves exactly like the stock one.

    mmengine's Runner looks the wrapper type up in mmengine's root registry
    (without switching to the default scope), so configs name it with
    mmpose's scope:
    ``model_wrapper_cfg = dict(type='mmpose.MMKPDistributedDataParallel')``.
    """

    def __init__(self, module, detect_anomalous_params: bool = False,
                 **kwargs):
        params = list(module.parameters())
        if params and all(p.device.type == 'cpu' for p in params):
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        super().__init__(
            module=module,
            detect_anomalous_params=detect_anomalous_params,
            **kwargs)

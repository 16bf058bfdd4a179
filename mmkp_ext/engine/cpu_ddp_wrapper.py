"""A DDP model wrapper that also works for models on the CPU."""
from mmengine.model import MMDistributedDataParallel
from mmpose.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class MMKPDistributedDataParallel(MMDistributedDataParallel):
    """:class:`mmengine.model.MMDistributedDataParallel` that drops
    ``device_ids`` / ``output_device`` for a module whose parameters live on
    the CPU.

    mmengine's Runner passes ``device_ids=[LOCAL_RANK]`` to every
    DistributedDataParallel wrapper, which torch rejects for CPU modules
    ("device_ids can only be None or contain a single element" / "DistributedDataParallel
    device_ids and output_device arguments only work with single-device/multiple-device
    GPU modules"). Select it with
    ``model_wrapper_cfg = dict(type='MMKPDistributedDataParallel')``; on GPUs
    it behaves exactly like the stock wrapper.
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

"""Deployment: ONNX export of the network, ONNX Runtime inference decoded
by the config's codec (see :mod:`.onnx_export`)."""
from .onnx_export import (OnnxNetwork, TensorModeWrapper, compare_outputs,
                          network_method,
                          decode_outputs, export_onnx, network_input_shape,
                          onnx_predict, prepare_inputs)

__all__ = [
    'network_method', 'TensorModeWrapper', 'export_onnx', 'OnnxNetwork', 'decode_outputs',
    'prepare_inputs', 'onnx_predict', 'compare_outputs', 'network_input_shape'
]

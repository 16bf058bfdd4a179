"""ONNX export of any mmkp_ext (or mmpose) estimator's network, and ONNX
Runtime inference decoded by the config's own head and codec.

As mmdeploy does for mmpose models, the exported graph is the network only
(``model(inputs, mode='tensor')``: backbone, neck, head forward); decoding
stays in Python/numpy. To decode, the runtime's outputs are put back into
the structure the head's ``forward`` returns (a tensor, tuple, list or dict,
recorded in the ONNX file's metadata as a pytree spec) and handed to the
estimator's ``predict`` in place of the network, so decoding, the mapping to
image pixels and every post-processing step are the ones ``tools/test.py``
runs. Flip test is switched off for ONNX inference (it would need a second
network pass on the mirrored image).

``onnx`` and ``onnxruntime`` are optional (``requirements/tests.txt``):
functions that need them import them when called.
"""
import contextlib
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.utils._pytree as pytree
from torch import Tensor, nn

#: Key of the ONNX metadata entry holding the head output structure.
TREESPEC_KEY = 'mmkp_ext_output_treespec'
#: Key of the ONNX metadata entry holding the exported input shape.
INPUT_SHAPE_KEY = 'mmkp_ext_input_shape'
INPUT_NAME = 'input'


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as err:
        raise ImportError(
            f'{module} is needed for ONNX export / inference: pip install '
            f'{module} (listed in requirements/tests.txt)') from err


def network_method(head: nn.Module) -> str:
    """Name of the head method whose output the head's ``predict`` decodes:
    ``head.onnx_network_method`` where a head declares it (e.g.
    ``SoftArgmaxHead``: ``'forward_heatmaps'``, because its scores come from
    the heatmaps, not from the coordinates ``forward`` returns), else
    ``'forward'``."""
    return getattr(head, 'onnx_network_method', 'forward')


class TensorModeWrapper(nn.Module):
    """The estimator's network, ``head.<network_method>(extract_feat(x))``
    (for most heads exactly ``model(x, mode='tensor')``), with its nested
    outputs flattened into a tuple of tensors, the form
    ``torch.onnx.export`` takes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if getattr(model, 'head', None) is None or \
                not hasattr(model, 'extract_feat'):
            raise TypeError(
                f'{type(model).__name__} has no single backbone + head '
                'network to export (an ensemble: export each member)')
        self.model = model
        self.treespec = None

    def forward(self, inputs: Tensor) -> Tuple[Tensor, ...]:
        head = self.model.head
        out = getattr(head, network_method(head))(
            self.model.extract_feat(inputs))
        leaves, spec = pytree.tree_flatten(out)
        bad = [type(v).__name__ for v in leaves if not isinstance(v, Tensor)]
        if bad:
            raise TypeError('the network output holds non-tensor values '
                            f'({", ".join(sorted(set(bad)))}); only tensors '
                            'can be exported')
        self.treespec = spec
        return tuple(leaves)


def network_input_shape(cfg, batch_size: int = 1) -> Tuple[int, int, int, int]:
    """(N, 3, H, W) network input of a config: the codec's ``input_size``
    where the head has a decoder, else the first ``input_size`` found in the
    test pipeline (:func:`mmkp_ext.analysis.config_input_size`)."""
    from mmkp_ext.analysis import config_input_size
    h, w = config_input_size(cfg)
    return (batch_size, 3, int(h), int(w))


def export_onnx(model: nn.Module,
                out_file: str,
                input_shape: Sequence[int],
                opset_version: int = 17,
                dynamo: bool = False,
                dynamic_batch: bool = True) -> List[str]:
    """Export ``model``'s network (``mode='tensor'``) to ``out_file``.

    Args:
        model: a built estimator (eval mode is set here).
        out_file: the ``.onnx`` file to write.
        input_shape: (N, 3, H, W) of the normalised network input.
        opset_version: ONNX opset (legacy exporter).
        dynamo: use torch's ``torch.export``-based exporter (needs
            ``onnxscript``) instead of the TorchScript-based one.
        dynamic_batch: make the batch dimension dynamic.

    Returns:
        The names of the outputs (``output_0`` ... in pytree leaf order).
    """
    onnx = _require('onnx')
    model.eval()
    wrapper = TensorModeWrapper(model).eval()
    dummy = torch.randn(*input_shape)
    with torch.no_grad():
        leaves = wrapper(dummy)
    names = [f'output_{i}' for i in range(len(leaves))]
    kwargs = dict(input_names=[INPUT_NAME], output_names=names)
    if dynamic_batch:
        kwargs['dynamic_axes'] = {n: {0: 'batch'} for n in [INPUT_NAME] + names}
    if dynamo:
        kwargs.pop('dynamic_axes', None)
        if dynamic_batch:
            batch = torch.export.Dim('batch', min=1, max=1024)
            kwargs['dynamic_shapes'] = {'inputs': {0: batch}}
        torch.onnx.export(wrapper, (dummy, ), out_file, dynamo=True,
                          **kwargs)
    else:
        torch.onnx.export(wrapper, (dummy, ), out_file, dynamo=False,
                          opset_version=opset_version, **kwargs)
    proto = onnx.load(out_file)
    for key, value in ((TREESPEC_KEY, pytree.treespec_dumps(wrapper.treespec)),
                       (INPUT_SHAPE_KEY, ','.join(map(str, input_shape)))):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, out_file)
    return names


class OnnxNetwork:
    """An exported network in ONNX Runtime (CPU): ``outputs = net(inputs)``
    with ``inputs`` (N, 3, H, W) float32 and the outputs in the structure of
    the head's ``forward`` (numpy arrays)."""

    def __init__(self, onnx_file: str, providers: Optional[list] = None):
        ort = _require('onnxruntime')
        if not osp.isfile(onnx_file):
            raise FileNotFoundError(f'ONNX file {onnx_file!r} does not exist')
        self.session = ort.InferenceSession(
            onnx_file, providers=providers or ['CPUExecutionProvider'])
        meta = self.session.get_modelmeta().custom_metadata_map
        if TREESPEC_KEY not in meta:
            raise ValueError(f'{onnx_file!r} was not written by '
                             'mmkp_ext.deployment.export_onnx (no output '
                             'structure in its metadata)')
        self.treespec = pytree.treespec_loads(meta[TREESPEC_KEY])
        self.input_shape = tuple(
            int(v) for v in meta.get(INPUT_SHAPE_KEY, '').split(',') if v)

    def run_flat(self, inputs: np.ndarray) -> List[np.ndarray]:
        """The outputs as a flat list, in export order."""
        inputs = np.ascontiguousarray(inputs, dtype=np.float32)
        if self.input_shape and inputs.shape[1:] != self.input_shape[1:]:
            raise ValueError(f'input shape {inputs.shape} does not match the '
                             f'exported (N, 3, H, W) = {self.input_shape}')
        return self.session.run(None, {INPUT_NAME: inputs})

    def __call__(self, inputs: np.ndarray):
        return pytree.tree_unflatten(self.run_flat(inputs), self.treespec)


@contextlib.contextmanager
def _network_replaced(model: nn.Module, outputs):
    """Within the block, ``model``'s feature extraction is skipped and its
    head's :func:`network_method` returns ``outputs`` (torch tensors)."""
    head = model.head
    name = network_method(head)
    orig_test_cfg = model.test_cfg
    # Instance attributes shadow the bound methods; deleting them restores.
    model.extract_feat = lambda inputs: None
    setattr(head, name, lambda feats: outputs)
    model.test_cfg = dict(orig_test_cfg or {}, flip_test=False)
    try:
        yield
    finally:
        del model.extract_feat
        delattr(head, name)
        model.test_cfg = orig_test_cfg


def decode_outputs(model: nn.Module, outputs, inputs: Tensor,
                   data_samples: list) -> list:
    """Decode network ``outputs`` (structure of the head's ``forward``; numpy
    or torch) with ``model``'s head, codec and estimator post-processing,
    exactly as ``model.predict(inputs, data_samples)`` would with flip test
    off. Returns the data samples with ``pred_instances`` in image pixels."""
    outputs = pytree.tree_map(
        lambda v: torch.as_tensor(v) if isinstance(v, np.ndarray) else v,
        outputs)
    with _network_replaced(model, outputs), torch.no_grad():
        return model.predict(inputs, data_samples)


def prepare_inputs(model: nn.Module, img: Union[str, np.ndarray],
                   bboxes: Optional[np.ndarray] = None) -> Tuple[Tensor, list]:
    """Run the config's test pipeline and data preprocessor on one image, as
    :func:`mmpose.apis.inference_topdown` / ``inference_bottomup`` do.
    Top-down: one crop per box in ``bboxes`` (N, 4) xyxy, default the whole
    image. Returns (inputs (N, 3, H, W), data_samples)."""
    from mmengine.dataset import Compose, pseudo_collate
    from mmpose.models import BottomupPoseEstimator
    from PIL import Image
    pipeline = Compose(model.cfg.test_dataloader.dataset.pipeline)
    info = dict(img_path=img) if isinstance(img, str) else dict(img=img)
    if isinstance(model, BottomupPoseEstimator):
        if bboxes is not None:
            raise ValueError('bboxes are for top-down models')
        items = [pipeline(dict(info, **model.dataset_meta))]
    else:
        if bboxes is None:
            if isinstance(img, str):
                w, h = Image.open(img).size
            else:
                h, w = img.shape[:2]
            bboxes = np.array([[0, 0, w, h]], np.float32)
        items = [
            pipeline(dict(info, bbox=np.asarray(b, np.float32)[None],
                          bbox_score=np.ones(1, np.float32),
                          **model.dataset_meta)) for b in bboxes
        ]
    data = model.data_preprocessor(pseudo_collate(items), False)
    return data['inputs'], data['data_samples']


def onnx_predict(net: OnnxNetwork, model: nn.Module,
                 img: Union[str, np.ndarray],
                 bboxes: Optional[np.ndarray] = None) -> list:
    """Predict one image with the ONNX network ``net``; ``model`` (built from
    the same config) supplies the pipeline, codec and decoding."""
    inputs, samples = prepare_inputs(model, img, bboxes)
    outputs = net(inputs.numpy())
    return decode_outputs(model, outputs, inputs, samples)


def compare_outputs(reference, outputs) -> Dict[str, float]:
    """Largest absolute difference per output leaf (``output_i``) between
    two output structures (torch or numpy)."""
    ref = pytree.tree_leaves(reference)
    out = pytree.tree_leaves(outputs)
    if len(ref) != len(out):
        raise ValueError(f'{len(ref)} reference outputs vs {len(out)}')
    diffs = {}
    for i, (a, b) in enumerate(zip(ref, out)):
        a = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
        b = b.detach().cpu().numpy() if isinstance(b, Tensor) else np.asarray(b)
        if a.shape != b.shape:
            raise ValueError(f'output_{i}: shape {a.shape} vs {b.shape}')
        diffs[f'output_{i}'] = float(np.abs(a - b).max()) if a.size else 0.0
    return diffs

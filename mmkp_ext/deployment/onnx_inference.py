"""Images in, decoded predictions out, with an exported ONNX network: the
library side of ``tools/deployment/onnx_inference.py``."""
from typing import Dict

from mmpose.apis import init_model
from mmpose.structures import merge_data_samples

from mmkp_ext.apis.image_inference import (check_score_thr, is_bottomup,
                                           keep_confident, list_images,
                                           make_visualizer, write_outputs)
from .onnx_export import OnnxNetwork, onnx_predict


def run_onnx_inference(config: str,
                       onnx_file: str,
                       inputs: str,
                       out_dir: str,
                       score_thr: float = 0.3,
                       kpt_thr: float = 0.3,
                       draw: bool = True) -> Dict[str, str]:
    """Predict every image of ``inputs`` (file or folder) with the ONNX
    network ``onnx_file`` in ONNX Runtime, decoded by ``config``'s head and
    codec (:func:`.onnx_export.onnx_predict`; the PyTorch model is built
    without weights, only for its pipeline and decoding). Top-down: the
    whole image is one box; bottom-up: instances below ``score_thr`` are
    dropped. Writes ``out_dir/predictions/<stem>.json`` (and
    ``out_dir/vis/<image>`` when ``draw``); returns {image: JSON path}."""
    check_score_thr(score_thr)
    images = list_images(inputs)
    net = OnnxNetwork(onnx_file)
    model = init_model(config, None, device='cpu')
    visualizer = make_visualizer(model) if draw else None
    written = {}
    for path in images:
        samples = onnx_predict(net, model, path)
        if is_bottomup(model):
            sample = keep_confident(samples[0], score_thr)
        else:
            sample = merge_data_samples(samples)
        written[path] = write_outputs(
            path, sample, out_dir, dict(config=config, onnx=onnx_file),
            visualizer, kpt_thr=kpt_thr)
    return written

"""An ONNX model as a torch module (``onnx2torch``), so that a network shipped as ONNX can run on a GPU
without onnxruntime-gpu.

rapidocr_onnxruntime's wheel carries PP-OCRv4's detector as ONNX and its CPU onnxruntime runs it;
``onnxruntime-gpu`` is a separate 200+ MB install tied to one CUDA version. ``onnx2torch`` turns the
same file's graph into a ``torch.fx.GraphModule`` with the file's own weights, which runs wherever
torch does. paddle2onnx, which exported the PP-OCR files, stored their weights as ``Constant`` nodes
rather than initializers; ``onnx2torch`` reads convolution weights only from initializers, so
``constants_as_initializers`` moves them there first (the graph computes the same thing). It also
needs the rank of each BatchNormalization's input, which ONNX's shape inference loses after the
recognizer's reshapes; ``with_batch_norm_ranks`` states it where a 2-D convolution produced the input.

Checked on the wheel's files (``tests/test_ocr.py``): the detector, the recognizer and the
orientation classifier convert and give onnxruntime's outputs to within 1e-5, for any batch and
(recognizer) line width.

``TorchSession`` calls such a module the way rapidocr calls its onnxruntime sessions (a numpy
batch in, a list of numpy outputs back), so it can stand in for one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from framework import AnalyzerUnavailable


def constants_as_initializers(model: Any) -> Any:
    """Move every ``Constant`` node holding a tensor into the graph's initializers (same name), in place."""
    import onnx

    kept = []
    for node in model.graph.node:
        if node.op_type == "Constant" and len(node.attribute) == 1 and node.attribute[0].name == "value":
            tensor = onnx.TensorProto()
            tensor.CopyFrom(node.attribute[0].t)
            tensor.name = node.output[0]
            model.graph.initializer.append(tensor)
        else:
            kept.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return model


def with_batch_norm_ranks(model: Any) -> Any:
    """``model`` with shapes inferred, and every BatchNormalization input that inference left without
    a shape, where a 2-D convolution produced it, given a rank-4 shape of unnamed sizes."""
    import onnx
    from onnx import helper

    model = onnx.shape_inference.infer_shapes(model)
    known = {v.name for v in model.graph.value_info if len(v.type.tensor_type.shape.dim)}
    weights = {i.name: i for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        name = node.input[0] if node.op_type == "BatchNormalization" else None
        conv = producer.get(name) if name and name not in known else None
        if conv is not None and conv.op_type == "Conv" and len(weights.get(conv.input[1], onnx.TensorProto()).dims) == 4:
            model.graph.value_info.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                                        ["n", "c", "h", "w"]))
    return model


class TorchSession:
    """A torch module on ``device`` called like rapidocr's ``OrtInferSession``: ``session(batch)``
    with a float32 numpy batch returns a list holding the output as a float32 numpy array."""

    def __init__(self, module: Any, device: str):
        self.module, self.device = module.to(device), device

    def __call__(self, batch: Any) -> list[Any]:
        import torch

        with torch.inference_mode():
            out = self.module(torch.from_numpy(batch).to(self.device))
        out = out[0] if isinstance(out, (list, tuple)) else out
        return [out.float().cpu().numpy()]


def torch_module(path: Path, what: str) -> Any:
    """The ONNX file at ``path`` as an eval-mode torch module on the CPU; ``what`` names it in errors.

    Raises ``AnalyzerUnavailable`` when onnx or onnx2torch is not installed, or the graph has an
    operation onnx2torch cannot convert."""
    try:
        import onnx
        from onnx2torch import convert
    except ImportError as exc:
        raise AnalyzerUnavailable(f"{what} on a GPU needs onnx and onnx2torch ({exc}): "
                                  "pip install 'onnx>=1.17,<1.20' onnx2torch") from exc
    try:
        model = with_batch_norm_ranks(constants_as_initializers(onnx.load(str(path))))
        return convert(model).eval()
    except (NotImplementedError, KeyError, ValueError) as exc:
        raise AnalyzerUnavailable(f"{what}: onnx2torch cannot convert {path} ({exc})") from exc

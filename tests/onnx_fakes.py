"""Tiny ONNX models shaped like exported YOLO detectors, for tests that need no training."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_detector(path: Path, predictions: list[list[float]], size: int = 64,
                  names: str = "{0: 'good', 1: 'bridge'}") -> Path:
    """An ONNX 'detector' on a (1, 3, size, size) input that always outputs ``predictions``
    (rows of cx, cy, w, h, class scores) as (1, 4 + classes, N), like an exported YOLO model."""
    from onnx import TensorProto, helper, numpy_helper, save

    output = np.asarray(predictions, dtype=np.float32).T[None]
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["output0"], value=numpy_helper.from_array(output))], "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    helper.set_model_props(model, {"names": names})
    save(model, str(path))
    return path

"""ONNX export of the trained model, checked with onnxruntime against the PyTorch model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUTPUT_LAYOUT = ("YOLOv5u (ultralytics): output (1, 4 + classes, anchors); per anchor cx, cy, w, h in input "
                 "pixels, then one score per class (no objectness); apply your own confidence threshold and NMS. "
                 "Original YOLOv5 exports are (1, anchors, 5 + classes) instead.")


class ExportError(RuntimeError):
    """The ONNX model could not be produced or does not match the trained model."""


def export_onnx(best_pt: Path, imgsz: int, sample_image: Path | None = None) -> tuple[Path, dict]:
    """Export ``best_pt`` to ONNX next to it (offline, on CPU), check the file with
    :func:`check_onnx` against the model the export started from, and return the file and the
    check's description."""
    from ultralytics import YOLO

    yolo = YOLO(str(best_pt))  # loaded once: the export works on a copy, the check uses the original
    exported = yolo.export(format="onnx", imgsz=imgsz, simplify=True, device="cpu", verbose=False)
    path = Path(exported)
    if not path.is_file():
        raise ExportError(f"ONNX export produced no file (expected {path})")
    return path, check_onnx(path, yolo.model, imgsz, sample_image)


def check_onnx(onnx_path: Path, model, imgsz: int, sample_image: Path | None = None) -> dict:
    """Run the ONNX model in onnxruntime on one real image (or noise) and compare it with the
    PyTorch ``model`` it was exported from.

    Returns a description of the model's input and output for the model card.
    """
    import torch
    from PIL import Image

    from amc_widgets.core.onnx_model import OnnxDetector

    detector = OnnxDetector(onnx_path)
    if sample_image is not None:
        with Image.open(sample_image) as image:
            pixels = np.asarray(image.convert("RGB").resize((imgsz, imgsz)), dtype=np.float32) / 255.0
        batch = np.ascontiguousarray(pixels.transpose(2, 0, 1)[None])
    else:
        batch = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    try:
        onnx_out = detector.run(batch)
    except ValueError as exc:  # NaN or infinite values
        raise ExportError(str(exc)) from None

    model = model.float().eval()
    with torch.no_grad():
        torch_out = model(torch.from_numpy(batch))
    torch_out = (torch_out[0] if isinstance(torch_out, (list, tuple)) else torch_out).numpy()
    if torch_out.shape != onnx_out.shape:
        raise ExportError(f"ONNX output shape {onnx_out.shape} differs from PyTorch's {torch_out.shape}")
    scale = max(float(np.abs(torch_out).max()), 1.0)
    max_diff = float(np.abs(torch_out - onnx_out).max()) / scale
    if max_diff > 1e-2:
        raise ExportError(f"ONNX output differs from PyTorch's by {max_diff:.3g} (relative)")
    return {
        "file": onnx_path.name,
        "input": {"name": detector.input.name, "shape": [int(d) for d in detector.input.shape]},
        "output_shape": list(onnx_out.shape),
        "output_layout": OUTPUT_LAYOUT,
        "max_relative_difference_to_pytorch": max_diff,
    }

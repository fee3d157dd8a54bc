"""An exported YOLO detector in onnxruntime, in one place: load, check, predict (letterbox, run,
NMS in numpy) and draw the boxes (PIL).  The export check, the download check and the dashboard's
preview use it, and so does the serving program (``amc_widgets.serving``)."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

PALETTE = ((255, 56, 56), (255, 178, 29), (72, 249, 10), (0, 194, 255), (207, 210, 49), (146, 204, 23),
           (255, 112, 31), (61, 219, 134), (26, 147, 52), (0, 212, 187), (44, 153, 168), (52, 69, 147))


@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels of the original image
    score: float
    class_id: int

    def as_json(self, names: list[str]) -> dict:
        """The detection as the serving program answers it (box in original pixels, rounded to 0.1)."""
        name = names[self.class_id] if self.class_id < len(names) else f"class {self.class_id}"
        return {"box": [round(v, 1) for v in self.box], "score": round(self.score, 4),
                "class_id": self.class_id, "class_name": name}


def best_providers() -> tuple[str, ...]:
    """CUDA first where this onnxruntime build and machine have it, CPU always."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return tuple(p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available)


def letterbox(image: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Resize keeping the aspect ratio, pad with grey to ``size`` (h, w); return NCHW float32 in 0..1,
    the scale and the (x, y) padding."""
    height, width = size
    scale = min(width / image.width, height / image.height)
    new_w, new_h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    canvas = Image.new("RGB", (width, height), (114, 114, 114))
    pad = ((width - new_w) / 2, (height - new_h) / 2)
    canvas.paste(image.convert("RGB").resize((new_w, new_h), Image.BILINEAR), (int(pad[0]), int(pad[1])))
    array = np.asarray(canvas, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0
    return np.ascontiguousarray(array), scale, (int(pad[0]), int(pad[1]))


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    """Indices of the boxes (x1, y1, x2, y2) kept by greedy non-maximum suppression, best first."""
    order = scores.argsort()[::-1]
    areas = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        x1 = np.maximum(boxes[best, 0], boxes[rest, 0])
        y1 = np.maximum(boxes[best, 1], boxes[rest, 1])
        x2 = np.minimum(boxes[best, 2], boxes[rest, 2])
        y2 = np.minimum(boxes[best, 3], boxes[rest, 3])
        overlap = (x2 - x1).clip(0) * (y2 - y1).clip(0)
        iou = overlap / (areas[best] + areas[rest] - overlap + 1e-9)
        order = rest[iou <= iou_threshold]
    return keep


def decode_detections(output: np.ndarray, conf: float = 0.25, iou: float = 0.45,
                      max_detections: int = 100) -> list[Detection]:
    """Model output (1, 4 + classes, N) of cx, cy, w, h and class scores -> detections in model pixels."""
    predictions = output[0].T  # (N, 4 + nc)
    scores_all = predictions[:, 4:]
    class_ids = scores_all.argmax(axis=1)
    scores = scores_all[np.arange(len(predictions)), class_ids]
    mask = scores >= conf
    if not mask.any():
        return []
    cx, cy, w, h = predictions[mask, :4].T
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    scores, class_ids = scores[mask], class_ids[mask]
    offsets = class_ids[:, None] * (boxes.max() + 1.0)  # class-aware NMS in one pass
    keep = nms(boxes + offsets, scores, iou)[:max_detections]
    return [Detection(tuple(float(v) for v in boxes[i]), float(scores[i]), int(class_ids[i])) for i in keep]


def draw_detections(image: Image.Image, detections: list[Detection], names: list[str],
                    scores: bool = True) -> Image.Image:
    """A copy of ``image`` with each box and its 'class score' label ('class' only without ``scores``)."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(max(canvas.size) / 200))
    for det in detections:
        colour = PALETTE[det.class_id % len(PALETTE)]
        name = names[det.class_id] if det.class_id < len(names) else f"class {det.class_id}"
        draw.rectangle(det.box, outline=colour, width=width)
        label = f"{name} {det.score:.2f}" if scores else name
        left, top, right, bottom = draw.textbbox((det.box[0], det.box[1]), label)
        lift = bottom - top + 2
        draw.rectangle((left, top - lift, right + 2, bottom - lift), fill=colour)
        draw.text((det.box[0] + 1, det.box[1] - lift), label, fill=(0, 0, 0))
    return canvas


def class_names_of(session, count: int) -> list[str]:
    """Class names from the ONNX metadata ultralytics writes ({0: 'good', ...}), else 'class i'."""
    raw = session.get_modelmeta().custom_metadata_map.get("names", "")
    try:
        names = ast.literal_eval(raw) if raw else {}
    except (ValueError, SyntaxError):
        names = {}
    return [str(names.get(i, f"class {i}")) for i in range(count)]


class OnnxDetector:
    """One ONNX detector loaded in onnxruntime (CPU unless other providers are given)."""

    def __init__(self, path: Path, providers: tuple[str, ...] = ("CPUExecutionProvider",),
                 threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        if threads:  # several server workers share the cores: each gets its part
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(self.path), options, providers=list(providers))
        self.input = self.session.get_inputs()[0]

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) the model takes; 640 for a dynamic axis."""
        height, width = (d if isinstance(d, int) else 640 for d in self.input.shape[2:4])
        return height, width

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The raw output (N, 4 + classes, anchors) for an NCHW float32 batch in 0..1; refuses NaN or inf."""
        (output, *_) = self.session.run(None, {self.input.name: batch})
        if not np.isfinite(output).all():
            raise ValueError(f"{self.path.name} produced NaN or infinite values")
        return output

    def check(self) -> dict:
        """Run once on a blank image; return the input and output shapes."""
        shape = [d if isinstance(d, int) else 1 for d in self.input.shape]
        output = self.run(np.zeros(shape, dtype=np.float32))
        return {"input": shape, "output": list(output.shape)}

    def predict(self, image: Image.Image, conf: float = 0.25, iou: float = 0.45,
                max_detections: int = 100) -> list[Detection]:
        """Detections in the pixels of ``image``."""
        tensor, scale, (pad_x, pad_y) = letterbox(image, self.input_size)
        detections = []
        for det in decode_detections(self.run(tensor), conf, iou, max_detections):
            x1, y1, x2, y2 = det.box
            box = ((x1 - pad_x) / scale, (y1 - pad_y) / scale, (x2 - pad_x) / scale, (y2 - pad_y) / scale)
            box = tuple(float(np.clip(v, 0, limit)) for v, limit in zip(box, (image.width, image.height) * 2))
            detections.append(Detection(box, det.score, det.class_id))
        return detections

    def class_names(self) -> list[str]:
        """One name per class the model scores (from its metadata, else 'class i')."""
        rows = self.session.get_outputs()[0].shape[1]
        if not isinstance(rows, int):  # a dynamic axis: ask the model itself
            rows = self.check()["output"][1]
        return class_names_of(self.session, rows - 4)


def predict_image(onnx_path: Path, image_path: Path, conf: float = 0.25,
                  iou: float = 0.45) -> tuple[Image.Image, list[Detection]]:
    """Run the ONNX detector on one image; return the image with boxes drawn and the detections."""
    detector = OnnxDetector(onnx_path)
    with Image.open(image_path) as opened:
        image = opened.convert("RGB")
    detections = detector.predict(image, conf, iou)
    return draw_detections(image, detections, detector.class_names()), detections

"""A job's results as the container leaves them (model card with validation numbers, best.onnx,
gallery), small and known, for tests that need no training.

The ONNX 'model' outputs the same three boxes on every 64 x 64 image: good (10..30) 0.9, bridge
(40..60) 0.3, good (45..55, 5..15) 0.6. The gallery's ground truth then gives, at confidence 0.25:
a.jpg 2 of 2 found and 1 false, b.jpg 0 of 1 and 3 false, c.jpg 1 of 1 and 2 false."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from tests.onnx_fakes import tiny_detector

NAMES = ["good", "bridge"]
PREDICTIONS = [[20, 20, 20, 20, 0.9, 0.0], [50, 50, 20, 20, 0.0, 0.3], [50, 10, 10, 10, 0.6, 0.0]]
GALLERY = {  # file -> ground truth (class, cx, cy, w, h in 0..1)
    "a.jpg": [[0, 20 / 64, 20 / 64, 20 / 64, 20 / 64], [1, 50 / 64, 50 / 64, 20 / 64, 20 / 64]],
    "b.jpg": [[1, 10 / 64, 10 / 64, 20 / 64, 20 / 64]],
    "c.jpg": [[0, 20 / 64, 20 / 64, 20 / 64, 20 / 64]],
}
VALIDATION = {
    "split": "val", "images": 3, "instances": 4,
    "overall": {"precision": 0.5, "recall": 0.75, "mAP50": 0.6, "mAP50-95": 0.4},
    "per_class": [
        {"class": "good", "images": 2, "instances": 2, "precision": 0.5, "recall": 1.0, "mAP50": 0.9,
         "mAP50-95": 0.6},
        {"class": "bridge", "images": 2, "instances": 2, "precision": 0.25, "recall": 0.5, "mAP50": 0.3,
         "mAP50-95": 0.2},
    ],
    "confusion_matrix": {"labels": ["good", "bridge", "background"],
                         "matrix": [[2, 0, 3], [0, 1, 0], [0, 1, 0]], "conf": 0.25, "iou": 0.45},
    "pr_curve": {"iou": 0.5, "recall": [0.0, 0.5, 1.0],
                 "precision": {"good": [1.0, 0.8, 0.5], "bridge": [1.0, 0.3, 0.0]}},
}


def write_results(model_dir: Path, data_dir: Path, validation: dict | None = VALIDATION) -> None:
    """best.onnx and model_card.json in ``model_dir``; gallery/ in ``data_dir`` (output/data)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    tiny_detector(model_dir / "best.onnx", PREDICTIONS, names=str(dict(enumerate(NAMES))))
    card = {"model": "yolov5n", "classes": NAMES, "imgsz": 64, "epochs_completed": 3, "epochs_planned": 3,
            "stopped_by_request": False, "final_metrics": {}, "onnx": {"output_layout": "(1, 4 + classes, anchors)"}}
    if validation is not None:
        card["validation"] = validation
    (model_dir / "model_card.json").write_text(json.dumps(card))
    gallery = data_dir / "gallery"
    gallery.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, boxes in GALLERY.items():
        image = Image.new("RGB", (64, 64), (40, 40, 40))
        for _cls, x, y, w, h in boxes:
            ImageDraw.Draw(image).rectangle(((x - w / 2) * 64, (y - h / 2) * 64, (x + w / 2) * 64, (y + h / 2) * 64),
                                            fill=(200, 200, 60))
        image.save(gallery / name)
        entries.append({"file": name, "source": name, "boxes": boxes})
    (gallery / "gallery.json").write_text(json.dumps({"images": entries}))


def write_downloaded(folder: Path, validation: dict | None = VALIDATION) -> Path:
    """A job's outputs as `download_outputs` unpacks them: folder/model and folder/output."""
    write_results(folder / "model", folder / "output", validation)
    return folder

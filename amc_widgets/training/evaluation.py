"""How good the trained model is, for the model card: ultralytics' validator run on best.pt over the
validation split, turned into numbers (per class, confusion matrix, PR curve), and a bounded gallery
of validation images with their ground truth for the dashboard.

Import only after :func:`amc_widgets.training.ultralytics_env.prepare_offline_ultralytics`.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.utils.metrics import ConfusionMatrix

CONFUSION_CONF = 0.25  # the confusion matrix counts detections a user would see (mAP uses every score)
CONFUSION_IOU = 0.45  # ultralytics' matching threshold for the matrix
PR_POINTS = 101
GALLERY_IMAGES = 32
GALLERY_MAX_SIDE = 640
GALLERY_FOLDER = "gallery"  # under output/data: images and gallery.json


class _ConfusionAtUserConfidence(ConfusionMatrix):
    """Ultralytics' matrix, counting only detections at or above :data:`CONFUSION_CONF`."""

    def process_batch(self, detections, batch, conf=CONFUSION_CONF, iou_thres=CONFUSION_IOU):
        return super().process_batch(detections, batch, conf=CONFUSION_CONF, iou_thres=CONFUSION_IOU)


class ReportValidator(DetectionValidator):
    """Ultralytics' detection validator with the matrix above, drawing nothing: ``plots`` stays on
    only so that it fills the confusion matrix (matplotlib would add seconds to a stop)."""

    def init_metrics(self, model) -> None:
        super().init_metrics(model)
        self.confusion_matrix = _ConfusionAtUserConfidence(names=model.names)

    @contextlib.contextmanager
    def _not_plotting(self):
        self.args.plots = False
        try:
            yield
        finally:
            self.args.plots = True

    def get_stats(self):
        with self._not_plotting():
            return super().get_stats()

    def finalize_metrics(self) -> None:
        with self._not_plotting():
            super().finalize_metrics()

    def plot_val_samples(self, *_args, **_kwargs) -> None:
        pass

    def plot_predictions(self, *_args, **_kwargs) -> None:
        pass


def validate(best_pt: Path, data_yaml: str, imgsz: int, batch: int, device: str, save_dir: Path) -> ReportValidator:
    """Run the validator on ``best_pt`` over the validation split; return it, metrics filled in."""
    args = dict(model=str(best_pt), data=data_yaml, imgsz=imgsz, batch=batch, device=device, split="val",
                plots=True, verbose=False, save_json=False)
    validator = ReportValidator(save_dir=Path(save_dir), args=args)
    validator()
    return validator


def _number(value) -> float:
    return round(float(value), 5)


def validation_report(validator: ReportValidator, names: list[str]) -> dict:
    """The card's ``validation`` entry: overall and per-class results (every class of the dataset,
    metrics None where the split has no instance of it), the confusion matrix and the PR curve."""
    metrics = validator.metrics
    images_per_class = np.asarray(metrics.nt_per_image if metrics.nt_per_image is not None else [0] * len(names))
    instances_per_class = np.asarray(metrics.nt_per_class if metrics.nt_per_class is not None else [0] * len(names))
    measured = {int(c): i for i, c in enumerate(metrics.ap_class_index)}
    per_class = []
    for class_id, name in enumerate(names):
        row = {"class": name, "images": int(images_per_class[class_id]),
               "instances": int(instances_per_class[class_id]),
               "precision": None, "recall": None, "mAP50": None, "mAP50-95": None}
        if class_id in measured:
            values = metrics.class_result(measured[class_id])
            row.update(zip(("precision", "recall", "mAP50", "mAP50-95"), (_number(v) for v in values)))
        per_class.append(row)
    box = metrics.box
    recall_axis = np.linspace(0, 1, PR_POINTS)
    curves = {}
    if len(metrics.ap_class_index) and np.ndim(box.prec_values) == 2:
        for i, class_id in enumerate(metrics.ap_class_index):
            curves[names[int(class_id)]] = [_number(v) for v in np.interp(recall_axis, box.px, box.prec_values[i])]
    matrix = validator.confusion_matrix.matrix
    return {
        "split": "val",
        "images": int(validator.seen),
        "instances": int(instances_per_class.sum()),
        "overall": dict(zip(("precision", "recall", "mAP50", "mAP50-95"),
                            (_number(v) for v in metrics.mean_results()))),
        "per_class": per_class,
        "confusion_matrix": {
            "labels": [*names, "background"],
            "matrix": np.asarray(matrix).round().astype(int).tolist(),  # [predicted][true]
            "conf": CONFUSION_CONF,
            "iou": CONFUSION_IOU,
        },
        "pr_curve": {"iou": 0.5, "recall": [_number(v) for v in recall_axis], "precision": curves},
    }


def write_gallery(validator: ReportValidator, dest: Path, limit: int = GALLERY_IMAGES) -> int:
    """Copy up to ``limit`` validation images (at most :data:`GALLERY_MAX_SIDE` pixels a side, JPEG)
    into ``dest`` with ``gallery.json``: each image's ground-truth boxes (class, cx, cy, w, h in 0..1).
    The dashboard draws the model's predictions beside them. Returns the number of images."""
    from PIL import Image

    labels = sorted(validator.dataloader.dataset.labels, key=lambda label: label["im_file"])[:limit]
    dest.mkdir(parents=True, exist_ok=True)
    entries = []
    for index, label in enumerate(labels):
        name = f"{index:03d}_{Path(label['im_file']).stem}.jpg"
        with Image.open(label["im_file"]) as opened:
            image = opened.convert("RGB")
        image.thumbnail((GALLERY_MAX_SIDE, GALLERY_MAX_SIDE))
        image.save(dest / name, quality=90)
        boxes = [[int(c), *(_number(v) for v in box)]
                 for c, box in zip(np.asarray(label["cls"]).reshape(-1), np.asarray(label["bboxes"]).reshape(-1, 4))]
        entries.append({"file": name, "source": Path(label["im_file"]).name, "boxes": boxes})
    (dest / "gallery.json").write_text(json.dumps({"images": entries}, indent=1), encoding="utf-8")
    return len(entries)

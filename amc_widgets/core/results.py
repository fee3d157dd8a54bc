"""How good a trained model is, read from its downloaded outputs: the model card's validation results
(per class, confusion matrix, PR curve) and the gallery of validation images, whose ground truth is
matched against the ONNX model's predictions to show the worst images first."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from amc_widgets.core.errors import AmcError
from amc_widgets.core.metrics import LOSS_NAMES
from amc_widgets.core.onnx_model import PALETTE, Detection, draw_detections

if TYPE_CHECKING:
    import pandas as pd

QUALITY = ("precision", "recall", "mAP50", "mAP50-95")
TABLE_COLUMNS = ("class", "images", "instances", *QUALITY)
MATCH_IOU = 0.5
LOG_SCALE_RATIO = 10.0


class ResultsError(AmcError):
    """A job's outputs hold no results to show (not downloaded, or a model card without them)."""


def read_model_card(folder: Path) -> dict:
    """The model card of a job's downloaded outputs (``folder/model/model_card.json``)."""
    path = Path(folder) / "model" / "model_card.json"
    if not path.is_file():
        raise ResultsError(f"No model card in {folder}: the job ended before it saved a model")
    return json.loads(path.read_text(encoding="utf-8"))


def validation_of(card: dict) -> dict:
    """The card's validation results; a clear error for cards written before AMC recorded them."""
    validation = card.get("validation")
    if validation and validation.get("error"):
        raise ResultsError(f"The training container could not compute per-class results: {validation['error']}")
    if not validation or not validation.get("per_class"):
        raise ResultsError("This model card has no per-class results (trained by an AMC version that did not "
                           "record them): train again to see them")
    return validation


def per_class_table(card: dict) -> pd.DataFrame:
    """One row per class (and 'all' first): images, instances, precision, recall, mAP50, mAP50-95;
    NaN where the validation split has no instance of a class."""
    import pandas as pd

    validation = validation_of(card)
    overall = {"class": "all", "images": validation["images"], "instances": validation["instances"],
               **validation["overall"]}
    frame = pd.DataFrame([overall, *validation["per_class"]], columns=list(TABLE_COLUMNS))
    frame[list(QUALITY)] = frame[list(QUALITY)].astype(float)
    return frame


def format_table(frame: pd.DataFrame) -> str:
    """The per-class table as text, metrics with three decimals, '-' where not measured."""
    shown = frame.copy()
    for column in QUALITY:
        shown[column] = [f"{v:.3f}" if not math.isnan(v) else "-" for v in shown[column]]
    return shown.to_string(index=False)


def confusion_matrix(card: dict, normalise: bool = False) -> tuple[list[str], np.ndarray]:
    """Labels (the classes, then 'background') and the matrix indexed [predicted, true]; normalised,
    each true class's column sums to 1 (what share of its objects went where)."""
    entry = validation_of(card)["confusion_matrix"]
    matrix = np.asarray(entry["matrix"], dtype=float)
    if normalise:
        totals = matrix.sum(axis=0, keepdims=True)
        matrix = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    return list(entry["labels"]), matrix


def pr_curves(card: dict) -> dict[str, tuple[list[float], list[float]]]:
    """Class -> (recall, precision) at IoU 0.5, for the classes the validation split holds."""
    curve = validation_of(card)["pr_curve"]
    return {name: (curve["recall"], precision) for name, precision in curve["precision"].items()}


def losses_need_log_scale(frame: pd.DataFrame) -> bool:
    """True when the positive loss values differ by more than :data:`LOG_SCALE_RATIO` (one large
    validation loss would flatten the rest on a linear axis)."""
    columns = [name for name in LOSS_NAMES if name in frame]
    if not columns or frame.empty:
        return False
    values = frame[columns].to_numpy(dtype=float).ravel()
    values = values[np.isfinite(values) & (values > 0)]
    return bool(values.size) and values.max() / values.min() > LOG_SCALE_RATIO


# --- gallery ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Truth:
    class_id: int
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


@dataclass(frozen=True)
class GalleryImage:
    path: Path
    truth: tuple[Truth, ...]


@dataclass(frozen=True)
class Scored:
    """One gallery image at one confidence: its predictions and how they match the ground truth."""

    image: GalleryImage
    detections: tuple[Detection, ...]
    matched: int

    @property
    def missed(self) -> int:
        return len(self.image.truth) - self.matched

    @property
    def false(self) -> int:
        return len(self.detections) - self.matched


def read_gallery(folder: Path) -> list[GalleryImage]:
    """The validation images the container put in the outputs (``output/gallery``), with their
    ground-truth boxes in pixels; empty when the outputs hold none."""
    gallery = Path(folder) / "output" / "gallery"
    index = gallery / "gallery.json"
    if not index.is_file():
        return []
    images = []
    for entry in json.loads(index.read_text(encoding="utf-8"))["images"]:
        path = gallery / Path(entry["file"]).name  # a name only: nothing outside the folder is read
        if not path.is_file():
            continue
        with Image.open(path) as opened:
            width, height = opened.size
        truth = tuple(Truth(int(c), ((x - w / 2) * width, (y - h / 2) * height, (x + w / 2) * width,
                                     (y + h / 2) * height)) for c, x, y, w, h in entry["boxes"])
        images.append(GalleryImage(path, truth))
    return images


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    overlap = width * height
    return overlap / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap)


def count_matched(truth: Sequence[Truth], detections: Sequence[Detection], iou: float = MATCH_IOU) -> int:
    """Ground-truth objects found: each detection (best score first) claims the unclaimed object of its
    class it overlaps most, if the overlap reaches ``iou``."""
    free = list(truth)
    matched = 0
    for det in sorted(detections, key=lambda d: -d.score):
        candidates = [(_iou(t.box, det.box), i) for i, t in enumerate(free) if t.class_id == det.class_id]
        best = max(candidates, default=(0.0, -1))
        if best[0] >= iou:
            free.pop(best[1])
            matched += 1
    return matched


def worst_first(images: Sequence[GalleryImage], predictions: Sequence[Sequence[Detection]],
                conf: float) -> list[Scored]:
    """Each image with its predictions at ``conf`` or above, worst first: the smallest share of its
    objects found, then the most false detections."""
    scored = []
    for image, detections in zip(images, predictions):
        kept = tuple(d for d in detections if d.score >= conf)
        scored.append(Scored(image, kept, count_matched(image.truth, kept)))

    def badness(item: Scored) -> tuple[float, int, str]:
        share = item.matched / len(item.image.truth) if item.image.truth else 1.0
        return share, -item.false, item.image.path.name

    return sorted(scored, key=badness)


def draw_truth(image: Image.Image, truth: Sequence[Truth], names: list[str]) -> Image.Image:
    """A copy of ``image`` with the ground-truth boxes and class names."""
    return draw_detections(image, [Detection(t.box, 1.0, t.class_id) for t in truth], names, scores=False)


def side_by_side(item: Scored, names: list[str]) -> Image.Image:
    """Ground truth on the left, the model's predictions on the right."""
    with Image.open(item.image.path) as opened:
        image = opened.convert("RGB")
    left = draw_truth(image, item.image.truth, names)
    right = draw_detections(image, list(item.detections), names)
    canvas = Image.new("RGB", (image.width * 2 + 6, image.height), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (image.width + 6, 0))
    ImageDraw.Draw(canvas).line([(image.width + 3, 0), (image.width + 3, image.height)], fill=PALETTE[3], width=2)
    return canvas

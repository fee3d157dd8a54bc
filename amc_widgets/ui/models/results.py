"""One job's results, as its Results view shows them: the model card's validation numbers, the
gallery of validation images ranked worst first at a chosen confidence, and the model run on an
image of the user's. No widgets: built and tested headless."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import traitlets as tl
from PIL import Image

from amc_widgets.core.errors import user_message
from amc_widgets.core.onnx_model import OnnxDetector, draw_detections
from amc_widgets.core.results import (
    GalleryImage,
    per_class_table,
    read_gallery,
    read_model_card,
    worst_first,
)

if TYPE_CHECKING:  # pandas loads when a table is first made, not with the page
    import pandas as pd

LOWEST_CONF = 0.05  # predictions are kept down to here once; the slider filters them
DEFAULT_CONF = 0.25


class ResultsModel(tl.HasTraits):
    """State of one job's results: ``state`` goes idle -> loading -> ready (or error)."""

    state = tl.Unicode("idle")
    error = tl.Unicode("")
    card = tl.Dict()
    conf = tl.Float(DEFAULT_CONF, min=LOWEST_CONF, max=0.95)
    ranked = tl.List(help="gallery images at `conf`, worst first (Scored)")
    user_image = tl.Bytes(b"", help="the user's image with the model's boxes, PNG")
    user_note = tl.Unicode("")

    def __init__(self, detector: Callable[[Path], OnnxDetector] = OnnxDetector, **kwargs):
        super().__init__(**kwargs)
        self._detector_factory = detector
        self._detector: OnnxDetector | None = None
        self._gallery: list[GalleryImage] = []
        self._predictions: list = []
        self.observe(lambda _change: self._rank(), "conf")

    @property
    def names(self) -> list[str]:
        return list(self.card.get("classes", []))

    def table(self) -> pd.DataFrame:
        return per_class_table(self.card)

    def start(self) -> None:
        with self.hold_trait_notifications():
            self.state, self.error = "loading", ""

    def fail(self, message: str) -> None:
        with self.hold_trait_notifications():
            self.state, self.error = "error", message

    def load(self, folder: Path) -> None:
        """Read the card and gallery of a job's downloaded outputs and run the ONNX model over the
        gallery once; errors end in ``error``, never raised."""
        self.start()
        try:
            card = read_model_card(folder)
            per_class_table(card)  # a card without results fails here, with its reason
            detector = self._detector_factory(Path(folder) / "model" / "best.onnx")
            gallery = read_gallery(folder)
            predictions = []
            for item in gallery:
                with Image.open(item.path) as opened:
                    predictions.append(detector.predict(opened.convert("RGB"), conf=LOWEST_CONF))
        except Exception as exc:  # noqa: BLE001 - shown in the view
            self.fail(user_message(exc))
            return
        self._detector, self._gallery, self._predictions = detector, gallery, predictions
        with self.hold_trait_notifications():
            self.card = card
            self._rank()
            self.state = "ready"

    def _rank(self) -> None:
        self.ranked = worst_first(self._gallery, self._predictions, self.conf)

    def predict(self, image: Path | bytes, label: str = "") -> None:
        """Run the model on an image of the user's (a path, or an upload's bytes) at ``conf``; the
        drawn image goes to ``user_image``, a count or the error to ``user_note``."""
        try:
            if self._detector is None:
                raise ValueError("The results are not loaded yet")
            source = io.BytesIO(image) if isinstance(image, bytes) else Path(image).expanduser()
            with Image.open(source) as opened:
                picture = opened.convert("RGB")
            detections = self._detector.predict(picture, conf=self.conf)
            buffer = io.BytesIO()
            draw_detections(picture, detections, self.names).save(buffer, format="PNG")
        except Exception as exc:  # noqa: BLE001 - shown in the view
            with self.hold_trait_notifications():
                self.user_image, self.user_note = b"", f"Could not run the model: {user_message(exc)}"
            return
        name = label or (Path(image).name if not isinstance(image, bytes) else "your image")
        with self.hold_trait_notifications():
            self.user_image = buffer.getvalue()
            self.user_note = f"{len(detections)} object(s) found on {name} (confidence >= {self.conf:.2f})"

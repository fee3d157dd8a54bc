"""The one ONNX model module: load, check, predict, on tiny detectors built in the test."""

from __future__ import annotations

import pytest
from PIL import Image

from amc_widgets.core.onnx_model import OnnxDetector, predict_image
from tests.onnx_fakes import tiny_detector


def test_check_runs_the_model_once_and_reports_its_shapes(tmp_path):
    detector = OnnxDetector(tiny_detector(tmp_path / "m.onnx", [[32, 32, 20, 10, 0.1, 0.9]]))
    assert detector.check() == {"input": [1, 3, 64, 64], "output": [1, 6, 1]}
    assert detector.input_size == (64, 64) and detector.class_names() == ["good", "bridge"]


def test_a_model_that_answers_nan_is_refused(tmp_path):
    detector = OnnxDetector(tiny_detector(tmp_path / "nan.onnx", [[float("nan"), 32, 20, 10, 0.1, 0.9]]))
    with pytest.raises(ValueError, match="nan.onnx produced NaN or infinite values"):
        detector.check()


def test_boxes_come_back_in_the_pixels_of_the_original_image(tmp_path):
    # a 128 x 64 image is letterboxed into 64 x 64 at scale 0.5 with 16 px of grey above and below
    model = tiny_detector(tmp_path / "m.onnx", [[32, 32, 20, 10, 0.1, 0.9], [10, 10, 4, 4, 0.05, 0.1]])
    image = tmp_path / "board.png"
    Image.new("RGB", (128, 64), (40, 90, 40)).save(image)
    drawn, detections = predict_image(model, image)
    (only,) = detections  # the second row scores under the 0.25 threshold
    assert only.class_id == 1 and only.score == pytest.approx(0.9)
    assert only.box == pytest.approx((44.0, 22.0, 84.0, 42.0))
    assert drawn.size == (128, 64) and drawn.getpixel((44, 30)) != (40, 90, 40)  # the box is drawn

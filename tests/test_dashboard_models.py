"""The pure helpers the dashboard shows things with: log text, durations, sizes, redaction, and the ONNX
preview maths."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from amc_widgets.core.errors import redact
from amc_widgets.core.onnx_model import (
    PALETTE,
    Detection,
    class_names_of,
    decode_detections,
    letterbox,
    nms,
    predict_image,
)
from amc_widgets.core.text import clean_log_line, human_bytes, human_duration, log_html
from tests.dashboard_fakes import SECRET, TOKEN
from tests.onnx_fakes import tiny_detector


@pytest.mark.parametrize("raw, shown", [
    ("\x1b[1;31mERROR\x1b[0m disk full\n", "ERROR disk full"),
    ("\x1b]0;window title\x07hello", "hello"),
    ("epoch 1  10%\repoch 1  50%\repoch 1 100%\r\n", "epoch 1 100%"),
    ("\r\n", ""),
    ("col\tumns\x07\x00", "col\tumns"),
])
def test_clean_log_line(raw, shown):
    assert clean_log_line(raw) == shown


@pytest.mark.parametrize("raw, shown", [
    ("train: Fast image access \u2705 (ping: 0.0\u00b10.0 ms)", "train: Fast image access OK (ping: 0.0\u00b10.0 ms)"),
    ("ONNX: export success \u2705 1.2s, saved as best.onnx", "ONNX: export success OK 1.2s, saved as best.onnx"),
    ("Ultralytics 8.3.2 \U0001f680 Python-3.11.2 torch-2.5.1 CPU", "Ultralytics 8.3.2 Python-3.11.2 torch-2.5.1 CPU"),
    ("WARNING \u26a0\ufe0f no labels found", "WARNING no labels found"),
    ("\U0001f4a1 Learn more at docs", "Tip: Learn more at docs"),
    ("\u274c\ufe0f export failed", "ERROR export failed"),
    ("  \u23f1\ufe0f 3s", "  3s"),
    ("\u2514\u2500\u2500 \u2713 done \u2192 next \u2264 1", "\u2514\u2500\u2500 \u2713 done \u2192 next \u2264 1"),
])
def test_clean_log_line_writes_emoji_as_words(raw, shown):
    assert clean_log_line(raw) == shown


def test_log_html_escapes_every_line_in_order():
    page = log_html([clean_log_line("\x1b[31m<script>alert('x')</script>\x1b[0m"), "a & b"])
    assert "<script>" not in page and "&lt;script&gt;" in page and "\x1b" not in page
    assert page.index("&lt;script&gt;") < page.index("a &amp; b")


@pytest.mark.parametrize("seconds, text", [(None, "-"), (0, "0:00:00"), (59.9, "0:00:59"), (3725, "1:02:05"),
                                           (90061, "25:01:01")])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


@pytest.mark.parametrize("size, text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KB"), (5 * 2**20, "5.0 MB"),
                                        (3 * 2**30, "3.0 GB"), (2**41, "2048.0 GB")])
def test_human_bytes(size, text):
    assert human_bytes(size) == text


def test_redact_replaces_every_secret_and_ignores_empty_ones():
    text = f"key={SECRET} token={TOKEN} again {SECRET}"
    assert redact(text, [SECRET, "", None, TOKEN]) == "key=**** token=**** again ****"
    assert redact("nothing here", ["", None]) == "nothing here"


# --- preview maths ----------------------------------------------------------------------------

def test_nms_keeps_the_best_of_overlapping_boxes_and_disjoint_ones():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.7], dtype=np.float32)
    assert nms(boxes, scores, 0.45) == [1, 2]  # IoU of the first two is 81/119
    assert nms(boxes, scores, 0.7) == [1, 0, 2]


def test_decode_detections_is_class_aware_and_drops_low_scores():
    rows = [  # cx, cy, w, h, score of class 0, score of class 1
        [100, 50, 20, 10, 0.10, 0.80],
        [101, 50, 20, 10, 0.05, 0.60],  # same object, same class, worse: suppressed
        [100, 50, 20, 10, 0.70, 0.00],  # same box, other class: kept
        [300, 300, 30, 30, 0.20, 0.10],  # below 0.25
    ]
    output = np.asarray(rows, dtype=np.float32).T[None]
    assert decode_detections(output) == [Detection((90.0, 45.0, 110.0, 55.0), pytest.approx(0.8), 1),
                                         Detection((90.0, 45.0, 110.0, 55.0), pytest.approx(0.7), 0)]
    assert [d.score for d in decode_detections(output, max_detections=1)] == [pytest.approx(0.8)]
    assert decode_detections(output, conf=0.9) == []


def test_letterbox_keeps_the_aspect_ratio_and_pads_with_grey():
    tensor, scale, pad = letterbox(Image.new("RGB", (200, 100), (255, 0, 0)), (64, 64))
    assert tensor.shape == (1, 3, 64, 64) and tensor.dtype == np.float32
    assert scale == pytest.approx(64 / 200) and pad == (0, 16)
    red, grey = [1.0, 0.0, 0.0], [114 / 255] * 3
    assert tensor[0, :, 15, 32].tolist() == pytest.approx(grey) and tensor[0, :, 48, 32].tolist() == pytest.approx(grey)
    assert tensor[0, :, 16, 0].tolist() == pytest.approx(red) and tensor[0, :, 47, 63].tolist() == pytest.approx(red)
    _, scale, pad = letterbox(Image.new("RGB", (100, 100)), (32, 64))  # (h, w): a wide model input
    assert scale == pytest.approx(0.32) and pad == (16, 0)


def test_predict_image_maps_boxes_back_to_the_original_image(tmp_path):
    """A 128x64 image in a 64x64 model: scale 1/2, 16 px grey bands above and below."""
    model = tiny_detector(tmp_path / "m.onnx", [[32, 32, 20, 10, 0.1, 0.9], [10, 10, 4, 4, 0.1, 0.1]])
    image = tmp_path / "board.png"
    Image.new("RGB", (128, 64), (0, 0, 0)).save(image)
    drawn, detections = predict_image(model, image)
    assert detections == [Detection((44.0, 22.0, 84.0, 42.0), pytest.approx(0.9), 1)]
    assert drawn.size == (128, 64)
    assert drawn.getpixel((44, 32)) == PALETTE[1]  # the box's left edge, in class 1's colour
    assert drawn.getpixel((64, 32)) == (0, 0, 0)  # inside the box: untouched


def test_class_names_come_from_the_model_metadata():
    def session(meta):
        return SimpleNamespace(get_modelmeta=lambda: SimpleNamespace(custom_metadata_map=meta))

    assert class_names_of(session({"names": "{0: 'good', 1: 'bridge'}"}), 3) == ["good", "bridge", "class 2"]
    assert class_names_of(session({"names": "not python {"}), 2) == ["class 0", "class 1"]
    assert class_names_of(session({}), 1) == ["class 0"]

"""Results of a job's model: the per-class table, figures and gallery built from the outputs
(amc_widgets/core/results.py, the results model and its view's figures), headless."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amc_widgets.core.onnx_model import Detection
from amc_widgets.core.results import (
    ResultsError,
    Truth,
    confusion_matrix,
    count_matched,
    format_table,
    losses_need_log_scale,
    per_class_table,
    read_gallery,
    read_model_card,
    side_by_side,
    worst_first,
)
from amc_widgets.ui.models.results import ResultsModel
from amc_widgets.ui.views.results import ResultsView, confusion_figure, per_class_html, pr_figure
from tests.results_fakes import VALIDATION, write_downloaded


def card_with(**validation) -> dict:
    return {"classes": ["good", "bridge"], "validation": {**VALIDATION, **validation}}


def test_per_class_table_has_all_first_then_every_class():
    bridge_absent = [VALIDATION["per_class"][0],
                     {"class": "bridge", "images": 0, "instances": 0, "precision": None, "recall": None,
                      "mAP50": None, "mAP50-95": None}]
    frame = per_class_table(card_with(per_class=bridge_absent))
    assert frame["class"].tolist() == ["all", "good", "bridge"]
    assert frame.loc[1, ["images", "instances", "precision", "mAP50-95"]].tolist() == [2, 2, 0.5, 0.6]
    assert math.isnan(frame.loc[2, "mAP50"])
    text = format_table(frame)
    assert text.splitlines()[2].split() == ["good", "2", "2", "0.500", "1.000", "0.900", "0.600"]
    assert text.splitlines()[3].split() == ["bridge", "0", "0", "-", "-", "-", "-"]


def test_a_card_without_results_says_so():
    with pytest.raises(ResultsError, match="no per-class results"):
        per_class_table({"classes": ["good"], "final_metrics": {}})
    with pytest.raises(ResultsError, match="could not compute per-class results: RuntimeError: no labels"):
        per_class_table({"classes": ["good"], "validation": {"error": "RuntimeError: no labels"}})


def test_confusion_matrix_normalised_per_true_class():
    labels, counts = confusion_matrix(card_with())
    assert labels == ["good", "bridge", "background"] and counts[0, 2] == 3
    _, shares = confusion_matrix(card_with(), normalise=True)
    assert np.allclose(shares[:, 0], [1, 0, 0]) and np.allclose(shares[:, 1], [0, 0.5, 0.5])
    assert np.allclose(shares[:, 2], [1, 0, 0])  # background column: the false detections


def test_figures_are_built_from_the_numbers():
    heatmap = confusion_figure(card_with()).data[0]
    assert list(heatmap.x) == ["good", "bridge", "background"] and list(heatmap.text[0]) == [2, 0, 3]
    assert heatmap.z[1][1] == pytest.approx(0.5)
    curves = pr_figure(card_with()).data
    assert [trace.name for trace in curves] == ["good 0.900", "bridge 0.300"]
    assert list(curves[1].y) == [1.0, 0.3, 0.0] and list(curves[1].x) == [0.0, 0.5, 1.0]


def test_losses_get_a_log_scale_only_when_they_differ_tenfold():
    frame = pd.DataFrame({"train_box_loss": [2.0, 1.5], "val_box_loss": [2.5, 1.9], "train_cls_loss": [3.0, 0.4]})
    assert not losses_need_log_scale(frame)
    frame.loc[0, "val_box_loss"] = 45.0  # one large validation loss
    assert losses_need_log_scale(frame)
    assert not losses_need_log_scale(pd.DataFrame(columns=["train_box_loss"]))


def test_matching_counts_each_object_once_and_by_class():
    truth = [Truth(0, (0, 0, 10, 10)), Truth(1, (20, 20, 30, 30))]
    same_box_twice = [Detection((0, 0, 10, 10), 0.9, 0), Detection((1, 0, 10, 10), 0.8, 0)]
    assert count_matched(truth, same_box_twice) == 1
    assert count_matched(truth, [Detection((20, 20, 30, 30), 0.9, 0)]) == 0  # wrong class
    assert count_matched(truth, [Detection((22, 20, 32, 30), 0.9, 1)]) == 1  # IoU 0.67
    assert count_matched(truth, [Detection((25, 20, 35, 30), 0.9, 1)]) == 0  # IoU 0.33


def test_gallery_is_read_with_truth_in_pixels_and_ranked_worst_first(tmp_path):
    folder = write_downloaded(tmp_path / "job")
    gallery = read_gallery(folder)
    assert [g.path.name for g in gallery] == ["a.jpg", "b.jpg", "c.jpg"]
    assert gallery[1].truth == (Truth(1, (0.0, 0.0, 20.0, 20.0)),)
    predictions = [[Detection((10, 10, 30, 30), 0.9, 0), Detection((40, 40, 60, 60), 0.3, 1)]] * 3
    at_low = worst_first(gallery, predictions, 0.25)
    assert [(s.image.path.name, s.matched, s.missed, s.false) for s in at_low] == [
        ("b.jpg", 0, 1, 2), ("c.jpg", 1, 0, 1), ("a.jpg", 2, 0, 0)]
    at_high = worst_first(gallery, predictions, 0.5)
    assert [(s.image.path.name, s.matched) for s in at_high] == [("b.jpg", 0), ("a.jpg", 1), ("c.jpg", 1)]
    drawn = side_by_side(at_low[0], ["good", "bridge"])
    assert drawn.size == (64 * 2 + 6, 64)
    assert read_gallery(tmp_path / "nothing") == []


def test_results_model_loads_runs_the_onnx_model_and_follows_the_slider(tmp_path):
    model = ResultsModel()
    view = ResultsView(model)
    model.load(write_downloaded(tmp_path / "job"))
    assert model.state == "ready" and model.error == ""
    assert [(s.image.path.name, s.matched, s.false) for s in model.ranked] == [
        ("b.jpg", 0, 3), ("c.jpg", 1, 2), ("a.jpg", 2, 1)]
    model.conf = 0.5  # the bridge prediction (0.3) drops out
    assert [(s.image.path.name, s.matched, s.false) for s in model.ranked] == [
        ("b.jpg", 0, 2), ("a.jpg", 1, 1), ("c.jpg", 1, 1)]
    assert len(view.gallery.children) == 3
    assert "2 of 4 objects found at confidence &gt;= 0.50" in view.gallery_note.value
    assert "<td>good</td><td>2</td><td>2</td><td>0.500</td>" in per_class_html(model)
    shown = view.confusion.outputs[0]["data"]["application/vnd.plotly.v1+json"]  # static, with its numbers
    assert shown["data"][0]["type"] == "heatmap" and shown["data"][0]["text"][0] == [2, 0, 3]
    assert "sendChartToCloud" in shown["config"]["modeBarButtonsToRemove"]
    view.conf.value = 0.55  # the same ranking at another threshold: the note follows all the same
    assert "found at confidence &gt;= 0.55" in view.gallery_note.value
    view.conf.value = 0.25  # the slider drives the model
    assert model.conf == 0.25 and model.ranked[0].false == 3


def test_results_model_runs_the_model_on_a_users_image_with_class_names(tmp_path):
    model = ResultsModel()
    model.load(write_downloaded(tmp_path / "job"))
    image = tmp_path / "job" / "output" / "gallery" / "a.jpg"
    model.predict(image)
    assert model.user_image.startswith(b"\x89PNG") and model.user_note.startswith("3 object(s) found on a.jpg")
    model.conf = 0.7
    model.predict(image.read_bytes(), label="upload.jpg")
    assert model.user_note.startswith("1 object(s) found on upload.jpg (confidence >= 0.70)")
    model.predict(b"not an image")
    assert model.user_image == b"" and model.user_note.startswith("Could not run the model: cannot identify image")
    model.predict(Path(tmp_path / "missing.png"))
    assert "No such file or directory" in model.user_note


def test_results_model_reports_missing_or_old_outputs(tmp_path):
    model = ResultsModel()
    model.load(tmp_path / "empty")
    assert model.state == "error" and "No model card" in model.error
    model.load(write_downloaded(tmp_path / "old", validation=None))
    assert model.state == "error" and "no per-class results" in model.error
    assert read_model_card(tmp_path / "old")["classes"] == ["good", "bridge"]

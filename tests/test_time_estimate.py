"""The local time estimate: scaled from a finished local job's seconds per epoch, smaller settings
suggested when long; the Train model and panel showing it."""

from __future__ import annotations

import pytest

from amc_widgets.core.jobs import JobDescription
from amc_widgets.core.time_estimate import LONG_SECONDS, MODEL_GFLOPS, Settings, duration_words, estimate


def job(name: str, created: float, model: str = "yolov5n", imgsz: int = 160, dataset: str = "solder",
        epoch_seconds: float | None = 2.0, instance_type: str = "local", status: str = "Completed") -> JobDescription:
    return JobDescription(name=name, status=status, secondary_status="", dataset=dataset, instance_type=instance_type,
                          instance_count=1, hyperparameters={"model": model, "imgsz": str(imgsz), "epochs": "15"},
                          created=created, final_metrics=None if epoch_seconds is None else
                          {"epoch_seconds": epoch_seconds, "mAP50": 0.5})


def test_no_finished_local_job_gives_no_estimate():
    history = [job("a", 1, epoch_seconds=None), job("b", 2, instance_type="ml.g4dn.xlarge"),
               job("c", 3, epoch_seconds=float("nan"))]
    assert estimate(Settings("yolov5n", 160, 10, "solder"), history) is None


def test_the_same_settings_take_epochs_times_the_measured_epoch():
    found = estimate(Settings("yolov5n", 160, 15, "solder"), [job("a", 1, epoch_seconds=2.0)])
    assert found.seconds == pytest.approx(30.0) and not found.long and found.suggestion() == ""
    assert found.reference.job == "a"
    assert "under a minute" in found.describe() and "2.0 s an epoch with yolov5n at 160 px" in found.describe()


def test_model_and_image_size_scale_the_epoch_and_the_same_dataset_is_preferred():
    history = [job("other", 5, dataset="coco", epoch_seconds=50.0), job("same", 1, epoch_seconds=2.0)]
    found = estimate(Settings("yolov5s", 320, 10, "solder"), history)
    expected = 2.0 * MODEL_GFLOPS["yolov5s"] / MODEL_GFLOPS["yolov5n"] * (320 / 160) ** 2 * 10
    assert found.reference.job == "same" and found.seconds == pytest.approx(expected)


def test_another_dataset_is_scaled_by_its_files():
    found = estimate(Settings("yolov5n", 160, 10, "big"), [job("a", 1, epoch_seconds=2.0)], {"solder": 100, "big": 400})
    assert found.seconds == pytest.approx(2.0 * 4 * 10)
    unknown = estimate(Settings("yolov5n", 160, 10, "big"), [job("a", 1, epoch_seconds=2.0)])
    assert unknown.seconds == pytest.approx(2.0 * 10)


def test_long_runs_suggest_the_least_smaller_settings_that_fit():
    # the defaults (yolov5s, 640 px, 100 epochs) after a demo run of 2 s an epoch at yolov5n 160 px
    found = estimate(Settings("yolov5s", 640, 100, "solder"), [job("a", 1, epoch_seconds=2.0)])
    assert found.long and found.seconds > 3600
    smaller = found.smaller
    assert found.smaller_seconds <= LONG_SECONDS and smaller.epochs == 100
    assert (smaller.model, smaller.imgsz) != ("yolov5s", 640)
    per = 2.0 / MODEL_GFLOPS["yolov5n"] / (160 / 640) ** 2
    bigger_options = [(m, s) for m in ("yolov5n", "yolov5s") for s in (160, 256, 320, 416, 512, 640)
                      if per * MODEL_GFLOPS[m] * (s / 640) ** 2 * 100 <= LONG_SECONDS]
    assert max(per * MODEL_GFLOPS[m] * (s / 640) ** 2 * 100 for m, s in bigger_options) == pytest.approx(
        found.smaller_seconds)  # none fits with more work
    assert f"{smaller.model} at {smaller.imgsz} px would take about" in found.suggestion()


def test_when_nothing_smaller_fits_fewer_epochs_are_suggested():
    found = estimate(Settings("yolov5n", 160, 1000, "solder"), [job("a", 1, epoch_seconds=20.0)])
    assert found.smaller is None and "about 90 epochs fit in 30 min" in found.suggestion()


@pytest.mark.parametrize("seconds, words", [(20, "under a minute"), (90, "2 min"), (3600, "1 h 0 min"),
                                            (5400, "1 h 30 min")])
def test_duration_words(seconds, words):
    assert duration_words(seconds) == words


def test_the_model_estimates_locally_only_and_with_valid_fields():
    from amc_widgets.ui.models.parameters import ParametersModel

    params = ParametersModel(local=True)
    assert params.time_estimate("solder") is None  # no history yet
    params.history = [job("a", 1, epoch_seconds=2.0)]
    params.set_value("model", "yolov5n")
    params.set_value("imgsz", 160)
    params.set_value("epochs", 15)
    assert params.time_estimate("solder").seconds == pytest.approx(30.0)
    params.set_value("epochs", "many")
    assert params.time_estimate("solder") is None
    params.set_value("epochs", 15)
    params.set_local(False)
    assert params.time_estimate("solder") is None


def test_the_train_panel_shows_the_estimate_and_a_smaller_suggestion(tmp_path):
    from tests.test_parameters_model import train_form

    view = train_form(tmp_path)
    assert "estimated once a local job has finished" in view.time_estimate.value
    view.params.history = [job("demo-run", 1, epoch_seconds=2.0)]
    view.fields["model"].input.value = "yolov5n"
    view.fields["imgsz"].input.value = "160"
    view.fields["epochs"].input.value = "15"
    assert "Time: under a minute on this machine" in view.time_estimate.value and "long" not in view.time_estimate.value
    view.fields["model"].input.value = "yolov5m"
    view.fields["imgsz"].input.value = "640"
    view.fields["epochs"].input.value = "100"
    assert "That is long for this machine" in view.time_estimate.value
    view.params.set_local(False)
    assert view.time_estimate.value == ""

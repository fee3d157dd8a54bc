"""The Train tab's "Start from" picker, headless: its model on a local backend (stand-in container)
and the widgets that follow it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from amc_widgets.backends.local import LocalBackend
from amc_widgets.core.jobs import COMPLETED, JobSpec
from amc_widgets.core.weights import WeightsCache, WeightsError
from amc_widgets.ui.models.weights import WeightsModel
from tests.conftest import ASSET, wait_until

FAKE = [sys.executable, str(Path(__file__).with_name("fake_container.py"))]


@pytest.fixture()
def backend(tmp_path, small_dataset, stand_in_asset, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "0.05")
    monkeypatch.setenv("FAKE_BEST_PT", str(stand_in_asset))
    local = LocalBackend(home=tmp_path / "home", user="ana", container_command=FAKE)
    local.store_dataset(small_dataset, name="solder")
    return local


def test_the_picker_lists_finished_jobs_and_starts_from_one(backend, tmp_path, stand_in_asset):
    from amc_widgets.ui.views.train import TrainView
    from tests.test_parameters_model import train_form

    cache = WeightsCache(tmp_path / "home" / "weights", pins={ASSET: None})
    model = WeightsModel(lambda: backend, lambda: cache)
    model.refresh("yolov5n")
    assert model.kind == "scratch" and model.jobs == [] and model.job is None  # no COCO file on this machine
    model.kind = "job"
    with pytest.raises(WeightsError, match="No finished job"):
        model.choice()

    job = backend.start_job(JobSpec(dataset="solder", hyperparameters={"model": "yolov5n", "epochs": "2"}))
    wait_until(lambda: backend.describe_job(job.name).status == COMPLETED, 30, "the job")
    cache.folder.mkdir(parents=True)
    shutil.copyfile(stand_in_asset, cache.path(ASSET))  # put there by hand, as the offline message says
    model.kind = "coco"
    model.refresh("yolov5n")
    assert model.kind == "coco" and model.job == job.name
    assert model.jobs == [(f"{job.name} (mAP50-95 {model.jobs[0][0].split()[-1]}", job.name)]
    model.kind = "job"
    hyperparameters = model.prepare("yolov5n", "solder")
    assert hyperparameters["weights_source"].startswith(f"job:{job.name} sha256:")
    assert (backend.weights_folder / hyperparameters["weights"]).is_file()
    assert "the dataset has 3" in model.note and not model.download.running

    view: TrainView = train_form(tmp_path)
    view.weights.jobs = model.jobs
    view.weights.job = job.name
    assert view.weights_job.value == job.name and view.weights_job.layout.display == "none"
    view.start_from.value = "file"
    assert view.weights.kind == "file" and view.weights_path.layout.display == ""
    assert view.weights_job.layout.display == "none"
    view.weights_path.value = "/models/best.pt"
    assert view.weights.choice().value == "/models/best.pt"
    view.weights.kind = "scratch"
    assert view.start_from.value == "scratch" and view.weights_path.layout.display == "none"

"""Starting a job from weights on the local backend: fetched, checked and stored once before the
job starts, handed to the container as its 'weights' channel."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from amc_widgets.backends.local import LocalBackend
from amc_widgets.backends.start_weights import prepare_weights, previous_jobs
from amc_widgets.core.jobs import COMPLETED, JobSpec
from amc_widgets.core.weights import AssetPin, WeightsCache, WeightsChoice, WeightsError, sha256_file
from tests.conftest import ASSET, wait_until

FAKE = [sys.executable, str(Path(__file__).with_name("fake_container.py"))]
HP = {"model": "yolov5n", "epochs": "3"}


@pytest.fixture()
def backend(tmp_path, small_dataset, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "0.1")
    local = LocalBackend(home=tmp_path / "home", user="ana", container_command=FAKE)
    local.store_dataset(small_dataset, name="solder")
    return local


@pytest.fixture()
def cache(asset_server, stand_in_asset, tmp_path):
    url, _ = asset_server
    pins = {ASSET: AssetPin(stand_in_asset.stat().st_size, sha256_file(stand_in_asset))}
    return WeightsCache(tmp_path / "home" / "weights", base_url=url, pins=pins)


def test_coco_weights_are_stored_once_and_reach_the_job_as_its_channel(backend, cache, stand_in_asset):
    digest = sha256_file(stand_in_asset)
    start = prepare_weights(backend, WeightsChoice("coco"), "yolov5n", "solder", cache)
    stored = f"yolov5nu-{digest[:12]}.pt"
    assert start.hyperparameters == {"weights": stored, "weights_source": f"coco:{ASSET} sha256:{digest}"}
    assert "Starting from coco:yolov5nu.pt" in start.note and "new detection head" in start.note
    assert prepare_weights(backend, WeightsChoice("coco"), "yolov5n", "solder", cache) == start
    assert [p.name for p in backend.weights_folder.iterdir()] == [stored]  # once per user
    assert sha256_file(backend.weights_folder / stored) == digest

    job = backend.start_job(JobSpec(dataset="solder", hyperparameters={**HP, **start.hyperparameters}))
    done = wait_until(lambda: (d := backend.describe_job(job.name)).is_terminal and d, 30, "the job")
    assert done.status == COMPLETED
    assert f"fake container, weights: ['{stored}']" in backend.read_logs(job.name).lines
    assert done.hyperparameters["weights_source"] == start.hyperparameters["weights_source"]

    (previous,) = previous_jobs(backend)
    assert previous.name == job.name and previous.map50_95 == backend.read_metrics(job.name)["mAP50-95"].iloc[-1]
    assert previous.label == f"{job.name} (mAP50-95 {previous.map50_95:.3f})"
    with pytest.MonkeyPatch.context() as patch:  # the picker lists summaries: it reads no job's log
        patch.setattr(backend, "read_metrics", lambda name: pytest.fail(f"read {name}'s log"))
        assert previous_jobs(backend) == [previous]
    # the fake container's best.pt is no checkpoint: refused before anything is stored or started
    with pytest.raises(WeightsError, match="best.pt is not an ultralytics checkpoint"):
        prepare_weights(backend, WeightsChoice.parse(f"job:{job.name}"), "yolov5n", "solder", cache)
    assert [p.name for p in backend.weights_folder.iterdir()] == [stored]


def test_a_users_file_and_scratch(backend, cache, stand_in_asset, tmp_path):
    scratch = prepare_weights(backend, WeightsChoice("scratch"), "yolov5n", "solder", cache)
    assert scratch.hyperparameters == {"weights": "", "weights_source": "scratch"}
    own = prepare_weights(backend, WeightsChoice.parse(str(stand_in_asset)), "yolov5n", "solder", cache)
    assert own.hyperparameters["weights_source"].startswith(f"file:{ASSET} sha256:")
    assert not (tmp_path / "home" / "weights").exists()  # nothing downloaded for a file of the user's
    with pytest.raises(WeightsError, match="does not fit yolov5s"):
        prepare_weights(backend, WeightsChoice.parse(str(stand_in_asset)), "yolov5s", "solder", cache)


def test_weights_that_are_not_stored_are_refused_before_the_job_exists(backend):
    with pytest.raises(WeightsError, match="'missing.pt' is not stored"):
        backend.start_job(JobSpec(dataset="solder", hyperparameters={**HP, "weights": "missing.pt"}, name="amc-w"))
    assert not (backend.jobs_folder / "amc-w").exists()

"""Local tuning jobs (Optuna, one detached tuner per tuning job) with the stand-in container (fast)."""

from __future__ import annotations

import itertools
import os
import signal
import sys
from pathlib import Path

import optuna
import pytest

from amc_widgets.backends import local_tuner
from amc_widgets.backends.base import TunesHyperparameters
from amc_widgets.backends.local import LocalBackend
from amc_widgets.backends.local_tuner import Tuner, distribution, fitting
from amc_widgets.backends.local_tuning import TuningFiles
from amc_widgets.core.jobs import COMPLETED, IN_PROGRESS, STOPPED, JobNotFoundError
from amc_widgets.core.tuning import (
    EARLY_STOPPED_REASON,
    TuningSpec,
    TuningSpecError,
    parse_range,
)
from tests.conftest import FAST_TRAINING, wait_until

FAKE = [sys.executable, str(Path(__file__).with_name("fake_container.py"))]
STATIC = {"model": "yolov5n", "epochs": "3"}


@pytest.fixture()
def backend(tmp_path, small_dataset, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "0.2")
    monkeypatch.setenv("FAKE_WORSE_BELOW", "mosaic:0.5")
    local = LocalBackend(home=tmp_path / "home", user="ana", max_concurrent_jobs=2, container_command=FAKE)
    local.store_dataset(small_dataset, name="solder")
    return local


def spec(*ranges: str, **kwargs) -> TuningSpec:
    return TuningSpec(dataset="solder", hyperparameters={**STATIC, **kwargs.pop("static", {})},
                      ranges=[parse_range(r) for r in ranges], **{"max_parallel": 2, "seed": 1, **kwargs})


def wait_ended(backend, name, timeout=60.0):
    return wait_until(lambda: (d := backend.describe_tuning_job(name)).is_terminal and d, timeout,
                      f"tuning job {name} to end")


def study_trials(backend, name):
    files = TuningFiles(backend.home / "tuning-jobs" / name)
    return optuna.load_study(study_name=name, storage=files.storage_url).get_trials()


def test_a_study_of_six_trials_two_at_a_time(backend):
    started = backend.start_tuning_job(spec("mosaic=0:1", "optimizer=SGD,AdamW", strategy="Random", max_jobs=6))
    assert started.status == IN_PROGRESS and len(started.name) <= 32
    most_at_once = 0

    def ended():
        nonlocal most_at_once
        described = backend.describe_tuning_job(started.name)
        most_at_once = max(most_at_once, described.running)
        return described.is_terminal and described

    done = wait_until(ended, 90, "the tuning job to end", every=0.05)
    assert done.status == COMPLETED and done.status_counters()["Completed"] == 6
    assert 1 <= most_at_once <= 2
    children = done.children
    assert len({c.name for c in children}) == 6 and all(c.name.startswith(done.name) for c in children)
    for child in children:
        job = backend.describe_job(child.name)
        assert job.tuning_job == done.name and job.hyperparameters["epochs"] == "3"
        assert job.hyperparameters["mosaic"] == child.tuned["mosaic"] and child.tuned["optimizer"] in ("SGD", "AdamW")
        assert child.objective == job.final_metric("mAP50-95") and child.objective_status == "Succeeded"
    # the best is the best by the objective (a mosaic below 0.5 scores a tenth)
    assert done.best.objective == max(c.objective for c in children)
    assert float(done.best.tuned["mosaic"]) >= 0.5 or all(float(c.tuned["mosaic"]) < 0.5 for c in children)
    assert [c.name for c in done.children_by_objective()][0] == done.best.name
    assert backend.list_tuning_jobs()[0].name == done.name
    # the children are ordinary jobs: listed, with outputs
    assert {c.name for c in children} <= {j.name for j in backend.list_jobs()}
    assert {c.name for c in children} <= {o.job_name for o in backend.list_outputs()}


def test_a_killed_tuner_is_restarted_and_repeats_no_trial(backend, monkeypatch):
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "0.4")
    name = backend.start_tuning_job(spec("mosaic=0:1", "lr0=1e-4:1e-1:log", max_jobs=6)).name
    files = TuningFiles(backend.home / "tuning-jobs" / name)
    wait_until(lambda: files.pid_file.exists(), 30, "the tuner process")
    first_tuner = int(files.pid_file.read_text())
    wait_until(lambda: len(backend.describe_tuning_job(name).children) >= 3, 30, "a trial started by the tuner")
    os.kill(first_tuner, signal.SIGKILL)
    wait_until(lambda: not files.tuner_alive(), 10, "the tuner to be gone")
    running = [c.name for c in backend.describe_tuning_job(name).children]  # this describe restarts it
    wait_until(lambda: files.pid_file.exists() and int(files.pid_file.read_text()) != first_tuner, 30,
               "a new tuner")
    done = wait_ended(backend, name, 90)
    assert done.status == COMPLETED
    children = done.children
    assert len(children) == 6 == len({c.name for c in children})
    assert all(c.status in (COMPLETED, STOPPED) for c in children)
    assert set(running) <= {c.name for c in children}  # the ones running at the kill were followed
    trials = study_trials(backend, name)
    assert len(trials) == 6 and all(t.state.is_finished() and t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    picks = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(picks)) == 6


def test_grid_runs_every_combination(backend):
    done = wait_ended(backend, backend.start_tuning_job(
        spec("optimizer=SGD,AdamW", "mosaic=0.0,1.0", strategy="Grid", max_jobs=None)).name)
    assert done.status == COMPLETED and done.max_jobs == 4
    assert sorted((c.tuned["optimizer"], c.tuned["mosaic"]) for c in done.children) == sorted(
        itertools.product(("SGD", "AdamW"), ("0.0", "1.0")))
    assert float(done.best.tuned["mosaic"]) == 1.0


def test_early_stopping_stops_a_clearly_worse_trial_fed_by_a_warm_start(backend, monkeypatch):
    parent = wait_ended(backend, backend.start_tuning_job(spec("mosaic=0.8,0.9", strategy="Grid", max_jobs=None,
                                                               static={"epochs": "8"})).name)
    assert parent.status == COMPLETED
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "0.3")
    # the tuner process starts every trial here: the first ones, started by the call, could end before
    # it is up (seconds of imports on a busy machine) and then no pruner would have looked at them
    monkeypatch.setattr(local_tuner, "start_first_trials", lambda files, local: None)
    tuned = backend.start_tuning_job(spec("mosaic=0.8,0.9,0.1", strategy="Grid", max_jobs=None, early_stopping=True,
                                          warm_start_from=(parent.name,), static={"epochs": "8"}))
    done = wait_ended(backend, tuned.name)
    assert done.status == COMPLETED and done.warm_start_from == (parent.name,)
    assert len(done.children) == 3  # the parent's trials informed the study but are not children
    (worse,) = [c for c in done.children if c.tuned["mosaic"] == "0.1"]
    assert worse.status == STOPPED and worse.early_stopped and worse.status_reason == EARLY_STOPPED_REASON
    epochs_run = backend.read_metrics(worse.name)["epoch"].max()
    assert 2 <= epochs_run < 8
    assert worse.objective == backend.describe_job(worse.name).final_metric("mAP50-95")
    assert "model.tar.gz" in {o.job_name: o.files for o in backend.list_outputs()}[worse.name]
    good = [c for c in done.children if c is not worse]
    assert all(c.status == COMPLETED and not c.early_stopped for c in good)
    assert done.best.name in {c.name for c in good}
    warm = [t for t in study_trials(backend, done.name) if "warm_start" in t.user_attrs]
    assert len(warm) == 2 and {t.user_attrs["warm_start"] for t in warm} == {parent.name}


def test_stop_stops_the_running_children(backend, monkeypatch):
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "1")
    name = backend.start_tuning_job(spec("mosaic=0:1", max_jobs=6, static={"epochs": "30"})).name
    wait_until(lambda: backend.describe_tuning_job(name).running == 2, 30, "two running children")
    stopping = backend.stop_tuning_job(name)
    assert stopping.status in ("Stopping", "Stopped")
    done = wait_ended(backend, name, 30)
    assert done.status == STOPPED and len(done.children) == 2
    assert all(c.status == STOPPED and not c.early_stopped for c in done.children)
    assert backend.stop_tuning_job(name).status == STOPPED  # stopping again changes nothing


def test_all_children_failing_fails_the_tuning_job(backend, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "1")
    done = wait_ended(backend, backend.start_tuning_job(spec("mosaic=0:1", max_jobs=2)).name)
    assert done.status == "Failed" and done.status_counters()["NonRetryableError"] == 2
    assert done.failure_reason.startswith("All 2 training jobs failed") and "exploded" in done.failure_reason
    assert done.best is None


def test_hyperband_runs_with_its_pruner(backend, monkeypatch):
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "0.3")
    done = wait_ended(backend, backend.start_tuning_job(spec("mosaic=0:1", strategy="Hyperband", max_jobs=4,
                                                             static={"epochs": "4"})).name)
    assert done.status == COMPLETED and len(done.children) == 4
    assert all(c.status == COMPLETED or (c.status == STOPPED and c.early_stopped) for c in done.children)
    assert done.best is not None and done.best.status == COMPLETED


def test_children_that_cannot_start_fail_the_tuning_job_with_why(backend):
    backend.delete_dataset("solder")  # gone after the request was accepted: no child can start
    files = TuningFiles(backend.home / "tuning-jobs" / "tune-gone")
    files.create(spec("mosaic=0:1", max_jobs=2, name="tune-gone"), {"user": "ana"})
    tuner = Tuner(files, backend)
    assert tuner.step() is True
    state = files.state()
    assert state["status"] == "Failed" and "could not start" in state["failure_reason"]
    assert "No stored dataset named 'solder'" in state["failure_reason"]


def test_bad_requests_start_nothing(backend):
    assert isinstance(backend, TunesHyperparameters)
    with pytest.raises(TuningSpecError) as bad:
        backend.start_tuning_job(spec("mosaic=0:1", max_jobs=2, max_parallel=3))
    assert "parallel jobs" in bad.value.problems
    with pytest.raises(TuningSpecError) as bad:
        backend.start_tuning_job(spec("mosaic=0:1", max_jobs=2, warm_start_from=("tune-nothing",)))
    assert "warm start" in bad.value.problems
    with pytest.raises(JobNotFoundError):
        backend.describe_tuning_job("tune-nothing")
    assert backend.list_tuning_jobs() == [] and backend.list_jobs() == []
    other = LocalBackend(home=backend.home, user="bo", container_command=FAKE)
    name = backend.start_tuning_job(spec("mosaic=0:1", max_jobs=1, max_parallel=1)).name
    with pytest.raises(JobNotFoundError):
        other.describe_tuning_job(name)
    assert other.list_tuning_jobs() == []
    wait_ended(backend, name)


@pytest.mark.slow
def test_a_real_tiny_tuning_run_trains_and_picks_the_best_model(tmp_path, small_dataset, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    real = LocalBackend(home=tmp_path / "home", user="ana", max_concurrent_jobs=1)
    real.store_dataset(small_dataset, name="solder")
    request = TuningSpec(dataset="solder", hyperparameters={**FAST_TRAINING, "epochs": "1"},
                         ranges=[parse_range("lr0=0.0001,0.02")], objective="val_box_loss", strategy="Grid",
                         max_jobs=None, max_parallel=1)
    done = wait_ended(real, real.start_tuning_job(request).name, 900)
    assert done.status == COMPLETED and done.objective_type == "Minimize", done.failure_reason
    assert sorted(c.tuned["lr0"] for c in done.children) == ["0.0001", "0.02"]
    finals = {c.name: real.read_metrics(c.name)["val_box_loss"].iloc[-1] for c in done.children}
    assert all(c.status == COMPLETED and c.objective == pytest.approx(finals[c.name]) for c in done.children)
    assert done.best.name == min(finals, key=finals.get)
    onnx = real.download_outputs(done.best.name, tmp_path / "best").onnx
    assert onnx is not None and onnx.is_file()


def test_warm_start_takes_only_values_that_fit_the_new_ranges():
    lr0, optimizer = distribution(parse_range("lr0=1e-3:1e-2:log")), distribution(parse_range("optimizer=SGD,AdamW"))
    assert fitting(5e-3, lr0) == 5e-3 and fitting(0.5, lr0) is None and fitting("SGD", lr0) is None
    assert fitting("AdamW", optimizer) == "AdamW" and fitting("Adam", optimizer) is None
    assert fitting(None, optimizer) is None

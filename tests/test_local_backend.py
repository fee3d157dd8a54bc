"""The local backend with a stand-in container (fast): storage, queue, statuses, stop, logs, restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import psutil
import pytest
import yaml

from amc_widgets.backends.local import LocalBackend
from amc_widgets.core.dataset_check import DatasetError
from amc_widgets.core.hyperparameters import HyperparameterError
from amc_widgets.core.jobs import (
    COMPLETED,
    FAILED,
    JOB_NAME_PATTERN,
    STOPPED,
    TRAINING,
    JobNotFoundError,
    JobSpec,
)
from tests.conftest import wait_until, zip_folder
from tests.label_exports import write_voc

FAKE = [sys.executable, str(Path(__file__).with_name("fake_container.py"))]
HP = {"model": "yolov5n", "epochs": "3"}


@pytest.fixture()
def backend(tmp_path, small_dataset, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "0.3")
    local = LocalBackend(home=tmp_path / "home", user="ana", max_concurrent_jobs=2, container_command=FAKE)
    local.store_dataset(small_dataset, name="solder")
    return local


def wait_done(backend, name, timeout=30.0):
    return wait_until(lambda: (d := backend.describe_job(name)).is_terminal and d, timeout, f"{name} to end")


# --- datasets ---------------------------------------------------------------------------------

def test_store_list_and_delete(backend, small_dataset):
    (info,) = backend.list_datasets()
    assert info.name == "solder" and info.files == sum(1 for p in small_dataset.rglob("*") if p.is_file())
    assert Path(info.location) == backend.home / "users" / "ana" / "custom-uploads" / "solder"
    backend.delete_dataset("solder")
    assert backend.list_datasets() == []
    with pytest.raises(DatasetError):
        backend.delete_dataset("solder")


def test_voc_export_is_stored_converted_with_its_split(backend, small_dataset, tmp_path):
    source = write_voc(small_dataset, tmp_path / "voc")
    before = sorted(p.relative_to(source).as_posix() for p in source.rglob("*"))
    info = backend.store_dataset(source, name="voc")
    stored = Path(info.location)
    data = yaml.safe_load((stored / "data.yaml").read_text())
    assert data["train"] == "images/train" and data["amc_import"]["format"] == "Pascal VOC XML"
    assert len(list((stored / "images" / "val").iterdir())) == 16 == len(list((stored / "labels" / "val").iterdir()))
    assert not (stored / "Annotations").exists()
    assert sorted(p.relative_to(source).as_posix() for p in source.rglob("*")) == before
    assert not list(backend.uploads.glob(".partial-*"))


def test_existing_dataset_is_never_overwritten_unasked(backend, small_dataset, tmp_path):
    marker = Path(backend.list_datasets()[0].location) / "data.yaml"
    before = marker.read_text()
    with pytest.raises(FileExistsError):
        backend.store_dataset(small_dataset, name="solder")
    assert marker.read_text() == before
    changed = tmp_path / "changed"
    import shutil
    shutil.copytree(small_dataset, changed)
    (changed / "NOTE.txt").write_text("v2")
    backend.store_dataset(changed, name="solder", overwrite=True)
    assert (marker.parent / "NOTE.txt").read_text() == "v2"


def test_bad_dataset_is_not_stored(backend, dataset_copy):
    (dataset_copy / "train" / "labels" / "board_train_0000.txt").write_text("9 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DatasetError, match="class 9"):
        backend.store_dataset(dataset_copy, name="broken")
    assert [d.name for d in backend.list_datasets()] == ["solder"]


def test_failed_upload_leaves_no_half_dataset(backend, small_dataset):
    def fail_halfway(done, total):
        if done > total / 2:
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        backend.store_dataset(small_dataset, name="half", progress=fail_halfway)
    assert [d.name for d in backend.list_datasets()] == ["solder"]
    assert not [p for p in backend.uploads.iterdir() if p.name != "solder"]


def test_bad_dataset_names_and_paths(backend, tmp_path):
    with pytest.raises(ValueError, match="not a valid dataset name"):
        backend.store_dataset(tmp_path, name="../escape")
    with pytest.raises(FileNotFoundError):
        backend.store_dataset(tmp_path / "nowhere", name="x")


# --- jobs -------------------------------------------------------------------------------------

def test_job_runs_through_sagemaker_statuses_to_outputs(backend):
    job = backend.start_job(JobSpec(dataset="solder", hyperparameters=HP))
    assert JOB_NAME_PATTERN.match(job.name) and job.status == "InProgress"
    done = wait_done(backend, job.name)
    assert done.status == COMPLETED
    assert [t.status for t in done.transitions] == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert all(t.end is not None for t in done.transitions)
    assert done.billable_seconds is not None and done.duration() >= 0.9
    metrics = backend.read_metrics(job.name)
    assert metrics["epoch"].tolist() == [1, 2, 3]
    # the summary kept when it ended: what listings show, without reading the log again
    assert done.final_metrics["epoch"] == 3 and done.final_metrics["mAP50-95"] == metrics["mAP50-95"].iloc[-1]
    assert "epochs" not in done.final_metrics
    assert done.class_metrics is None  # the fake container left no model card
    (output,) = backend.list_outputs()
    assert output.job_name == job.name and set(output.files) == {"model.tar.gz", "output.tar.gz"}
    assert Path(output.location) == backend.home / "users" / "ana" / "training-jobs" / job.name / "output"
    # a job recorded by an older version, with a field this one no longer has, still reads
    state = backend.jobs_folder / job.name / "state.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "model_artifact": "/old/model.tar.gz"}))
    assert backend.describe_job(job.name) == done
    # one that ended before summaries existed gets its summary once, from its log
    older = {key: value for key, value in json.loads(state.read_text()).items() if key != "final_metrics"}
    state.write_text(json.dumps(older))
    assert backend.describe_job(job.name) == done
    assert json.loads(state.read_text())["final_metrics"] == done.final_metrics


def test_a_finished_jobs_summary_keeps_each_classs_result(backend, monkeypatch):
    """The model card's per-class mAP50-95 joins the summary when the job ends: the table shows the weakest
    class without opening the model."""
    from tests.results_fakes import VALIDATION

    monkeypatch.setenv("FAKE_RESULTS", "1")
    done = wait_done(backend, backend.start_job(JobSpec(dataset="solder", hyperparameters=HP)).name)
    assert done.class_metrics == {row["class"]: row["mAP50-95"] for row in VALIDATION["per_class"]}
    assert done.weakest_class() == ("bridge", 0.2)
    assert backend.list_jobs()[0].class_metrics == done.class_metrics


def test_logs_from_a_cursor_have_no_gaps_or_duplicates(backend, monkeypatch):
    monkeypatch.setenv("FAKE_EPOCHS", "6")
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "0.15")
    name = backend.start_job(JobSpec(dataset="solder", hyperparameters=HP)).name
    lines, cursor = [], None
    while True:
        chunk = backend.read_logs(name, cursor)
        lines += chunk.lines
        cursor = chunk.cursor
        if chunk.finished:
            break
        time.sleep(0.07)
    assert lines == backend.read_logs(name).lines
    assert lines[-1] == "last line without newline"
    assert sum(line.startswith("[amc-metrics]") for line in lines) == 6


def test_jobs_beyond_the_limit_wait_for_a_slot(tmp_path, small_dataset, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "0.4")
    local = LocalBackend(home=tmp_path / "h", user="ana", max_concurrent_jobs=1, container_command=FAKE)
    local.store_dataset(small_dataset, name="solder")
    first = local.start_job(JobSpec(dataset="solder", hyperparameters=HP)).name
    second = local.start_job(JobSpec(dataset="solder", hyperparameters=HP)).name
    wait_until(lambda: local.describe_job(first).secondary_status == TRAINING, what="first training")
    time.sleep(0.5)
    assert local.describe_job(second).secondary_status == "Starting"
    a, b = wait_done(local, first), wait_done(local, second)
    assert a.status == b.status == COMPLETED
    training = {n: next(t for t in d.transitions if t.status == TRAINING) for n, d in ((first, a), (second, b))}
    assert training[second].start >= training[first].end  # never both at once


def test_stop_a_running_job_keeps_its_model(backend, monkeypatch):
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "1")
    monkeypatch.setenv("FAKE_EPOCHS", "30")
    name = backend.start_job(JobSpec(dataset="solder", hyperparameters=HP)).name
    wait_until(lambda: not backend.read_metrics(name).empty, what="a first epoch")
    assert backend.stop_job(name).status in ("Stopping", "Stopped")
    done = wait_done(backend, name, timeout=15)
    assert done.status == STOPPED and done.failure_reason == ""
    assert "model.tar.gz" in backend.list_outputs()[0].files


def test_stop_a_queued_job(tmp_path, small_dataset, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "2")
    local = LocalBackend(home=tmp_path / "h", user="ana", max_concurrent_jobs=1, container_command=FAKE)
    local.store_dataset(small_dataset, name="solder")
    first = local.start_job(JobSpec(dataset="solder", hyperparameters=HP)).name
    queued = local.start_job(JobSpec(dataset="solder", hyperparameters=HP)).name
    wait_until(lambda: local.describe_job(first).secondary_status == TRAINING, what="first training")
    local.stop_job(queued)
    done = wait_done(local, queued)
    assert done.status == STOPPED and TRAINING not in [t.status for t in done.transitions]
    local.stop_job(first)
    wait_done(local, first)


def test_failure_reason_comes_from_the_failure_file(backend, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL", "1")
    name = backend.start_job(JobSpec(dataset="solder", hyperparameters=HP)).name
    done = wait_done(backend, name)
    assert done.status == FAILED and "class 9 in labels/x.txt" in done.failure_reason


def test_jobs_survive_the_process_that_started_them(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "5")
    name = backend.start_job(JobSpec(dataset="solder", hyperparameters=HP)).name
    fresh = LocalBackend(home=backend.home, user="ana")  # as after a restart of the notebook or CLI
    assert [j.name for j in fresh.list_jobs()] == [name]
    wait_until(lambda: fresh.describe_job(name).secondary_status == TRAINING, what="training")
    os.kill(fresh.describe_job(name).extra["runner_pid"], signal.SIGKILL)  # the machine "restarts"
    lost = wait_until(lambda: (d := fresh.describe_job(name)).is_terminal and d, what="lost job noticed")
    assert lost.status == FAILED and "ended without finishing" in lost.failure_reason
    assert LocalBackend(home=backend.home, user="bo").list_jobs() == []  # users see only their jobs


def job_processes(backend, name) -> list[psutil.Process]:
    """Live processes of a local job: its folder in their command line, working folder or /opt/ml root."""
    folder = str(backend.jobs_folder / name)
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if (folder in " ".join(process.cmdline()) or process.cwd().startswith(folder)
                    or process.environ().get("AMC_ML_ROOT", "").startswith(folder)):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture()
def no_leftovers(backend):
    """Whatever a test (or a bug) leaves of its jobs is killed at the end."""
    yield
    for folder in backend.jobs_folder.iterdir():
        for process in job_processes(backend, folder.name):
            process.kill()


def start_and_kill_the_runner(backend, monkeypatch, child: str) -> tuple[str, list[psutil.Process]]:
    """Start a job whose container starts a child (FAKE_CHILD=child); once both run, kill -9 the runner.
    Returns the job's name and its processes just before the kill."""
    monkeypatch.setenv("FAKE_EPOCH_SECONDS", "5")
    monkeypatch.setenv("FAKE_EPOCHS", "30")
    monkeypatch.setenv("FAKE_CHILD", child)
    name = backend.start_job(JobSpec(dataset="solder", hyperparameters=HP)).name
    runner = backend.describe_job(name).extra["runner_pid"]
    processes = wait_until(lambda: len(found := job_processes(backend, name)) == 3 and found,
                           what="runner, container and its child running")
    assert runner in [p.pid for p in processes]
    os.kill(runner, signal.SIGKILL)  # kill -9, as the out-of-memory killer does
    return name, [p for p in processes if p.pid != runner]


def test_a_runner_killed_hard_takes_its_training_processes_along(backend, monkeypatch, no_leftovers):
    name, _ = start_and_kill_the_runner(backend, monkeypatch, child="linked")
    # nothing asked of the backend yet: the processes end by themselves
    wait_until(lambda: not job_processes(backend, name), timeout=15, what="no process of the job left")
    lost = backend.describe_job(name)
    assert lost.status == FAILED and "ended without finishing" in lost.failure_reason


def test_the_lost_job_check_ends_what_is_left_of_the_job(backend, monkeypatch, no_leftovers):
    name, trainers = start_and_kill_the_runner(backend, monkeypatch, child="detached")
    wait_until(lambda: len(job_processes(backend, name)) == 1, timeout=15, what="the container to end")
    (orphan,) = job_processes(backend, name)  # its child, in a session of its own as torchrun's workers are
    assert orphan.pid in [p.pid for p in trainers]
    lost = backend.describe_job(name)  # notices the runner is gone
    assert lost.status == FAILED
    wait_until(lambda: not job_processes(backend, name), timeout=5, what="the orphan ended")


def test_bad_job_requests(backend):
    with pytest.raises(DatasetError, match="No stored dataset"):
        backend.start_job(JobSpec(dataset="missing", hyperparameters=HP))
    with pytest.raises(HyperparameterError) as caught:
        backend.start_job(JobSpec(dataset="solder", hyperparameters={"epochs": "many"}))
    assert "epochs" in caught.value.problems
    with pytest.raises(ValueError, match="instance count"):
        backend.start_job(JobSpec(dataset="solder", hyperparameters=HP, instance_count=2))
    with pytest.raises(ValueError, match="not a valid job name"):
        backend.start_job(JobSpec(dataset="solder", hyperparameters=HP, name="bad_name!"))
    with pytest.raises(JobNotFoundError):
        backend.describe_job("no-such-job")
    name = backend.start_job(JobSpec(dataset="solder", hyperparameters=HP, name="mine")).name
    with pytest.raises(FileExistsError):
        backend.start_job(JobSpec(dataset="solder", hyperparameters=HP, name="mine"))
    wait_done(backend, name)


def test_zip_upload_is_unpacked_and_unsafe_zips_refused(backend, small_dataset, tmp_path):
    archive = tmp_path / "Solder Joints v2.zip"
    with zip_folder(small_dataset, archive) as zf:
        zf.writestr("__MACOSX/export/._data.yaml", "junk")
    seen = []
    info = backend.store_dataset(archive, progress=lambda done, total: seen.append((done, total)))
    assert info.name == "Solder-Joints-v2" and seen[-1][0] == seen[-1][1] > 0
    stored = Path(info.location)
    assert (stored / "export" / "data.yaml").read_bytes() == (small_dataset / "data.yaml").read_bytes()
    assert not (stored / "__MACOSX").exists()

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        for path in small_dataset.rglob("*"):
            if path.is_file():
                zf.write(path, path.relative_to(small_dataset).as_posix())
        zf.writestr("../../outside.txt", "gotcha")
    with pytest.raises(ValueError, match="outside.txt"):
        backend.store_dataset(evil)
    assert "evil" not in [d.name for d in backend.list_datasets()]
    assert not (backend.home / "users" / "outside.txt").exists()


def test_a_runner_still_inside_exec_counts_as_starting_not_lost(tmp_path):
    """Right after Popen returns, the runner's command line can read empty for a moment; a describe
    then must not mark the job lost. Stands in: a live process whose command line does not name the job."""
    from amc_widgets.backends.local_jobs import JobFiles

    now = [1000.0]
    job = JobFiles(tmp_path / "job", clock=lambda: now[0])
    job.create(JobSpec(dataset="solder", hyperparameters=HP, name="job"), {})
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        job.runner_pid_file.write_text(str(sleeper.pid))
        assert job.runner_alive()  # just created: starting
        now[0] += 31
        assert not job.runner_alive()  # later, a process that is not our runner does not count
    finally:
        sleeper.kill()
        sleeper.wait()
    now[0] = 1000.0
    assert not job.runner_alive()  # gone: lost, even while young

"""The detached process that carries one local job from queue to outputs.

``python -m amc_widgets.backends.local_runner JOB_FOLDER`` waits for a free training slot, lays out
the emulated /opt/ml, runs the training container's entry point, packs model.tar.gz and
output.tar.gz where SageMaker would put them, and records every status on the way.  It outlives
the CLI or notebook that started it; SIGTERM stops the job (the container saves what it has).
The container gets SIGTERM too when the runner dies, however it dies.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from amc_widgets.backends.local_jobs import JobFiles
from amc_widgets.core.container_contract import (
    EXIT_COMPLETED,
    FAILURE_LIMIT,
    ML_ROOT_ENV,
    TRAINING_CHANNEL,
    WEIGHTS_CHANNEL,
    MLPaths,
)
from amc_widgets.core.jobs import (
    COMPLETED,
    DOWNLOADING,
    FAILED,
    STARTING,
    STOPPED,
    STOPPING,
    TRAINING,
    UPLOADING,
)
from amc_widgets.core.processes import die_with_parent
from amc_widgets.core.storage import link_or_copy, link_or_copy_tree, pack_tar_gz

SLOT_POLL_SECONDS = 0.5


def container_command() -> list[str]:
    """The training container's entry point, as this Python runs it."""
    script = Path(__file__).resolve().parents[2] / "container" / "train"
    if script.is_file():  # a source checkout: the very file the Docker image runs
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "amc_widgets.training"]


def waiting_before(job: JobFiles) -> bool:
    """True while an older job is still waiting for a slot: the queue is first come, first served."""
    mine = job.load()
    for folder in job.folder.parent.iterdir():
        other = JobFiles(folder)
        if folder == job.folder or not other.state_json.exists():
            continue
        try:
            theirs = other.load()
        except (OSError, ValueError):
            continue
        if (theirs.secondary_status == STARTING and not theirs.is_terminal
                and (theirs.created, theirs.name) < (mine.created, mine.name) and other.runner_alive()):
            return True
    return False


def acquire_slot(job: JobFiles, slots_dir: Path, slots: int, stop: threading.Event):
    """Hold one of ``slots`` lock files (the local 'quota') once every older queued job has one;
    None if stopped while waiting."""
    slots_dir.mkdir(parents=True, exist_ok=True)
    while not stop.is_set():
        if not waiting_before(job):
            for index in range(slots):
                handle = open(slots_dir / f"slot-{index}.lock", "w")
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return handle
                except BlockingIOError:
                    handle.close()
        stop.wait(SLOT_POLL_SECONDS)
    return None


def prepare_ml_root(job: JobFiles, dataset_folder: Path, hyperparameters: dict[str, str],
                    weights_file: Path | None = None) -> None:
    """The emulated /opt/ml: configuration, the dataset channel and, given a file, the weights channel."""
    paths = MLPaths(job.ml_root)
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    paths.hyperparameters.write_text(json.dumps(hyperparameters), encoding="utf-8")
    paths.resourceconfig.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}), encoding="utf-8")
    channels = [TRAINING_CHANNEL] + ([WEIGHTS_CHANNEL] if weights_file else [])
    paths.inputdataconfig.write_text(json.dumps({c: {"TrainingInputMode": "File"} for c in channels}),
                                     encoding="utf-8")
    channel = paths.channel(TRAINING_CHANNEL)
    if not channel.exists():
        link_or_copy_tree(dataset_folder, channel)
    if weights_file and not (paths.channel(WEIGHTS_CHANNEL) / weights_file.name).exists():
        paths.channel(WEIGHTS_CHANNEL).mkdir(parents=True, exist_ok=True)
        link_or_copy(weights_file, paths.channel(WEIGHTS_CHANNEL) / weights_file.name)


def run_job(job: JobFiles) -> None:
    settings = job.settings()
    spec = job.spec()
    stop = threading.Event()
    child: list[subprocess.Popen] = []

    def request_stop(*_):
        if not stop.is_set():
            stop.set()
            job.transition(STOPPING, "Stop requested", status=STOPPING)
            if child:
                child[0].send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, request_stop)
    if job.stop_marker.exists():
        request_stop()
    slot = acquire_slot(job, Path(settings["slots_dir"]), settings["max_concurrent_jobs"], stop)
    if slot is None:
        return finish(job, STOPPED, "Stopped while waiting for a training slot")

    job.transition(DOWNLOADING, "Preparing the training input")
    weights_file = settings.get("weights_file")
    prepare_ml_root(job, Path(settings["dataset_folder"]), spec.hyperparameters,
                    Path(weights_file) if weights_file else None)
    description = job.transition(TRAINING, "Training on this machine")
    description.started = job.clock()
    job.save(description)
    env = {**os.environ, ML_ROOT_ENV: str(job.ml_root), "PYTHONUNBUFFERED": "1"}
    with open(job.log, "ab") as log:
        command = settings.get("container_command") or container_command()
        # a runner killed hard (kill -9, out of memory) must not leave the training running unwatched
        child.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, preexec_fn=die_with_parent(signal.SIGTERM)))
        if stop.is_set():
            child[0].send_signal(signal.SIGTERM)
        # the job's summary needs pandas: load it while the container trains, not after it ended
        importlib.import_module("amc_widgets.core.metrics")
        code = child[0].wait()
    training_ended = job.clock()

    paths = MLPaths(job.ml_root)
    model_dir, data_dir = paths.model_dir, paths.output_data_dir
    outputs = Path(settings["outputs_folder"])
    if (model_dir / "best.pt").exists():
        job.transition(UPLOADING, "Packing model.tar.gz and output.tar.gz")
        pack_tar_gz(model_dir, outputs / "model.tar.gz")
        if data_dir.is_dir():
            pack_tar_gz(data_dir, outputs / "output.tar.gz")
    slot.close()

    if stop.is_set():
        status, message = STOPPED, stop_reason(job)
    elif code == EXIT_COMPLETED:
        status, message = COMPLETED, "Training job completed"
    else:
        failure = paths.failure_file
        message = failure.read_text(errors="replace")[:FAILURE_LIMIT] if failure.exists() else f"exit code {code}"
        status = FAILED
    finish(job, status, message, billable=training_ended - (description.started or 0))


def stop_reason(job: JobFiles) -> str:
    """Why the job was stopped: the reason written in its stop marker (a tuning job's early stopping),
    else a stop on request."""
    try:
        return job.stop_marker.read_text(encoding="utf-8").strip() or "Stopped on request"
    except OSError:
        return "Stopped on request"


def finish(job: JobFiles, status: str, message: str, billable: float | None = None) -> None:
    job.end(status, message if status != FAILED else "Training job failed",
            failure_reason=message if status == FAILED else "",
            billable_seconds=int(round(billable)) if billable is not None else None)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    job = JobFiles(Path(args[0]))
    try:
        run_job(job)
    except Exception as exc:  # noqa: BLE001 - the job must end in a state, whatever happened here
        finish(job, FAILED, f"The local job runner failed: {type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Local tuning jobs: their files under ``$AMC_HOME/tuning-jobs/<name>/``, and the backend's side of
starting, describing, listing and stopping them.  The study itself is driven by a detached
``python -m amc_widgets.backends.local_tuner FOLDER`` (see local_tuner.py).

A tuning job's folder holds ``tuning.json`` (the validated TuningSpec and the backend's settings),
``state.json`` (status, end, failure reason; written by the tuner alone), ``study.db`` (the Optuna
SQLite storage: trials, their parameters and per-epoch objective values), ``tuner.lock`` (held by
the one live tuner), ``tuner.pid`` / ``tuner.err`` and ``stop`` (present once a stop was asked).

Its children are ordinary local jobs named ``<tuning job>-<trial number>`` whose ``tuning_job``
names it: their statuses, objectives and tuned values are read from the jobs themselves.  A tuner
that died (killed, the machine restarted) is started again the next time the tuning job is
described or listed; it follows the children still running and never repeats a finished trial.
"""

from __future__ import annotations

import fcntl
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from amc_widgets.backends.local_jobs import write_json_atomically
from amc_widgets.core.jobs import COMPLETED, FAILED, IN_PROGRESS, STOPPED, STOPPING, JobDescription, JobNotFoundError
from amc_widgets.core.tuning import (
    EARLY_STOPPED_REASON,
    ParameterRange,
    TuningChild,
    TuningJobDescription,
    TuningSpec,
    TuningSpecError,
    check_tuning_name,
    make_tuning_name,
    validate_tuning_spec,
)

TUNER_GRACE_SECONDS = 30.0  # a tuner just started may not hold its lock yet


def child_name(tuning_job: str, trial_number: int) -> str:
    """The child job of trial ``trial_number``: the same name however often the tuner restarts."""
    return f"{tuning_job}-{trial_number:03d}"


class TuningFiles:
    """The files of one local tuning job."""

    def __init__(self, folder: Path, clock: Callable[[], float] = time.time):
        self.folder = Path(folder)
        self.clock = clock

    @property
    def name(self) -> str:
        return self.folder.name

    tuning_json = property(lambda self: self.folder / "tuning.json")
    state_json = property(lambda self: self.folder / "state.json")
    study_db = property(lambda self: self.folder / "study.db")
    lock_file = property(lambda self: self.folder / "tuner.lock")
    pid_file = property(lambda self: self.folder / "tuner.pid")
    started_file = property(lambda self: self.folder / "tuner.started")
    stop_marker = property(lambda self: self.folder / "stop")

    @property
    def storage_url(self) -> str:
        return f"sqlite:///{self.study_db}"

    def create(self, spec: TuningSpec, settings: dict[str, Any]) -> None:
        """Write a new tuning job's files; the folder must not exist yet."""
        self.folder.mkdir(parents=True)
        now = self.clock()
        write_json_atomically(self.tuning_json, {"spec": asdict(spec), "settings": settings, "created": now})
        self.save_state({"status": IN_PROGRESS, "ended": None, "failure_reason": ""})

    def spec(self) -> TuningSpec:
        data = json.loads(self.tuning_json.read_text(encoding="utf-8"))["spec"]
        data["ranges"] = [ParameterRange(**{**r, "values": tuple(r["values"])}) for r in data["ranges"]]
        data["warm_start_from"] = tuple(data["warm_start_from"])
        return TuningSpec(**data)

    def settings(self) -> dict[str, Any]:
        return json.loads(self.tuning_json.read_text(encoding="utf-8"))["settings"]

    def created(self) -> float:
        return json.loads(self.tuning_json.read_text(encoding="utf-8"))["created"]

    def state(self) -> dict[str, Any]:
        return json.loads(self.state_json.read_text(encoding="utf-8"))

    def save_state(self, state: dict[str, Any]) -> None:
        write_json_atomically(self.state_json, state)

    def end(self, status: str, failure_reason: str = "") -> None:
        self.save_state({"status": status, "ended": self.clock(), "failure_reason": failure_reason})

    def tuner_alive(self) -> bool:
        """Does a tuner hold this tuning job's lock (or was one started moments ago)?"""
        try:
            with open(self.lock_file, "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(handle, fcntl.LOCK_UN)
        except OSError:
            return False
        try:
            started = float(self.started_file.read_text())
        except (OSError, ValueError):
            return False
        return self.clock() - started < TUNER_GRACE_SECONDS

    def hold_lock(self):
        """The tuner's lock, held while the returned file stays open; None if another tuner has it."""
        handle = open(self.lock_file, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        self.started_file.unlink(missing_ok=True)
        return handle


class LocalTuning:
    """TunesHyperparameters for the LocalBackend: each trial an ordinary job of ``backend``."""

    def __init__(self, backend, popen: Callable[..., subprocess.Popen] = subprocess.Popen):
        self.backend = backend
        self._popen = popen

    @property
    def folder(self) -> Path:
        return self.backend.home / "tuning-jobs"

    def _files(self, name: str) -> TuningFiles:
        files = TuningFiles(self.folder / name, clock=self.backend.clock)
        if not files.tuning_json.exists() or files.settings().get("user") != self.backend.user:
            raise JobNotFoundError(f"No tuning job named '{name}'")
        return files

    def start(self, spec: TuningSpec) -> TuningJobDescription:
        """Validate, record, start the first trials and hand the tuning job to its own tuner process."""
        spec = validate_tuning_spec(spec)
        self.backend.dataset_folder(spec.dataset)  # a missing dataset is said now, not by every child
        for parent in spec.warm_start_from:
            try:
                self._files(parent)
            except JobNotFoundError:
                raise TuningSpecError({"warm start": f"no earlier tuning job named '{parent}'"}) from None
        name = check_tuning_name(spec.name) if spec.name else make_tuning_name(spec.dataset, self.backend.clock)
        files = TuningFiles(self.folder / name, clock=self.backend.clock)
        if files.folder.exists():
            raise FileExistsError(f"A tuning job named '{name}' already exists")
        settings = {"user": self.backend.user, "home": str(self.backend.home),
                    "max_concurrent_jobs": self.backend.max_concurrent_jobs,
                    "container_command": self.backend._container_command,
                    "warm_start_folders": [str(self.folder / parent) for parent in spec.warm_start_from]}
        files.create(TuningSpec(**{**spec.__dict__, "name": name}), settings)
        from amc_widgets.backends.local_tuner import start_first_trials  # Optuna: imported when tuning

        start_first_trials(files, self.backend)
        self._start_tuner(files)
        return self.describe(name)

    def _start_tuner(self, files: TuningFiles) -> None:
        files.started_file.write_text(str(self.backend.clock()))
        with open(files.folder / "tuner.err", "ab") as errors:  # the tuner has its own copy of the file
            tuner = self._popen(
                [sys.executable, "-m", "amc_widgets.backends.local_tuner", str(files.folder)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True,
            )
        threading.Thread(target=tuner.wait, daemon=True).start()  # reap it when it ends

    def describe(self, name: str) -> TuningJobDescription:
        """The tuning job and its children; a tuner found dead while the job runs is started again."""
        files = self._files(name)
        state = files.state()
        if state["status"] == IN_PROGRESS and not files.tuner_alive():
            state = files.state()  # it may have ended between the two reads
            if state["status"] == IN_PROGRESS:
                self._start_tuner(files)
        return self._description(files, state)

    def _description(self, files: TuningFiles, state: dict[str, Any]) -> TuningJobDescription:
        spec = files.spec()
        status = state["status"]
        if status == IN_PROGRESS and files.stop_marker.exists():
            status = STOPPING
        children = [self._child(job, spec) for job in self.children(files.name)]
        return TuningJobDescription(
            name=files.name, status=status, dataset=spec.dataset, strategy=spec.strategy,
            objective=spec.objective, objective_type=spec.direction, max_jobs=spec.total_jobs(),
            max_parallel=spec.max_parallel, created=files.created(), ranges=spec.ranges,
            static_hyperparameters=spec.hyperparameters, instance_type=spec.instance_type,
            instance_count=spec.instance_count, early_stopping=spec.early_stopping, ended=state["ended"],
            failure_reason=state["failure_reason"], children=children, warm_start_from=spec.warm_start_from)

    def children(self, name: str) -> list[JobDescription]:
        """The tuning job's child jobs, oldest first."""
        jobs_folder: Path = self.backend.jobs_folder
        pattern = re.compile(rf"^{re.escape(name)}-\d{{3,}}$")
        found = []
        for folder in jobs_folder.glob(f"{name}-*") if jobs_folder.is_dir() else []:
            if not pattern.match(folder.name):
                continue
            try:
                job = self.backend.describe_job(folder.name)
            except (JobNotFoundError, OSError, ValueError):  # another user's, or being written
                continue
            if job.tuning_job == name:
                found.append(job)
        return sorted(found, key=lambda j: (j.created, j.name))

    @staticmethod
    def _child(job: JobDescription, spec: TuningSpec) -> TuningChild:
        objective = job.final_metric(spec.objective) if job.is_terminal else None
        if objective is not None and job.status in (COMPLETED, STOPPED):
            objective_status = "Succeeded"
        else:
            objective_status = "Failed" if job.is_terminal else "Pending"
        return TuningChild(
            name=job.name, status=job.status,
            tuned={r.name: job.hyperparameters.get(r.name, "") for r in spec.ranges},
            created=job.created, ended=job.ended, objective=objective if objective_status == "Succeeded" else None,
            objective_status=objective_status, failure_reason=job.failure_reason,
            early_stopped=job.status == STOPPED and job.message == EARLY_STOPPED_REASON)

    def list(self) -> list[TuningJobDescription]:
        if not self.folder.is_dir():
            return []
        found = []
        for folder in self.folder.iterdir():
            try:
                found.append(self.describe(folder.name))
            except (JobNotFoundError, OSError, ValueError):  # another user's, or being written
                continue
        return sorted(found, key=lambda d: d.created, reverse=True)

    def stop(self, name: str) -> TuningJobDescription:
        """Ask the tuner to stop (it starts no more children and ends Stopped); its running children are
        stopped now, whether or not the tuner is alive."""
        files = self._files(name)
        if files.state()["status"] != IN_PROGRESS:
            return self.describe(name)
        files.stop_marker.touch()
        for job in self.children(name):
            if not job.is_terminal:
                self.backend.stop_job(job.name)
        return self.describe(name)


def all_children_failed_reason(children: list[JobDescription]) -> str:
    """A failed tuning job's reason: every child failed (the first child's reason, for a start)."""
    first = next((j.failure_reason for j in children if j.status == FAILED and j.failure_reason), "")
    reason = f"All {len(children)} training jobs failed"
    return f"{reason}; the first: {first.splitlines()[0]}" if first else reason

"""On-disk state of local training jobs, shared by the backend and the job runner process.

``<AMC_HOME>/jobs/<name>/`` holds ``job.json`` (what was asked), ``state.json`` (status,
transitions; written atomically by the runner), ``log.txt`` (the container's output), ``ml/``
(the emulated /opt/ml) and ``stop`` (present once a stop was requested).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from amc_widgets.core.container_contract import ML_ROOT_ENV, MLPaths
from amc_widgets.core.jobs import IN_PROGRESS, STARTING, JobDescription, JobSpec, StatusTransition
from amc_widgets.core.processes import processes_with_environment


def write_json_atomically(path: Path, data: Any) -> None:
    """``data`` as JSON in ``path``, whole or not at all (a reader never sees half a file)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(partial, path)


class JobFiles:
    """The files of one local job."""

    def __init__(self, folder: Path, clock: Callable[[], float] = time.time):
        self.folder = Path(folder)
        self.clock = clock

    @property
    def name(self) -> str:
        return self.folder.name

    job_json = property(lambda self: self.folder / "job.json")
    state_json = property(lambda self: self.folder / "state.json")
    log = property(lambda self: self.folder / "log.txt")
    ml_root = property(lambda self: self.folder / "ml")
    stop_marker = property(lambda self: self.folder / "stop")

    def create(self, spec: JobSpec, settings: dict[str, Any]) -> JobDescription:
        """Write a new job's files; the folder must not exist yet."""
        self.folder.mkdir(parents=True)
        now = self.clock()
        write_json_atomically(self.job_json, {"spec": asdict(spec), "settings": settings, "created": now})
        self.log.touch()
        description = JobDescription(
            name=self.name, status=IN_PROGRESS, secondary_status=STARTING, dataset=spec.dataset,
            instance_type=spec.instance_type, instance_count=spec.instance_count,
            hyperparameters=spec.hyperparameters, created=now, spot=spec.spot, tuning_job=spec.tuning_job,
            transitions=[StatusTransition(STARTING, now, message="Queued")],
        )
        self.save(description)
        return description

    def spec(self) -> JobSpec:
        return JobSpec(**json.loads(self.job_json.read_text(encoding="utf-8"))["spec"])

    def settings(self) -> dict[str, Any]:
        return json.loads(self.job_json.read_text(encoding="utf-8"))["settings"]

    def owner(self) -> str:
        return self.settings().get("user", "")

    def load(self) -> JobDescription:
        """The job's state; fields an older version wrote and this one no longer has are ignored."""
        data = json.loads(self.state_json.read_text(encoding="utf-8"))
        data["transitions"] = [StatusTransition(**t) for t in data["transitions"]]
        known = {f.name for f in fields(JobDescription)}
        return JobDescription(**{key: value for key, value in data.items() if key in known})

    def save(self, description: JobDescription) -> None:
        write_json_atomically(self.state_json, asdict(description))

    def transition(self, secondary: str, message: str = "", status: str | None = None) -> JobDescription:
        """Close the current secondary status and open ``secondary``."""
        description = self._next(secondary, message, status)
        self.save(description)
        return description

    def end(self, status: str, message: str, failure_reason: str = "",
            billable_seconds: int | None = None) -> JobDescription:
        """The job's last state, written once and whole: a reader never sees it ended but half summarised."""
        description = self._next(status, message, status)
        description.ended = description.transitions[-1].end = description.transitions[-1].start
        description.failure_reason = failure_reason
        if billable_seconds is not None:
            description.billable_seconds = billable_seconds
        description.final_metrics = self.final_metrics()
        description.class_metrics = self.class_metrics()
        self.save(description)
        return description

    def _next(self, secondary: str, message: str, status: str | None) -> JobDescription:
        description = self.load()
        now = self.clock()
        if description.transitions and description.transitions[-1].end is None:
            description.transitions[-1].end = now
        description.transitions.append(StatusTransition(secondary, now, message=message))
        description.secondary_status = secondary
        if status is not None:
            description.status = status
        return description

    def final_metrics(self) -> dict[str, float]:
        """The last value of each metric in the log (read once, when the job ends)."""
        from amc_widgets.core.metrics import final_metrics, parse_metrics  # pandas: not on a runner's way in

        with open(self.log, encoding="utf-8", errors="replace") as handle:
            return final_metrics(parse_metrics(handle))

    def class_metrics(self) -> dict[str, float | None] | None:
        """Each class's mAP50-95 on the validation split, from the model card the container left (None: no
        card, or one without per-class results)."""
        try:
            validation = json.loads((MLPaths(self.ml_root).model_dir / "model_card.json").read_text())["validation"]
            return {row["class"]: row.get("mAP50-95") for row in validation["per_class"]} or None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    runner_pid_file = property(lambda self: self.folder / "runner.pid")

    def runner_pid(self) -> int | None:
        """The job runner's process id (its own file: the runner alone writes state.json)."""
        try:
            return int(self.runner_pid_file.read_text())
        except (OSError, ValueError):
            return None

    def runner_alive(self, grace_seconds: float = 30.0) -> bool:
        """Is the runner process there?  In its first seconds a job counts as starting while its pid
        is not yet recorded, or while that process is still inside exec (its command line can read
        empty for a moment after Popen returns)."""
        pid = self.runner_pid()
        if pid is not None and process_alive(pid, str(self.folder)):
            return True
        starting = self.clock() - self.load().created < grace_seconds
        return starting and (pid is None or process_running(pid))

    def processes(self) -> list[int]:
        """The job's container and everything it started (torchrun, its workers, data loaders), each
        in whatever session: all carry the job's /opt/ml root in their environment."""
        return processes_with_environment(f"{ML_ROOT_ENV}={self.ml_root}")


def process_running(pid: int) -> bool:
    """True if ``pid`` runs and is not a zombie (without procfs, e.g. macOS: if it exists)."""
    if not Path("/proc").is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def process_alive(pid: int | None, must_mention: str) -> bool:
    """True if ``pid`` runs (not a zombie) and its command line mentions ``must_mention`` (without
    procfs, existence is all we can tell)."""
    if not pid or not process_running(pid):
        return False
    if not Path("/proc").is_dir():
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return must_mention in cmdline

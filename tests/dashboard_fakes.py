"""Shared fakes for the dashboard model tests: a hand-moved clock, an in-memory backend (and one that
tunes), the AWS secrets that must never be shown, and a check that a model imports no widgets."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from copy import deepcopy
from dataclasses import replace
from pathlib import Path

from amc_widgets.backends.base import DownloadResult, LogChunk
from amc_widgets.core.jobs import COMPLETED, IN_PROGRESS, STOPPING, TERMINAL_STATUSES, JobDescription, JobSpec
from amc_widgets.core.metrics import parse_metrics
from amc_widgets.core.tuning import EARLY_STOPPED_REASON, TuningChild, TuningJobDescription, TuningSpec

SPEC = JobSpec(dataset="solder", hyperparameters={"model": "yolov5n", "epochs": "3"})
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
REPO = Path(__file__).resolve().parent.parent


def assert_imports_no_widgets(module: str) -> None:
    """A fresh interpreter imports ``module`` (and traitlets) without ipywidgets: models stay headless."""
    code = (f"import sys, {module}; assert 'traitlets' in sys.modules; "
            "assert 'ipywidgets' not in sys.modules, sorted(m for m in sys.modules if 'widget' in m)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeBackend:
    """In-memory Backend: jobs and logs the test writes, call counts, failures on demand."""

    def __init__(self, name: str = "local"):
        self.name, self.user = name, "ana"
        if name == "local":
            self.home = Path("fake-workspace")  # jobs "run here": the RunsJobsHere capability
        self.jobs: dict[str, JobDescription] = {}
        self.logs: dict[str, list[str]] = {}
        self.calls: Counter = Counter()
        self.fail: Exception | None = None  # raised by describe_job
        self.log_fail: Exception | None = None  # raised by read_logs
        self.hold_log = False  # a terminal job whose log is still arriving (CloudWatch lag)
        self.page_lines: int | None = None  # at most this many lines per read (then LogChunk.more)
        self.download_error: Exception | None = None
        self.onnx_bytes: bytes | None = None

    def add_job(self, name: str, created: float, status: str = IN_PROGRESS, **kw) -> JobDescription:
        self.jobs[name] = JobDescription(name=name, status=status, secondary_status="Training", dataset="solder",
                                         instance_type=kw.pop("instance_type", "local"),
                                         instance_count=kw.pop("instance_count", 1),
                                         hyperparameters={}, created=created, **kw)
        self.logs[name] = []
        return replace(self.jobs[name])

    def finish(self, name: str, status: str = COMPLETED) -> None:
        self.jobs[name].status = status

    def start_job(self, spec: JobSpec) -> JobDescription:
        return self.add_job(spec.name or f"job-{len(self.jobs) + 1}", created=float(len(self.jobs) + 1))

    def describe_job(self, name: str) -> JobDescription:
        self.calls["describe"] += 1
        if self.fail:
            raise self.fail
        return replace(self.jobs[name])

    def list_jobs(self) -> list[JobDescription]:
        return sorted((replace(j) for j in self.jobs.values()), key=lambda j: j.created, reverse=True)

    def stop_job(self, name: str) -> JobDescription:
        if self.jobs[name].status == IN_PROGRESS:
            self.jobs[name].status = STOPPING
        return replace(self.jobs[name])

    def read_logs(self, name: str, cursor=None) -> LogChunk:
        self.calls["logs"] += 1
        if self.log_fail:
            raise self.log_fail
        lines, start = self.logs[name], cursor or 0
        end = len(lines) if self.page_lines is None else min(len(lines), start + self.page_lines)
        return LogChunk(list(lines[start:end]), end, more=end < len(lines),
                        finished=self.jobs[name].status in TERMINAL_STATUSES and not self.hold_log
                        and end == len(lines))

    def read_metrics(self, name: str):
        self.calls["metrics"] += 1
        return parse_metrics(self.logs[name])

    def download_outputs(self, name: str, dest: Path, progress=None) -> DownloadResult:
        if self.download_error:
            raise self.download_error
        folder = Path(dest) / name
        if folder.exists():
            raise FileExistsError(f"{folder} already exists and is not empty")
        (folder / "model").mkdir(parents=True)
        onnx = None
        if self.onnx_bytes is not None:
            onnx = folder / "model" / "best.onnx"
            onnx.write_bytes(self.onnx_bytes)
        for done in (50, 100):
            if progress:
                progress(done, 100)
        return DownloadResult(folder=folder, onnx=onnx, files=[onnx] if onnx else [])


class FakeTuner(FakeBackend):
    """A FakeBackend with the TunesHyperparameters capability: tuning jobs and children the test writes
    (each child is also an ordinary job whose ``tuning_job`` names its tuning job)."""

    def __init__(self, name: str = "local"):
        super().__init__(name)
        self.tuning: dict[str, TuningJobDescription] = {}
        self.tuning_specs: list[TuningSpec] = []

    def start_tuning_job(self, spec: TuningSpec) -> TuningJobDescription:
        self.calls["start_tuning"] += 1
        self.tuning_specs.append(spec)
        name = spec.name or f"tune-{len(self.tuning) + 1}"
        self.tuning[name] = TuningJobDescription(
            name=name, status=IN_PROGRESS, dataset=spec.dataset, strategy=spec.strategy, objective=spec.objective,
            objective_type=spec.direction, max_jobs=spec.total_jobs(), max_parallel=spec.max_parallel,
            created=1000.0 + len(self.tuning), ranges=list(spec.ranges),
            static_hyperparameters=dict(spec.hyperparameters), instance_type=spec.instance_type,
            instance_count=spec.instance_count, early_stopping=spec.early_stopping,
            warm_start_from=spec.warm_start_from)
        return deepcopy(self.tuning[name])

    def add_child(self, tuning: str, name: str, tuned: dict[str, str], status: str = IN_PROGRESS,
                  objective: float | None = None, created: float = 1000.0, ended: float | None = None,
                  early_stopped: bool = False) -> TuningChild:
        child = TuningChild(name=name, status=status, tuned=tuned, created=created, ended=ended, objective=objective,
                            objective_status="Succeeded" if objective is not None else "Pending",
                            early_stopped=early_stopped)
        self.tuning[tuning].children.append(child)
        self.add_job(name, created, status, tuning_job=tuning,
                     failure_reason=EARLY_STOPPED_REASON if early_stopped else "")
        self.jobs[name].hyperparameters = {**self.tuning[tuning].static_hyperparameters, **tuned}
        return child

    def describe_tuning_job(self, name: str) -> TuningJobDescription:
        self.calls["describe_tuning"] += 1
        return deepcopy(self.tuning[name])

    def list_tuning_jobs(self) -> list[TuningJobDescription]:
        self.calls["list_tuning"] += 1
        return sorted((deepcopy(j) for j in self.tuning.values()), key=lambda j: j.created, reverse=True)

    def stop_tuning_job(self, name: str) -> TuningJobDescription:
        job = self.tuning[name]
        job.status = "Stopping"
        for child in job.children:
            if child.status == IN_PROGRESS:
                child.status = STOPPING
        return deepcopy(job)

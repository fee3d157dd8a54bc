"""Training jobs as both backends describe them, in SageMaker's own words.

Statuses and secondary statuses use SageMaker's names, so the local backend and the SageMaker
backend look the same to the CLI and the dashboard.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from amc_widgets.core.errors import AmcError

# TrainingJobStatus
IN_PROGRESS, COMPLETED, FAILED, STOPPING, STOPPED = "InProgress", "Completed", "Failed", "Stopping", "Stopped"
TERMINAL_STATUSES = frozenset({COMPLETED, FAILED, STOPPED})
# SecondaryStatus values the local backend uses (a subset of SageMaker's)
STARTING, DOWNLOADING, TRAINING, UPLOADING = "Starting", "Downloading", "Training", "Uploading"

JOB_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
JOB_NAME_MAX = 63
# StoppingCondition: MaxRuntimeInSeconds is at most 28 days; MaxWaitTimeInSeconds (spot: waiting for
# capacity plus running) at least MaxRuntimeInSeconds, and held to 28 days too (a job lives 30 at most)
MAX_RUNTIME_HOURS = 28 * 24
SPOT_WAIT_FACTOR = 2  # by default a spot job may spend as long again waiting for capacity and restarts


class JobNotFoundError(AmcError, LookupError):
    """No job of that name (for this user)."""


@dataclass
class JobSpec:
    """What the user asks for when starting a job."""

    dataset: str
    hyperparameters: dict[str, str]  # SageMaker form: every value a string
    instance_type: str = "local"
    instance_count: int = 1
    spot: bool = False
    max_runtime_hours: float = 48.0
    name: str | None = None
    max_wait_hours: float | None = None  # spot only; None: SPOT_WAIT_FACTOR x max_runtime_hours, capped
    tuning_job: str = ""  # set by a tuning job for its children: JobDescription.tuning_job


def default_max_wait_hours(max_runtime_hours: float) -> float:
    """How long a spot job may take in all, waits included, unless the user says: twice its run time,
    within the API's limit."""
    return max(max_runtime_hours, min(SPOT_WAIT_FACTOR * max_runtime_hours, MAX_RUNTIME_HOURS))


def stopping_condition(spec: JobSpec) -> dict[str, int]:
    """SageMaker's StoppingCondition for ``spec``; ValueError naming the field when a limit is broken."""
    runtime = spec.max_runtime_hours
    if not 0 < runtime <= MAX_RUNTIME_HOURS:
        raise ValueError(f"max hours: must be more than 0 and at most {MAX_RUNTIME_HOURS} (28 days) (got {runtime:g})")
    condition = {"MaxRuntimeInSeconds": max(1, round(runtime * 3600))}
    if spec.spot:
        wait = default_max_wait_hours(runtime) if spec.max_wait_hours is None else spec.max_wait_hours
        if not runtime <= wait <= MAX_RUNTIME_HOURS:
            raise ValueError(f"max wait hours: must be at least max hours ({runtime:g}) and at most "
                             f"{MAX_RUNTIME_HOURS} (28 days) (got {wait:g})")
        condition["MaxWaitTimeInSeconds"] = max(condition["MaxRuntimeInSeconds"], round(wait * 3600))
    elif spec.max_wait_hours is not None:
        raise ValueError("max wait hours: only spot jobs wait for capacity (tick spot, or leave it empty)")
    return condition


@dataclass
class StatusTransition:
    """One entry of SageMaker's SecondaryStatusTransitions."""

    status: str
    start: float
    end: float | None = None
    message: str = ""


@dataclass
class JobDescription:
    """A job's state, as DescribeTrainingJob would give it."""

    name: str
    status: str
    secondary_status: str
    dataset: str
    instance_type: str
    instance_count: int
    hyperparameters: dict[str, str]
    created: float
    started: float | None = None
    ended: float | None = None
    failure_reason: str = ""
    transitions: list[StatusTransition] = field(default_factory=list)
    spot: bool = False
    billable_seconds: int | None = None
    # the last value of each metric of the metrics line, kept once the job ended (SageMaker's
    # FinalMetricDataList); None: not summarised yet. Listings read it instead of the log.
    final_metrics: dict[str, float] | None = None
    # each class's mAP50-95 on the validation split (None: no instance of it there), from the model card
    # when the job ended; None where unknown (no model, or the SageMaker backend, whose card is in model.tar.gz)
    class_metrics: dict[str, float | None] | None = None
    tuning_job: str = ""  # the tuning job that launched it (SageMaker's TuningJobArn, by name); "" if none
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def duration(self, now: float | None = None) -> float:
        """Seconds from creation to the end (or to ``now`` while running).  An ended job without an end
        time (one that failed before it started training) ends at its last status change."""
        end = self.ended
        if end is None and self.is_terminal:
            end = max((t.end or t.start for t in self.transitions), default=self.created)
        if end is None:
            end = time.time() if now is None else now
        return max(0.0, end - self.created)

    @property
    def message(self) -> str:
        return self.transitions[-1].message if self.transitions else ""

    @property
    def model(self) -> str:
        return self.hyperparameters.get("model", "")

    def final_metric(self, name: str) -> float | None:
        """The job's last value of metric ``name``, when it has one."""
        return (self.final_metrics or {}).get(name)

    def weakest_class(self) -> tuple[str, float] | None:
        """The class the model finds worst (lowest mAP50-95 of those measured), when known."""
        measured = [(value, name) for name, value in (self.class_metrics or {}).items() if value is not None]
        if not measured:
            return None
        value, name = min(measured)
        return name, value


def _slug(text: str, limit: int) -> str:
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", text).strip("-").lower()
    return slug[:limit].strip("-")


def make_job_name(model: str, dataset: str, clock: Callable[[], float] = time.time) -> str:
    """A valid, unique SageMaker job name: ``amc-<model>-<dataset>-<UTC time>-<random>``."""
    stamp = datetime.fromtimestamp(clock(), timezone.utc).strftime("%Y%m%d-%H%M%S")
    suffix = f"{stamp}-{secrets.token_hex(2)}"
    head = "-".join(part for part in ("amc", _slug(model, 10), _slug(dataset, 24)) if part)
    name = f"{head[: JOB_NAME_MAX - len(suffix) - 1]}-{suffix}".replace("--", "-")
    assert JOB_NAME_PATTERN.match(name), name
    return name


def check_job_name(name: str) -> str:
    """Return ``name`` if SageMaker accepts it, else raise ValueError saying why."""
    if not JOB_NAME_PATTERN.match(name):
        raise ValueError(
            f"'{name}' is not a valid job name: use 1-63 letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return name

"""Endpoints (a trained model serving requests) as both backends describe them, in SageMaker's words:
statuses, names, what is asked for, and waiting until an endpoint is ready."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from amc_widgets.core.errors import AmcError
from amc_widgets.core.jobs import JOB_NAME_MAX, JOB_NAME_PATTERN

# EndpointStatus (the subset AMC shows)
CREATING, IN_SERVICE, FAILED, DELETING = "Creating", "InService", "Failed", "Deleting"
SETTLED_STATUSES = frozenset({IN_SERVICE, FAILED})


class EndpointNotFoundError(AmcError, LookupError):
    """No endpoint of that name (for this user)."""


@dataclass(frozen=True)
class EndpointSpec:
    """What ``amc deploy`` asks for: which job's model, and where it runs."""

    job_name: str
    name: str | None = None  # generated when None
    instance_type: str = "local"
    instance_count: int = 1


@dataclass
class EndpointDescription:
    name: str
    status: str
    job_name: str
    instance_type: str
    instance_count: int
    created: float
    url: str = ""  # where invocations go (local: http://127.0.0.1:<port>)
    failure_reason: str = ""
    hourly_cost: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def cost_so_far(self, now: float) -> float:
        """What the endpoint has cost since it was created, at its hourly cost."""
        return self.hourly_cost * max(0.0, now - self.created) / 3600


def make_endpoint_name(job_name: str, clock: Callable[[], float] = time.time) -> str:
    """A valid, unique SageMaker endpoint name: ``<job name, cut>-ep-<UTC time>-<random>``."""
    stamp = datetime.fromtimestamp(clock(), timezone.utc).strftime("%m%d%H%M%S")
    suffix = f"ep-{stamp}-{secrets.token_hex(2)}"
    name = f"{job_name[: JOB_NAME_MAX - len(suffix) - 1].rstrip('-')}-{suffix}"
    return check_endpoint_name(name)


def check_endpoint_name(name: str) -> str:
    """Return ``name`` if SageMaker accepts it as an endpoint name, else raise ValueError saying why."""
    if not JOB_NAME_PATTERN.match(name):
        raise ValueError(f"'{name}' is not a valid endpoint name: use 1-63 letters, digits and hyphens, "
                         "starting and ending with a letter or digit")
    return name


def wait_until_settled(describe: Callable[[], EndpointDescription], on_status: Callable[[EndpointDescription], None],
                       timeout: float, sleep: Callable[[float], None] = time.sleep,
                       clock: Callable[[], float] = time.monotonic, every: float = 1.0) -> EndpointDescription:
    """Describe the endpoint until it is InService or Failed; ``on_status`` sees every change of status.
    Raises TimeoutError after ``timeout`` seconds."""
    deadline = clock() + timeout
    last = None
    while True:
        endpoint = describe()
        if endpoint.status != last:
            on_status(endpoint)
            last = endpoint.status
        if endpoint.status in SETTLED_STATUSES:
            return endpoint
        if clock() >= deadline:
            raise TimeoutError(f"Endpoint {endpoint.name} is still {endpoint.status} after {timeout:.0f} s")
        sleep(every)

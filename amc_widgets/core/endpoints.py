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
from amc_widgets.core.instances import get_instance
from amc_widgets.core.jobs import JOB_NAME_MAX, JOB_NAME_PATTERN

# EndpointStatus (the subset AMC shows)
CREATING, IN_SERVICE, FAILED, DELETING = "Creating", "InService", "Failed", "Deleting"
SETTLED_STATUSES = frozenset({IN_SERVICE, FAILED})


# Real-time hosting list prices (USD per instance-hour, us-east-1, 2024) of the small types training has
# no use for; other types cost about what they cost for training (the instance catalog). Estimates.
HOSTING_ONLY_PRICES = {"ml.t2.medium": 0.056, "ml.c5.large": 0.102, "ml.c6i.large": 0.102}


def hourly_cost(instance_type: str, count: int) -> float:
    """The estimated hourly cost of ``count`` instances serving; ValueError for an unknown type."""
    price = HOSTING_ONLY_PRICES.get(instance_type)
    return count * (price if price is not None else get_instance(instance_type).price_per_hour)


class EndpointNotFoundError(AmcError, LookupError):
    """No endpoint of that name (for this user)."""


@dataclass(frozen=True)
class EndpointSpec:
    """What ``amc deploy`` asks for: which job's model, and where it runs."""

    job_name: str
    name: str | None = None  # generated when None
    instance_type: str = "local"
    instance_count: int = 1
    serverless_memory_mb: int | None = None  # SageMaker serverless instead of instances: 1024-6144, by 1024
    serverless_max_concurrency: int = 5
    min_instances: int | None = None  # autoscaling (instances only): all three, or none
    max_instances: int | None = None
    target_invocations: int | None = None  # per instance per minute

    @property
    def scales(self) -> bool:
        return self.max_instances is not None

    def check(self) -> EndpointSpec:
        """Raise ValueError for settings SageMaker would refuse; return the spec."""
        if self.serverless_memory_mb is not None:
            if self.serverless_memory_mb not in range(1024, 6145, 1024):
                raise ValueError(f"Serverless memory must be 1024, 2048, ... 6144 MB (got {self.serverless_memory_mb})")
            if not 1 <= self.serverless_max_concurrency <= 200:
                raise ValueError("Serverless max concurrency must be 1..200")
            if self.scales:
                raise ValueError("Autoscaling settings are for instances, not serverless endpoints")
        if self.instance_count < 1:
            raise ValueError(f"Instance count must be at least 1 (got {self.instance_count})")
        scaling = (self.min_instances, self.max_instances, self.target_invocations)
        if any(v is not None for v in scaling):
            if any(v is None for v in scaling):
                raise ValueError("Autoscaling needs --min-instances, --max-instances and --target-invocations")
            if not 1 <= self.min_instances <= self.instance_count <= self.max_instances:
                raise ValueError("Autoscaling needs 1 <= min instances <= instances <= max instances")
            if self.target_invocations < 1:
                raise ValueError("Target invocations per instance must be at least 1")
        return self


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

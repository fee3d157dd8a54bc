"""The finished jobs as one sortable, filterable, paged table (running jobs have live cards).

Rows come from the jobs' summaries (status, times, final metrics, as listed by the backend): a
listing never reads a log.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

import traitlets as tl

from amc_widgets.core.instances import CATALOG, THIS_MACHINE, job_cost
from amc_widgets.core.jobs import JobDescription
from amc_widgets.core.text import human_duration

# (key, heading); every key sorts by the raw value behind the shown text
COLUMNS = (("name", "Job"), ("dataset", "Dataset"), ("model", "Model"), ("status", "Status"),
           ("created", "Started"), ("duration", "Duration"), ("map", "mAP50-95"), ("weakest", "Weakest class"),
           ("cost", "Cost"))
SORT_KEYS = tuple(key for key, _heading in COLUMNS)
PAGE_SIZE = 15


def _sort_value(job: JobDescription, key: str, cost: Callable[[JobDescription], float | None]):
    """A value of one type per column (missing numbers sort below every number)."""
    if key == "created":
        return job.created
    if key == "duration":
        return job.duration()
    if key == "map":
        value = job.final_metric("mAP50-95")
        return -math.inf if value is None else value
    if key == "weakest":
        weakest = job.weakest_class()
        return -math.inf if weakest is None else weakest[1]
    if key == "cost":
        value = cost(job)
        return -math.inf if value is None else value
    if key == "model":
        return job.model
    return str(getattr(job, key))


def row(job: JobDescription, cost: float | None) -> dict[str, str]:
    """The table's text for one job that cost ``cost`` dollars (None: not known)."""
    quality = job.final_metric("mAP50-95")
    weakest = job.weakest_class()
    return {
        "name": job.name,
        "dataset": job.dataset,
        "model": job.model or "-",
        "status": job.status,
        "created": datetime.fromtimestamp(job.created).strftime("%Y-%m-%d %H:%M") if job.created else "-",
        "duration": human_duration(job.duration()),
        "map": f"{quality:.3f}" if quality is not None else "-",
        "weakest": f"{weakest[0]} {weakest[1]:.3f}" if weakest else "-",
        "cost": "this machine" if job.instance_type == THIS_MACHINE else (f"${cost:,.2f}" if cost is not None else "-"),
    }


class JobTable(tl.HasTraits):
    """Finished jobs, filtered by ``query``, sorted by ``sort_by``, cut into pages; ``rows`` is the page shown."""

    jobs = tl.List(help="JobDescription of every finished job")
    query = tl.Unicode("", help="shows jobs whose name, dataset, model or status contains it (any case)")
    sort_by = tl.Enum(SORT_KEYS, default_value="created")
    descending = tl.Bool(True)
    page = tl.Int(0)
    page_size = tl.Int(PAGE_SIZE)
    page_count = tl.Int(1, read_only=True)
    matching = tl.Int(0, read_only=True, help="how many jobs pass the filter")
    rows = tl.List(read_only=True, help="the current page, as the table shows it")
    price_of = tl.Any(None, allow_none=True,
                      help="instance type -> Price in the backend's region (PricesInstances); None: the catalog's")

    def __init__(self, **kwargs):
        self._per_hour: dict[str, float] = {}  # asked once per instance type while price_of stays
        super().__init__(**kwargs)
        self.observe(self._first_page, ["query", "sort_by", "descending"])  # a new order starts at its top
        self.observe(self._refresh, ["jobs", "query", "sort_by", "descending", "page", "page_size", "price_of"])
        self._refresh()

    def cost(self, job: JobDescription) -> float | None:
        """What ``job`` cost at its region's price (None where not known)."""
        per_hour = None
        if self.price_of is not None and job.instance_type in CATALOG and job.billable_seconds is not None:
            if job.instance_type not in self._per_hour:
                self._per_hour[job.instance_type] = self.price_of(job.instance_type).per_hour
            per_hour = self._per_hour[job.instance_type]
        return job_cost(job.instance_type, job.instance_count, job.billable_seconds, per_hour)

    def add(self, job: JobDescription) -> None:
        """A job that ended while the page was open (or replaces the row of the same name)."""
        self.jobs = [j for j in self.jobs if j.name != job.name] + [job]

    def remove(self, name: str) -> None:
        self.jobs = [j for j in self.jobs if j.name != name]

    def names(self) -> list[str]:
        return [job.name for job in self.jobs]

    def _first_page(self, _change: dict) -> None:
        self.page = 0

    def _matching(self) -> list[JobDescription]:
        needle = self.query.strip().lower()
        if not needle:
            return list(self.jobs)
        return [job for job in self.jobs
                if any(needle in text.lower() for text in (job.name, job.dataset, job.model, job.status))]

    def _refresh(self, change: dict | None = None) -> None:
        if change is not None and change["name"] == "price_of":
            self._per_hour.clear()
        found = sorted(self._matching(), key=lambda job: (_sort_value(job, self.sort_by, self.cost), job.name),
                       reverse=self.descending)
        pages = max(1, math.ceil(len(found) / self.page_size))
        self.set_trait("matching", len(found))
        self.set_trait("page_count", pages)
        page = min(max(self.page, 0), pages - 1)
        if page != self.page:
            self.page = page  # observed: this runs again with the page in range
            return
        start = page * self.page_size
        self.set_trait("rows", [row(job, self.cost(job)) for job in found[start:start + self.page_size]])

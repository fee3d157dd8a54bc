"""The Tune tab's state, widget-free: the tuning request (ranges editor, objective, strategy, budget; the
static settings and the instance are the Train tab's parameter model), and one card per tuning job,
polled gently until it ends."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import traitlets as tl

from amc_widgets.backends.base import Backend, RunsJobsHere, TunesHyperparameters
from amc_widgets.core.errors import AmcError, user_message
from amc_widgets.core.hyperparameters import HYPERPARAMETERS, HyperparameterError, normalize_device
from amc_widgets.core.instances import THIS_MACHINE
from amc_widgets.core.text import human_duration
from amc_widgets.core.tuning import (
    STRATEGIES,
    ParameterRange,
    TuningChild,
    TuningJobDescription,
    TuningSpec,
    TuningSpecError,
    default_range,
    estimate_tuning_cost,
    objective_type_for,
    tunable_parameters,
    validate_tuning_spec,
)
from amc_widgets.core.weights import SCRATCH
from amc_widgets.ui.models.jobs import BACKOFF
from amc_widgets.ui.models.parameters import INSTANCE_ERROR_KEY, ParametersModel

# (fastest, slowest) seconds between describes of a running tuning job: a tuning job changes when a
# child ends (minutes), so it is polled more gently than a job card
LOCAL_TUNING_POLL_SECONDS = (2.0, 10.0)
REMOTE_TUNING_POLL_SECONDS = (15.0, 60.0)
ERROR_RETRY_SECONDS = 30.0
# where a tuned child's hyperparameters do not go when trained again: Start from is the Train tab's own
NOT_TRAINED_AGAIN = ("weights", "weights_source")


class TuningUnavailableError(AmcError):
    """The connected backend runs no tuning jobs."""


def _text(value) -> str:
    return "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))


def row_of(item: ParameterRange) -> dict[str, str]:
    """A range as the editor's row holds it: text the user can edit."""
    if item.values:
        return {"name": item.name, "values": ", ".join(item.values)}
    return {"name": item.name, "low": _text(item.low), "high": _text(item.high), "scaling": item.scaling}


def range_of(row: dict[str, str]) -> ParameterRange:
    """The row's range, unchecked (validate_tuning_spec names what is wrong with it)."""
    if "values" in row:
        return ParameterRange(row["name"], values=tuple(v.strip() for v in row["values"].split(",") if v.strip()))
    return ParameterRange(row["name"], low=row["low"].strip() or None, high=row["high"].strip() or None,
                          scaling=row["scaling"])


class TuneModel(tl.HasTraits):
    """A tuning request as the Tune tab holds it; its static hyperparameters and instance are ``params``'."""

    rows = tl.List(help="one dict per tuned parameter: name and low/high/scaling, or values (text)")
    objective = tl.Unicode("mAP50-95")
    strategy = tl.Enum(STRATEGIES, default_value="Bayesian")
    max_jobs = tl.Int(12, help="ignored with Grid, which trains every combination")
    max_parallel = tl.Int(3)
    early_stopping = tl.Bool(False)
    warm_start = tl.List(help="names of earlier tuning jobs to start from")
    errors = tl.Dict(help="field (a parameter's name, 'objective', 'max jobs', ...) -> what is wrong")

    def __init__(self, params: ParametersModel, **kwargs):
        super().__init__(**kwargs)
        self.params = params
        if not self.rows:
            self.rows = [row_of(default_range("lr0"))]

    # --- the ranges editor --------------------------------------------------------------------
    def names(self) -> list[str]:
        return [row["name"] for row in self.rows]

    def available(self) -> list[str]:
        """The parameters that can still be added, in the table's order."""
        return [name for name in tunable_parameters() if name not in self.names()]

    def add(self, name: str) -> None:
        """A row for ``name`` with the table's default range."""
        if name not in self.names():
            self.rows = [*self.rows, row_of(default_range(name))]

    def remove(self, name: str) -> None:
        self.rows = [row for row in self.rows if row["name"] != name]
        self.errors = {k: v for k, v in self.errors.items() if k != name}

    def set_field(self, name: str, key: str, text: str) -> None:
        """One cell of a row as typed (low, high, scaling or values); checked at Start."""
        self.rows = [{**row, key: text} if row["name"] == name else row for row in self.rows]

    def ranges(self) -> list[ParameterRange]:
        return [range_of(row) for row in self.rows]

    @property
    def direction(self) -> str:
        return objective_type_for(self.objective)

    # --- the request --------------------------------------------------------------------------
    def draft(self, dataset: str) -> TuningSpec:
        """The request as it stands, unchecked; the static settings are the Train tab's (HyperparameterError
        naming the Train tab's bad fields)."""
        params = self.params
        return TuningSpec(dataset=dataset, hyperparameters=params.parameters().to_sagemaker(), ranges=self.ranges(),
                          objective=self.objective, strategy=self.strategy,
                          max_jobs=None if self.strategy == "Grid" else self.max_jobs,
                          max_parallel=self.max_parallel, early_stopping=self.early_stopping,
                          instance_type=params.instance_type, instance_count=params.instance_count, spot=params.spot,
                          max_runtime_hours=params.max_hours, max_wait_hours=params.max_wait_hours(),
                          warm_start_from=tuple(self.warm_start))

    def request(self, dataset: str, start_from: str = SCRATCH) -> TuningSpec:
        """The checked request; :class:`TuningSpecError` naming every bad field (also kept in ``errors``).
        ``start_from`` is the Train tab's Start from: weights fit one model, so tuning the model needs scratch."""
        problems: dict[str, str] = {}
        spec = None
        try:
            spec = validate_tuning_spec(self.draft(dataset))
        except TuningSpecError as exc:
            problems.update(exc.problems)
        except HyperparameterError:  # the Train tab marks its own fields
            self.errors = {}
            raise
        except ValueError as exc:  # the Train tab's max wait hours
            field_name, _, text = str(exc).partition(": ")
            problems[field_name] = text
        instance = self.params.errors.get(INSTANCE_ERROR_KEY)
        if instance and not problems.keys() & {"max hours", "max wait hours"}:
            problems["instance"] = instance + " (set on the Train tab)"
        if not dataset:
            problems["dataset"] = "choose a stored dataset"
        if "model" in self.names() and start_from != SCRATCH:
            problems.setdefault("model", "weights fit one model: to tune the model, choose Start from: From scratch "
                                         "on the Train tab")
        self.errors = problems
        if problems:
            raise TuningSpecError(problems)
        return spec

    def cost_text(self) -> str:
        """The most the whole tuning job costs (max jobs x max hours x the region's price), or why not."""
        params = self.params
        try:
            spec = self.draft("")
            jobs = spec.total_jobs()
        except (ValueError, AmcError):
            return ""
        if jobs < 1:
            return ""
        at_once = f"{jobs} training job{'s' if jobs != 1 else ''}, {min(spec.max_parallel, jobs)} at a time"
        if params.instance_type == THIS_MACHINE:
            return f"Runs on this machine: no cost. {at_once}, in the local job queue."
        price = params.price_of(params.instance_type) if params.price_of else None
        try:
            estimate = estimate_tuning_cost(spec, price)
        except ValueError:
            return ""
        return f"Cost estimate of the whole tuning job ({at_once}, each up to {spec.max_runtime_hours:g} h): " \
               + estimate.describe()


def fill_parameters(params: ParametersModel, hyperparameters: dict[str, str]) -> list[str]:
    """Put SageMaker-form ``hyperparameters`` into the Train tab's model (Start from stays the Train tab's);
    returns the keys changed (one already at its value is left alone: an automatic batch stays automatic)."""
    done = []
    with params.hold_trait_notifications():
        for key, text in hyperparameters.items():
            spec = HYPERPARAMETERS.get(key)
            if spec is None or key in NOT_TRAINED_AGAIN:
                continue
            value = spec.decode(text)
            value = normalize_device(value) if key == "device" else value
            if params.raw.get(key) != value or key in params.errors:
                params.set_value(key, value)
                done.append(key)
    return done


@dataclass
class TuningCard:
    """One tuning job as its card shows it; updated only by :meth:`poll`."""

    name: str
    description: TuningJobDescription
    poll_seconds: tuple[float, float] = LOCAL_TUNING_POLL_SECONDS
    wall_clock: Callable[[], float] = time.time
    next_poll: float = 0.0
    interval: float = 0.0
    error: str = ""

    @property
    def settled(self) -> bool:
        """Ended: never described again."""
        return self.description.is_terminal

    def poll(self, backend: TunesHyperparameters, now: float) -> bool:
        """Describe the tuning job; True when something but the clock changed. Polls come faster after a
        change and slow down while nothing moves."""
        try:
            description = backend.describe_tuning_job(self.name)
        except Exception as exc:  # noqa: BLE001 - shown on the card; the poller goes on
            self.error = "Could not refresh: " + user_message(exc)
            self.next_poll = now + ERROR_RETRY_SECONDS
            return True
        changed = description != self.description or bool(self.error)
        self.description, self.error = description, ""
        fastest, slowest = self.poll_seconds
        self.interval = fastest if changed or not self.interval else min(slowest, self.interval * BACKOFF)
        self.next_poll = now + self.interval
        return changed

    # --- what the card shows ------------------------------------------------------------------
    def header(self) -> dict[str, str]:
        job = self.description
        best = job.best
        instance = ("this machine" if job.instance_type == THIS_MACHINE
                    else f"{job.instance_count} x {job.instance_type}")
        return {
            "Dataset": job.dataset,
            "Strategy": job.strategy + (", early stopping" if job.early_stopping else ""),
            "Objective": f"{job.objective_type} {job.objective}",
            "Best": f"{best.objective:.4f} ({best.name})" if best else "-",
            "Jobs": f"{len(job.children)} of {job.max_jobs}, {job.max_parallel} at a time",
            "Instance": instance,
            "Duration": human_duration(job.duration(self.wall_clock())),
        }

    def counters(self) -> tuple[dict[str, int], dict[str, int]]:
        """SageMaker's training job counters (Completed, InProgress, Stopped, Failed) and objective counters."""
        training = self.description.status_counters()
        shown = {"Completed": training["Completed"], "InProgress": training["InProgress"],
                 "Stopped": training["Stopped"], "Failed": training["RetryableError"] + training["NonRetryableError"]}
        return shown, self.description.objective_counters()

    def scored(self) -> list[TuningChild]:
        """The children with a final objective, in the order they ended."""
        children = [c for c in self.description.children
                    if c.objective is not None and c.objective_status == "Succeeded"]
        return sorted(children, key=lambda c: (c.ended if c.ended is not None else c.created, c.name))

    def objective_over_time(self) -> dict[str, list]:
        """Each scored child's objective at the minutes it ended (since the tuning job started), and the best
        so far at each."""
        start = self.description.created
        pick = max if self.description.objective_type == "Maximize" else min
        minutes, values, best, names = [], [], [], []
        for child in self.scored():
            minutes.append(round(((child.ended or child.created) - start) / 60, 2))
            values.append(child.objective)
            best.append(child.objective if not best else pick(best[-1], child.objective))
            names.append(child.name)
        return {"minutes": minutes, "objective": values, "best": best, "names": names}

    def parallel_dimensions(self) -> list[dict]:
        """One axis per tuned parameter, then the objective, over the scored children (plotly Parcoords
        dimensions: a choice as ticks, a logarithmic range on a log10 axis labelled with its values)."""
        children = self.scored()
        dimensions = []
        for item in self.description.ranges:
            raw = [child.tuned.get(item.name, "") for child in children]
            if item.values:
                order = list(item.values) + sorted({v for v in raw if v not in item.values})
                dimensions.append({"label": item.name, "values": [order.index(v) for v in raw],
                                   "tickvals": list(range(len(order))), "ticktext": order,
                                   "range": [0, max(len(order) - 1, 1)]})
                continue
            numbers = [float(v) if v not in ("", None) else math.nan for v in raw]
            low, high = float(item.low), float(item.high)
            if item.scaling == "Logarithmic" and low > 0:
                ticks = [10 ** e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)]
                dimensions.append({"label": f"{item.name} (log)", "values": [math.log10(v) for v in numbers],
                                   "range": [math.log10(low), math.log10(high)],
                                   "tickvals": [math.log10(t) for t in ticks], "ticktext": [f"{t:g}" for t in ticks]})
            else:
                dimensions.append({"label": item.name, "values": numbers, "range": [low, high]})
        dimensions.append({"label": self.description.objective, "values": [c.objective for c in children]})
        return dimensions

    def children_rows(self) -> list[dict[str, str]]:
        """The children's table, best first: rank, job, objective, each tuned value, status and reason."""
        best = self.description.best
        tuned = [r.name for r in self.description.ranges]
        rows = []
        for rank, child in enumerate(self.description.children_by_objective(), start=1):
            row = {"best": "★" if best is not None and child.name == best.name else "", "rank": str(rank),
                   "name": child.name, "objective": f"{child.objective:.4f}" if child.objective is not None else "-",
                   "status": child.status, "reason": child.status_reason,
                   "duration": human_duration((child.ended or self.wall_clock()) - child.created)}
            row.update({f"p:{name}": child.tuned.get(name, "") for name in tuned})
            rows.append(row)
        return rows

    def columns(self) -> list[tuple[str, str]]:
        """(key, heading) of the children's table."""
        tuned = [(f"p:{r.name}", r.name) for r in self.description.ranges]
        return [("best", ""), ("rank", "#"), ("name", "Training job"), ("objective", self.description.objective),
                *tuned, ("status", "Status"), ("reason", "Reason"), ("duration", "Duration")]

    def best_hyperparameters(self) -> dict[str, str] | None:
        """The best child's hyperparameters (the static ones with its tuned values), None before one is scored."""
        best = self.description.best
        if best is None:
            return None
        return {**self.description.static_hyperparameters, **best.tuned}


class TuningBoard:
    """Every tuning card on the page, newest first; thread-safe for the one poller and the UI thread.
    It shares the job board's ``wakeup`` so the one poller wakes for either."""

    def __init__(self, backend: Callable[[], Backend], wakeup: threading.Event,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 poll_seconds: tuple[float, float] | None = None):
        self._backend = backend
        self.wakeup = wakeup
        self.clock = clock
        self.wall_clock = wall_clock
        self._poll_seconds = poll_seconds
        self._cards: dict[str, TuningCard] = {}
        self._lock = threading.Lock()

    def tuner(self) -> TunesHyperparameters:
        backend = self._backend()
        if not isinstance(backend, TunesHyperparameters):
            raise TuningUnavailableError(f"The {getattr(backend, 'name', 'connected')} backend runs no tuning jobs")
        return backend

    @property
    def poll_seconds(self) -> tuple[float, float]:
        if self._poll_seconds is not None:
            return self._poll_seconds
        return LOCAL_TUNING_POLL_SECONDS if isinstance(self._backend(), RunsJobsHere) else REMOTE_TUNING_POLL_SECONDS

    def cards(self) -> list[TuningCard]:
        with self._lock:
            return sorted(self._cards.values(), key=lambda c: c.description.created, reverse=True)

    def card(self, name: str) -> TuningCard:
        with self._lock:
            return self._cards[name]

    def _add(self, description: TuningJobDescription) -> TuningCard:
        card = TuningCard(description.name, description, poll_seconds=self.poll_seconds, wall_clock=self.wall_clock)
        # polled after its first interval: the description is fresh
        card.interval, card.next_poll = card.poll_seconds[0], self.clock() + card.poll_seconds[0]
        with self._lock:
            self._cards[card.name] = card
        self.wakeup.set()
        return card

    def start(self, spec: TuningSpec) -> TuningCard:
        return self._add(self.tuner().start_tuning_job(spec))

    def restore(self) -> list[TuningCard]:
        """Cards for the tuning jobs not on the page yet (one listing; finished ones are not polled), oldest first."""
        with self._lock:
            known = set(self._cards)
        return [self._add(job) for job in reversed(self.tuner().list_tuning_jobs()) if job.name not in known]

    def stop(self, name: str) -> TuningCard:
        card = self.card(name)
        card.description = self.tuner().stop_tuning_job(name)
        card.next_poll, card.interval = 0.0, 0.0
        self.wakeup.set()
        return card

    def names(self) -> list[str]:
        with self._lock:
            return list(self._cards)

    def clear(self) -> None:
        with self._lock:
            self._cards.clear()

    def due(self, now: float) -> list[TuningCard]:
        return [card for card in self.cards() if not card.settled and card.next_poll <= now]

    def seconds_to_next_poll(self, now: float) -> float | None:
        pending = [card.next_poll for card in self.cards() if not card.settled]
        return max(0.0, min(pending) - now) if pending else None

    def poll_due(self) -> list[tuple[TuningCard, bool]]:
        """Describe every running tuning job that is due; (card, changed) for each (its duration moves)."""
        due = self.due(self.clock())
        if not due:
            return []
        backend = self.tuner()
        return [(card, card.poll(backend, self.clock())) for card in due]


"""Hyperparameter tuning jobs as both backends describe them, in SageMaker's own words.

A tuning job trains up to ``max_jobs`` ordinary training jobs (its *children*), ``max_parallel`` at a
time, each with the static hyperparameters plus values the strategy picks from the ranges, and keeps
the child with the best objective (a metric of the metrics line).  SageMaker's tuner runs it on AWS;
Optuna runs it on this machine.  Ranges, limits, statuses and counters are SageMaker's, so the CLI and
the dashboard show both the same way.  What can be tuned, and the default ranges, come from the one
hyperparameter table (:data:`~amc_widgets.core.hyperparameters.TUNING_DEFAULTS`).
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from amc_widgets.core.errors import AmcError
from amc_widgets.core.hyperparameters import HYPERPARAMETERS, TUNING_DEFAULTS
from amc_widgets.core.instances import CostEstimate, estimate_cost
from amc_widgets.core.jobs import COMPLETED, FAILED, IN_PROGRESS, STOPPED, JobSpec, stopping_condition
from amc_widgets.core.metrics import LOSS_NAMES, METRIC_NAMES

# HyperParameterTuningJobStatus (the same words as a training job's)
TUNING_STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped")
TUNING_TERMINAL = frozenset({"Completed", "Failed", "Stopped"})
STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
SCALINGS = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
OBJECTIVE_TYPES = ("Maximize", "Minimize")
# a metric of the metrics line that can be an objective (not the epoch counters or the schedule)
OBJECTIVE_METRICS = tuple(n for n in METRIC_NAMES if n not in ("epoch", "epochs", "lr", "epoch_seconds"))

# AWS's documented limits (CreateHyperParameterTuningJob, "Define hyperparameter ranges", quotas)
TUNING_NAME_MAX = 32
TUNING_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
MAX_TUNED_PARAMETERS = 30
MAX_CATEGORICAL_VALUES = 30
MAX_TRAINING_JOBS = 500  # default quota "training jobs per tuning job"
MAX_PARALLEL_JOBS = 100  # the account quota (often lower) is checked by the SageMaker backend
MAX_WARM_START_PARENTS = 5

# why a child stopped early, in SageMaker's words (the status stays Stopped; its model is kept)
EARLY_STOPPED_REASON = "Stopped by the tuning job's early stopping"


class TuningSpecError(AmcError, ValueError):
    """A tuning request that cannot run; ``problems`` maps a field to what is wrong with it."""

    def __init__(self, problems: Mapping[str, str]):
        self.problems = dict(problems)
        super().__init__("Invalid tuning job:\n" + "\n".join(f"{k}: {v}" for k, v in self.problems.items()))


@dataclass(frozen=True)
class ParameterRange:
    """One hyperparameter the tuner searches: ``low``..``high`` with a scaling, or a list of ``values``."""

    name: str
    low: float | None = None
    high: float | None = None
    scaling: str = "Auto"
    values: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """SageMaker's range type: Categorical, Integer or Continuous."""
        if self.values:
            return "Categorical"
        return "Integer" if HYPERPARAMETERS[self.name].kind == "int" else "Continuous"

    def describe(self) -> str:
        """``lr0=0.0001:0.1:log`` / ``optimizer=SGD,AdamW``: the CLI form, which :func:`parse_range` reads."""
        if self.values:
            return f"{self.name}={','.join(self.values)}"
        suffix = {"Logarithmic": ":log", "ReverseLogarithmic": ":reverselog", "Linear": ":linear"}.get(self.scaling, "")
        return f"{self.name}={_number(self.low)}:{_number(self.high)}{suffix}"

    def size(self) -> int | None:
        """How many distinct values the range holds (None: a continuum)."""
        if self.values:
            return len(self.values)
        if self.kind == "Integer":
            return int(self.high) - int(self.low) + 1
        return None


def _number(value: float | None) -> str:
    return "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))


_SCALING_WORDS = {"": "Auto", "auto": "Auto", "lin": "Linear", "linear": "Linear", "log": "Logarithmic",
                  "logarithmic": "Logarithmic", "reverselog": "ReverseLogarithmic",
                  "reverselogarithmic": "ReverseLogarithmic"}


def tunable_parameters() -> tuple[str, ...]:
    """The hyperparameters a tuning job may search, in the table's order."""
    return tuple(name for name in HYPERPARAMETERS if name in TUNING_DEFAULTS)


def default_range(name: str) -> ParameterRange:
    """The table's sensible range for ``name``; ValueError for a parameter that cannot be tuned."""
    if name not in TUNING_DEFAULTS:
        raise ValueError(_not_tunable(name))
    default = TUNING_DEFAULTS[name]
    if HYPERPARAMETERS[name].kind in ("int", "float") and not isinstance(default[0], str):
        low, high, scaling = default
        return ParameterRange(name, low=low, high=high, scaling=scaling)
    return ParameterRange(name, values=tuple(default))


def _not_tunable(name: str) -> str:
    if name in HYPERPARAMETERS:
        return f"cannot be tuned (tunable: {', '.join(tunable_parameters())})"
    return "unknown parameter"


def parse_range(text: str) -> ParameterRange:
    """``lr0=1e-4:1e-1:log``, ``mosaic=0:1``, ``optimizer=SGD,AdamW`` or just ``lr0`` (the table's range)
    -> a checked :class:`ParameterRange`; :class:`TuningSpecError` naming the parameter otherwise."""
    name, _, body = text.strip().partition("=")
    name = name.strip()
    try:
        if not body.strip():
            return check_range(default_range(name))
        if ":" in body:
            parts = [p.strip() for p in body.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError(f"write low:high or low:high:log (got {body!r})")
            scaling = _SCALING_WORDS.get(parts[2].lower() if len(parts) == 3 else "")
            if scaling is None:
                raise ValueError(f"scaling must be linear, log or reverselog (got {parts[2]!r})")
            spec = HYPERPARAMETERS.get(name)
            if spec is None or name not in TUNING_DEFAULTS:
                raise ValueError(_not_tunable(name))
            low, high = (spec.decode(p) if spec.kind in ("int", "float") else p for p in parts[:2])
            return check_range(ParameterRange(name, low=low, high=high, scaling=scaling))
        values = tuple(v.strip() for v in body.split(",") if v.strip())
        return check_range(ParameterRange(name, values=values))
    except TuningSpecError:
        raise
    except ValueError as exc:
        raise TuningSpecError({name or text: str(exc)}) from None


def check_range(item: ParameterRange) -> ParameterRange:
    """``item`` with its values in the table's spelling, if it fits the parameter's allowed values;
    :class:`TuningSpecError` naming the parameter otherwise."""
    name = item.name
    spec = HYPERPARAMETERS.get(name)
    try:
        if spec is None or name not in TUNING_DEFAULTS:
            raise ValueError(_not_tunable(name))
        if item.values:
            if len(item.values) > MAX_CATEGORICAL_VALUES:
                raise ValueError(f"at most {MAX_CATEGORICAL_VALUES} values (got {len(item.values)})")
            decoded = [spec.decode(v) for v in item.values]
            values = tuple(dict.fromkeys(_encode(v) for v in decoded))
            return ParameterRange(name, values=values)
        if spec.kind not in ("int", "float"):
            raise ValueError(f"list the values to try, e.g. {name}={','.join(TUNING_DEFAULTS[name])}")
        if spec.multiple_of:
            raise ValueError(f"list the sizes to try (each a multiple of {spec.multiple_of}), "
                             f"e.g. {name}={','.join(TUNING_DEFAULTS[name])}")
        if item.low is None or item.high is None:
            raise ValueError("the range needs a low and a high value")
        low, high = spec.decode(item.low), spec.decode(item.high)
        if not low < high:
            raise ValueError(f"the range is empty: low ({_number(low)}) must be below high ({_number(high)})")
        if item.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {', '.join(SCALINGS)} (got {item.scaling!r})")
        if item.scaling == "Logarithmic" and low <= 0:
            raise ValueError("a logarithmic range must be above 0")
        if item.scaling == "ReverseLogarithmic" and (spec.kind == "int" or not 0 <= low and high < 1):
            raise ValueError("a reverse-logarithmic range must be continuous, from 0 to below 1")
        return ParameterRange(name, low=low, high=high, scaling=item.scaling)
    except ValueError as exc:
        raise TuningSpecError({name: str(exc)}) from None


def _encode(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def objective_type_for(metric: str) -> str:
    """Losses are minimised, every other metric maximised."""
    return "Minimize" if metric in LOSS_NAMES else "Maximize"


@dataclass
class TuningSpec:
    """What the user asks of a tuning job; the training settings mean what they mean in a JobSpec."""

    dataset: str
    hyperparameters: dict[str, str]  # the static ones, SageMaker form
    ranges: list[ParameterRange]
    objective: str = "mAP50-95"
    objective_type: str | None = None  # None: by the metric (losses minimised)
    strategy: str = "Bayesian"
    max_jobs: int | None = 12  # None with Grid: every combination
    max_parallel: int = 3
    early_stopping: bool = False  # SageMaker's TrainingJobEarlyStoppingType AUTO; Optuna's pruner here
    instance_type: str = "local"
    instance_count: int = 1
    spot: bool = False
    max_runtime_hours: float = 48.0  # per training job
    max_wait_hours: float | None = None
    warm_start_from: tuple[str, ...] = ()  # earlier tuning jobs of the same user
    name: str | None = None
    seed: int | None = None

    @property
    def direction(self) -> str:
        return self.objective_type or objective_type_for(self.objective)

    def grid_size(self) -> int:
        """The number of combinations of the categorical ranges (what Grid trains)."""
        return math.prod(len(r.values) for r in self.ranges)

    def total_jobs(self) -> int:
        """How many training jobs the tuning job launches at most."""
        if self.strategy == "Grid":
            return self.grid_size()
        return int(self.max_jobs or 0)

    def training_spec(self, tuned: Mapping[str, str] | None = None, name: str | None = None) -> JobSpec:
        """The JobSpec of one child: static hyperparameters with ``tuned`` over them."""
        return JobSpec(dataset=self.dataset, hyperparameters={**self.hyperparameters, **(tuned or {})},
                       instance_type=self.instance_type, instance_count=self.instance_count, spot=self.spot,
                       max_runtime_hours=self.max_runtime_hours, name=name, max_wait_hours=self.max_wait_hours)


def validate_tuning_spec(spec: TuningSpec) -> TuningSpec:
    """``spec`` if it can run, with its ranges in the table's spelling; otherwise one
    :class:`TuningSpecError` naming every bad field, before anything starts."""
    problems: dict[str, str] = {}
    ranges: list[ParameterRange] = []
    for item in spec.ranges:
        try:
            ranges.append(check_range(item))
        except TuningSpecError as exc:
            problems.update(exc.problems)
    if not spec.ranges:
        problems["ranges"] = "name at least one hyperparameter to tune"
    names = [r.name for r in spec.ranges]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        problems["ranges"] = f"each parameter once (repeated: {', '.join(duplicates)})"
    if len(spec.ranges) > MAX_TUNED_PARAMETERS:
        problems["ranges"] = f"at most {MAX_TUNED_PARAMETERS} parameters (got {len(spec.ranges)})"
    if spec.objective not in OBJECTIVE_METRICS:
        problems["objective"] = (f"the container does not emit {spec.objective!r}; "
                                 f"use one of {', '.join(OBJECTIVE_METRICS)}")
    if spec.objective_type is not None and spec.objective_type not in OBJECTIVE_TYPES:
        problems["objective type"] = f"must be Maximize or Minimize (got {spec.objective_type!r})"
    if spec.strategy not in STRATEGIES:
        problems["strategy"] = f"must be one of {', '.join(STRATEGIES)} (got {spec.strategy!r})"
    elif spec.strategy == "Grid":
        numeric = [r.name for r in ranges if not r.values]
        if numeric:
            problems["strategy"] = f"Grid searches lists of values only (ranges: {', '.join(numeric)})"
        elif spec.max_jobs not in (None, spec.grid_size()):
            problems["max jobs"] = f"Grid trains every combination: leave it empty or {spec.grid_size()}"
    elif spec.strategy == "Hyperband" and spec.early_stopping:
        problems["early stopping"] = "Hyperband stops jobs early on its own: turn early stopping off"
    total = spec.grid_size() if spec.strategy == "Grid" and not problems.get("strategy") else spec.max_jobs
    if spec.strategy != "Grid" and spec.max_jobs is None:
        problems["max jobs"] = "say how many training jobs to run at most"
    elif total is not None and not 1 <= total <= MAX_TRAINING_JOBS:
        problems["max jobs"] = f"must be from 1 to {MAX_TRAINING_JOBS} (got {total})"
    if not 1 <= spec.max_parallel <= MAX_PARALLEL_JOBS:
        problems["parallel jobs"] = f"must be from 1 to {MAX_PARALLEL_JOBS} (got {spec.max_parallel})"
    elif total is not None and spec.max_parallel > total:
        problems["parallel jobs"] = f"cannot be more than max jobs ({total}) (got {spec.max_parallel})"
    if len(spec.warm_start_from) > MAX_WARM_START_PARENTS:
        problems["warm start"] = f"at most {MAX_WARM_START_PARENTS} earlier tuning jobs"
    for parent in spec.warm_start_from:
        if not TUNING_NAME_PATTERN.match(parent) or len(parent) > TUNING_NAME_MAX:
            problems["warm start"] = f"{parent!r} is not a tuning job name"
    if spec.name is not None:
        try:
            check_tuning_name(spec.name)
        except ValueError as exc:
            problems["name"] = str(exc)
    try:
        stopping_condition(spec.training_spec())
    except ValueError as exc:
        field_name, _, message = str(exc).partition(": ")
        problems[field_name] = message
    if problems:
        raise TuningSpecError(problems)
    tuned = {r.name for r in ranges}
    static = {k: v for k, v in spec.hyperparameters.items() if k not in tuned}
    return TuningSpec(**{**spec.__dict__, "ranges": ranges, "hyperparameters": static})


def make_tuning_name(dataset: str, clock: Callable[[], float] = time.time) -> str:
    """A valid, unique tuning job name within SageMaker's 32 characters: ``tune-<dataset>-<time>-<random>``."""
    stamp = datetime.fromtimestamp(clock(), timezone.utc).strftime("%m%d%H%M")
    suffix = f"{stamp}-{secrets.token_hex(2)}"
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", dataset).strip("-").lower()
    head = "-".join(p for p in ("tune", slug[: TUNING_NAME_MAX - len(suffix) - 6].strip("-")) if p)
    name = f"{head}-{suffix}"
    assert TUNING_NAME_PATTERN.match(name), name
    return name


def check_tuning_name(name: str) -> str:
    """``name`` if SageMaker accepts it as a tuning job name, else ValueError saying why."""
    # the pattern does not count hyphens: SageMaker checks the length as well
    if not TUNING_NAME_PATTERN.match(name) or len(name) > TUNING_NAME_MAX:
        raise ValueError(f"'{name}' is not a valid tuning job name: use 1-{TUNING_NAME_MAX} letters, digits "
                         "and hyphens, starting and ending with a letter or digit")
    return name


def sagemaker_parameter_ranges(ranges: Iterable[ParameterRange]) -> dict[str, list[dict]]:
    """``HyperParameterTuningJobConfig.ParameterRanges`` for ``ranges``."""
    result: dict[str, list[dict]] = {"IntegerParameterRanges": [], "ContinuousParameterRanges": [],
                                     "CategoricalParameterRanges": []}
    for item in ranges:
        if item.values:
            result["CategoricalParameterRanges"].append({"Name": item.name, "Values": list(item.values)})
        else:
            key = "IntegerParameterRanges" if item.kind == "Integer" else "ContinuousParameterRanges"
            result[key].append({"Name": item.name, "MinValue": _number(item.low), "MaxValue": _number(item.high),
                                "ScalingType": item.scaling})
    return result


def ranges_from_sagemaker(parameter_ranges: Mapping[str, list[dict]]) -> list[ParameterRange]:
    """The inverse of :func:`sagemaker_parameter_ranges` (for a DescribeHyperParameterTuningJob answer)."""
    ranges = []
    for key in ("IntegerParameterRanges", "ContinuousParameterRanges"):
        for item in parameter_ranges.get(key, []):
            spec = HYPERPARAMETERS.get(item["Name"])
            decode = spec.decode if spec else float
            ranges.append(ParameterRange(item["Name"], low=decode(item["MinValue"]), high=decode(item["MaxValue"]),
                                         scaling=item.get("ScalingType", "Auto")))
    for item in parameter_ranges.get("CategoricalParameterRanges", []):
        ranges.append(ParameterRange(item["Name"], values=tuple(item["Values"])))
    return ranges


@dataclass
class TuningChild:
    """One training job of a tuning job, as ListTrainingJobsForHyperParameterTuningJob gives it."""

    name: str
    status: str  # TrainingJobStatus
    tuned: dict[str, str]  # the values the tuner picked, SageMaker form
    created: float
    ended: float | None = None
    objective: float | None = None  # FinalHyperParameterTuningJobObjectiveMetric
    objective_status: str = "Pending"  # Succeeded | Pending | Failed
    failure_reason: str = ""
    early_stopped: bool = False  # stopped by early stopping or pruning: its model is kept

    @property
    def status_reason(self) -> str:
        """What the children's table says beside the status."""
        if self.early_stopped:
            return EARLY_STOPPED_REASON
        return self.failure_reason


@dataclass
class TuningJobDescription:
    """A tuning job's state, as DescribeHyperParameterTuningJob (plus its children's list) would give it."""

    name: str
    status: str
    dataset: str
    strategy: str
    objective: str
    objective_type: str
    max_jobs: int
    max_parallel: int
    created: float
    ranges: list[ParameterRange]
    static_hyperparameters: dict[str, str]
    instance_type: str
    instance_count: int = 1
    early_stopping: bool = False
    ended: float | None = None
    failure_reason: str = ""
    children: list[TuningChild] = field(default_factory=list)
    warm_start_from: tuple[str, ...] = ()

    @property
    def is_terminal(self) -> bool:
        return self.status in TUNING_TERMINAL

    def status_counters(self) -> dict[str, int]:
        """SageMaker's TrainingJobStatusCounters (failures all counted as NonRetryableError)."""
        counts = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
        for child in self.children:
            key = {COMPLETED: "Completed", STOPPED: "Stopped", FAILED: "NonRetryableError"}.get(child.status,
                                                                                               "InProgress")
            counts[key] += 1
        return counts

    def objective_counters(self) -> dict[str, int]:
        """SageMaker's ObjectiveStatusCounters."""
        counts = {"Succeeded": 0, "Pending": 0, "Failed": 0}
        for child in self.children:
            counts[child.objective_status if child.objective_status in counts else "Pending"] += 1
        return counts

    @property
    def best(self) -> TuningChild | None:
        """The child with the best objective (SageMaker's BestTrainingJob); None before one has it."""
        scored = [c for c in self.children if c.objective is not None and c.objective_status == "Succeeded"]
        if not scored:
            return None
        pick = max if self.objective_type == "Maximize" else min
        return pick(scored, key=lambda c: c.objective)

    def children_by_objective(self) -> list[TuningChild]:
        """Children best first; those without an objective last, newest first among them."""
        sign = -1 if self.objective_type == "Maximize" else 1
        scored = sorted((c for c in self.children if c.objective is not None), key=lambda c: sign * c.objective)
        rest = sorted((c for c in self.children if c.objective is None), key=lambda c: -c.created)
        return scored + rest

    def duration(self, now: float | None = None) -> float:
        end = self.ended if self.ended is not None else (time.time() if now is None else now)
        return max(0.0, end - self.created)

    @property
    def running(self) -> int:
        return sum(1 for c in self.children if c.status == IN_PROGRESS)


def estimate_tuning_cost(spec: TuningSpec, price=None) -> CostEstimate:
    """The most a tuning job costs: every child running its max hours (max jobs x max runtime x price)."""
    return estimate_cost(spec.instance_type, spec.instance_count, spec.total_jobs() * spec.max_runtime_hours,
                         spot=spec.spot, price=price)

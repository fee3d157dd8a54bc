"""Plays SageMaker's hyperparameter tuner on top of the training-job emulator (tests/sagemaker_harness.py).

moto records a CreateHyperParameterTuningJob (kept here for its ARN and tags) and calls it Completed at
once with a made-up best job, and has no ListTrainingJobsForHyperParameterTuningJob,
StopHyperParameterTuningJob or Search over tuning jobs.  :class:`TunerEmulator` answers these
requests itself (botocore before-call hooks on the backend's client), strict where AWS is:

- every request is checked against the botocore service model (:func:`check_shape`: required members,
  types, enums, string lengths and patterns, number and list ranges), and CreateHyperParameterTuningJob
  against AWS's documented rules (:meth:`TunerEmulator.check_create_request`): at most 30 ranges, each
  name once and never also static, Min <= Max, logarithmic ranges above 0, reverse-logarithmic in
  [0, 1); Grid with categorical ranges only and MaxNumberOfTrainingJobs absent or the number of
  combinations, every other strategy with it (at most 500); parallel <= max jobs; Hyperband with early
  stopping Off and a MaxResource (given or the static ``epochs``); the objective among the
  MetricDefinitions; warm-start parents that exist and have ended; a unique name.  The training-job
  definition is checked as CreateTrainingJob checks a job (role, image, limits: the emulator's check).
- children run as training jobs in moto through the emulator (the test container), named as SageMaker
  names them (``<tuning>-<3 digits>-<8 hex>``), tagged with the tuning job's tags, their
  ``TuningJobArn`` set; at most MaxParallelTrainingJobs at once.
- strategy: Grid trains every combination of the categorical ranges, in order; the others (Bayesian,
  Random, Hyperband) draw values at random over the ranges, seeded by RandomSeed or the name.  The
  harness plays the tuner's bookkeeping, not its search (Hyperband's brackets are not played).
- objective: a child's last value of the objective metric, from its log lines by the MetricDefinitions
  as sent (the emulator's final metrics); ObjectiveStatus Succeeded once a stopped or completed child has it.
- early stopping (Auto), the rule AWS documents: after each epoch of a running child, if the running
  average of its objective is worse than the median of the running averages of the children that
  finished, up to the same epoch, the child is stopped (Stopped, objective kept).
- StopHyperParameterTuningJob: Stopping, every running child stopped, then Stopped; nothing new starts.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import secrets
import statistics
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import botocore.session
from botocore.exceptions import ClientError
from moto.sagemaker.models import sagemaker_backends

from tests.sagemaker_harness import ACCOUNT, REGION, _matches, _now, _visible, ok_response

SERVICE_MODEL = botocore.session.get_session().get_service_model("sagemaker")
RANGE_KINDS = ("IntegerParameterRanges", "ContinuousParameterRanges", "CategoricalParameterRanges")
MAX_RANGES, MAX_JOBS, MAX_PARENTS = 30, 500, 5  # AWS's documented limits (and the default quota)
HYPERBAND_RESOURCE_KEYS = ("epochs", "numepochs", "n-epochs", "n_epochs", "num_epochs")
TUNING_SEARCH_PROPERTIES = set(SERVICE_MODEL.shape_for("HyperParameterTuningJobSearchEntity").members)
RUNNING = ("InProgress", "Stopping")


def sagemaker_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}},
                       operation)


def _camel(path: str) -> str:
    return ".".join(part[:1].lower() + part[1:] for part in path.split(".") if part)


def check_shape(shape, value: Any, path: str = "") -> list[str]:
    """What the service model refuses in ``value`` (a request as sent, JSON), in SageMaker's words."""
    problems: list[str] = []
    meta, where = shape.metadata, _camel(path)

    def refuse(constraint: str) -> None:
        shown = value if not isinstance(value, (dict, list)) else "..."
        problems.append(f"Value '{shown}' at '{where}' failed to satisfy constraint: {constraint}")

    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"Value at '{where}' must be a structure"]
        for name in shape.required_members:
            if name not in value:
                problems.append(f"Value null at '{_camel(f'{path}.{name}')}' failed to satisfy constraint: "
                                "Member must not be null")
        for name, item in value.items():
            if name not in shape.members:
                problems.append(f"Unknown member '{name}' at '{where}'")
            else:
                problems += check_shape(shape.members[name], item, f"{path}.{name}")
    elif kind in ("list", "map"):
        if not isinstance(value, (list if kind == "list" else dict)):
            return [f"Value at '{where}' must be a {kind}"]
        if "min" in meta and len(value) < meta["min"]:
            refuse(f"Member must have length greater than or equal to {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            refuse(f"Member must have length less than or equal to {meta['max']}")
        if kind == "list":
            for index, item in enumerate(value):
                problems += check_shape(shape.member, item, f"{path}.{index + 1}")
        else:
            for key, item in value.items():
                problems += check_shape(shape.key, key, f"{path}.{key}")
                problems += check_shape(shape.value, item, f"{path}.{key}")
    elif kind == "string":
        if not isinstance(value, str):
            return [f"Value at '{where}' must be a string"]
        if "min" in meta and len(value) < meta["min"]:
            refuse(f"Member must have length greater than or equal to {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            refuse(f"Member must have length less than or equal to {meta['max']}")
        if shape.enum and value not in shape.enum:
            refuse(f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        pattern = meta.get("pattern")
        if pattern:
            try:
                compiled = re.compile(pattern)
            except re.error:  # a Java-only construct: AWS checks it, this harness cannot
                compiled = None
            if compiled is not None and not compiled.fullmatch(value):
                refuse(f"Member must satisfy regular expression pattern: {pattern}")
    elif kind in ("integer", "long", "float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                kind in ("integer", "long") and not isinstance(value, int)):
            return [f"Value at '{where}' must be a number ({kind})"]
        if "min" in meta and value < meta["min"]:
            refuse(f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            refuse(f"Member must have value less than or equal to {meta['max']}")
    elif kind == "boolean" and not isinstance(value, bool):
        problems.append(f"Value at '{where}' must be a boolean")
    return problems


def check_request(operation: str, body: dict) -> None:
    """Refuse ``body`` as SageMaker does when it breaks the service model (ValidationException)."""
    problems = check_shape(SERVICE_MODEL.operation_model(operation).input_shape, body)
    if problems:
        raise sagemaker_error("ValidationException", f"{len(problems)} validation error"
                              f"{'s' if len(problems) > 1 else ''} detected: " + "; ".join(problems), operation)


@dataclass
class TuningRun:
    """One tuning job as this emulator keeps it."""

    body: dict
    arn: str
    created: datetime
    status: str = "InProgress"
    modified: datetime | None = None
    ended: datetime | None = None
    children: list[str] = field(default_factory=list)
    tuned: dict[str, dict[str, str]] = field(default_factory=dict)  # child -> the values picked for it
    early_stopped: set[str] = field(default_factory=set)
    stop_requested: bool = False
    failure_reason: str = ""
    peak_parallel: int = 0

    @property
    def config(self) -> dict:
        return self.body["HyperParameterTuningJobConfig"]

    @property
    def definition(self) -> dict:
        return self.body["TrainingJobDefinition"]


def _number(text: str, integer: bool) -> float:
    return int(text) if integer else float(text)


class TunerEmulator:
    """SageMaker's tuner for the jobs of one :class:`~tests.sagemaker_harness.SageMakerEmulator`.

    ``requests`` keeps every CreateHyperParameterTuningJob body as it went over the wire (refused ones
    too, in ``refused``); ``runs`` each accepted tuning job."""

    def __init__(self, emulator, poll_seconds: float = 0.1):
        self.emulator = emulator
        emulator.tuner = self  # Search over HyperParameterTuningJob comes here
        self.poll_seconds = poll_seconds
        self.requests: dict[str, dict] = {}
        self.refused: list[dict] = []
        self.runs: dict[str, TuningRun] = {}
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def attach(self, sagemaker_client) -> TunerEmulator:
        handlers = {"CreateHyperParameterTuningJob": self._create, "DescribeHyperParameterTuningJob": self._describe,
                    "ListTrainingJobsForHyperParameterTuningJob": self._list_children,
                    "StopHyperParameterTuningJob": self._stop}
        for operation, handler in handlers.items():
            def answer(params, handler=handler, operation=operation, **_):
                body = json.loads(params["body"])
                check_request(operation, body)
                return ok_response()[0], {**handler(body), "ResponseMetadata": {"HTTPStatusCode": 200}}
            sagemaker_client.meta.events.register(f"before-call.sagemaker.{operation}", answer)
        return self

    def _run_of(self, name: str, operation: str) -> TuningRun:
        run = self.runs.get(name.lower())
        if run is None:
            raise sagemaker_error("ResourceNotFound", f"Amazon SageMaker can't find a tuning job with name {name}",
                                  operation)
        return run

    # --- create -------------------------------------------------------------------------------
    def _create(self, body: dict) -> dict:
        try:
            self.check_create_request(body)
        except ClientError:
            self.refused.append(body)
            raise
        name = body["HyperParameterTuningJobName"]
        # recorded in moto too (its ARN, and its tags for ListTags), which answers nothing else of it here
        arn = sagemaker_backends[ACCOUNT][REGION].create_hyper_parameter_tuning_job(
            hyper_parameter_tuning_job_name=name, hyper_parameter_tuning_job_config=body[
                "HyperParameterTuningJobConfig"], training_job_definition=body["TrainingJobDefinition"],
            training_job_definitions=None, warm_start_config=body.get("WarmStartConfig"), tags=body.get("Tags"),
            autotune=None)
        with self._lock:
            self.requests[name] = body
            self.runs[name.lower()] = TuningRun(body, arn, _now(), modified=_now())
        thread = threading.Thread(target=self._run, args=(name,), daemon=True)
        self.threads.append(thread)
        thread.start()
        return {"HyperParameterTuningJobArn": arn}

    def check_create_request(self, body: dict) -> None:
        """Refuse what SageMaker refuses at CreateHyperParameterTuningJob beyond the service model."""
        operation = "CreateHyperParameterTuningJob"

        def refuse(message: str):
            raise sagemaker_error("ValidationException", message, operation)

        name = body["HyperParameterTuningJobName"]
        if name.lower() in self.runs:  # names are not case sensitive
            raise sagemaker_error("ResourceInUse", f"Hyper Parameter Tuning Job with name {name} already exists. "
                                  "Choose a different name.", operation)
        if "TrainingJobDefinition" not in body:
            refuse("This harness plays TrainingJobDefinition (one definition) only")
        config, definition = body["HyperParameterTuningJobConfig"], body["TrainingJobDefinition"]
        ranges = config.get("ParameterRanges") or {}
        listed = [(kind, item) for kind in RANGE_KINDS for item in ranges.get(kind, [])]
        if not listed:
            refuse("ParameterRanges: give at least one hyperparameter range")
        if len(listed) > MAX_RANGES:
            refuse(f"The number of hyperparameters ({len(listed)}) exceeds the maximum of {MAX_RANGES}")
        names = [item["Name"] for _, item in listed]
        if len(set(names)) != len(names):
            refuse(f"A hyperparameter may appear in one range only: {names}")
        static = definition.get("StaticHyperParameters", {})
        both = sorted(set(names) & set(static))
        if both:
            refuse(f"Hyperparameters {both} cannot be both static and tunable")
        for kind, item in listed:
            if kind == "CategoricalParameterRanges":
                if len(set(item["Values"])) != len(item["Values"]):
                    refuse(f"Values of {item['Name']} must be unique")
                continue
            integer = kind == "IntegerParameterRanges"
            try:
                low, high = _number(item["MinValue"], integer), _number(item["MaxValue"], integer)
            except ValueError:
                refuse(f"MinValue and MaxValue of {item['Name']} must be {'integers' if integer else 'numbers'}")
            if low > high:
                refuse(f"MinValue of {item['Name']} must be less than or equal to MaxValue")
            scaling = item.get("ScalingType", "Auto")
            if scaling == "Logarithmic" and low <= 0:
                refuse(f"Logarithmic scaling of {item['Name']} needs MinValue greater than 0")
            if scaling == "ReverseLogarithmic" and (integer or not 0 <= low <= high < 1):
                refuse(f"ReverseLogarithmic scaling of {item['Name']} is for continuous ranges within [0, 1)")
        strategy, limits = config["Strategy"], config["ResourceLimits"]
        max_jobs, parallel = limits.get("MaxNumberOfTrainingJobs"), limits["MaxParallelTrainingJobs"]
        if strategy == "Grid":
            if any(kind != "CategoricalParameterRanges" for kind, _ in listed):
                refuse("The Grid search strategy supports categorical parameter ranges only")
            combinations = math.prod(len(item["Values"]) for _, item in listed)
            if max_jobs not in (None, combinations):
                refuse(f"For Grid search leave MaxNumberOfTrainingJobs out or set it to the number of "
                       f"combinations ({combinations})")
            max_jobs = combinations
        elif max_jobs is None:
            refuse(f"MaxNumberOfTrainingJobs is required with the {strategy} strategy")
        if max_jobs > MAX_JOBS:
            refuse(f"MaxNumberOfTrainingJobs ({max_jobs}) exceeds the limit of {MAX_JOBS}")
        if parallel > max_jobs:
            refuse(f"MaxParallelTrainingJobs ({parallel}) must be less than or equal to the number of training "
                   f"jobs ({max_jobs})")
        hyperband = (config.get("StrategyConfig") or {}).get("HyperbandStrategyConfig")
        if strategy == "Hyperband":
            if config.get("TrainingJobEarlyStoppingType", "Off") != "Off":
                refuse("TrainingJobEarlyStoppingType must be Off with the Hyperband strategy")
            resource = (hyperband or {}).get("MaxResource") or next(
                (int(static[k]) for k in HYPERBAND_RESOURCE_KEYS if k in static), None)
            if resource is None:
                refuse("Hyperband cannot infer MaxResource: set it, or an epochs static hyperparameter")
            if (hyperband or {}).get("MinResource", 1) > resource:
                refuse("MinResource must be less than or equal to MaxResource")
        elif config.get("StrategyConfig"):
            refuse("StrategyConfig is for the Hyperband strategy only")
        metrics = [d["Name"] for d in definition["AlgorithmSpecification"].get("MetricDefinitions", [])]
        objective = config.get("HyperParameterTuningJobObjective", {}).get("MetricName")
        if objective not in metrics:
            refuse(f"The objective metric {objective!r} is not one of the MetricDefinitions ({metrics})")
        warm = body.get("WarmStartConfig")
        if warm:
            for parent in warm["ParentHyperParameterTuningJobs"]:
                found = self.runs.get(parent["HyperParameterTuningJobName"].lower())
                if found is None:
                    refuse(f"Parent tuning job {parent['HyperParameterTuningJobName']} does not exist")
                if found.status in RUNNING:
                    refuse(f"Parent tuning job {parent['HyperParameterTuningJobName']} has not ended")
                if warm["WarmStartType"] == "IdenticalDataAndAlgorithm" and (
                        found.definition["InputDataConfig"] != definition.get("InputDataConfig")
                        or found.definition["AlgorithmSpecification"]["TrainingImage"]
                        != definition["AlgorithmSpecification"]["TrainingImage"]):
                    refuse("IdenticalDataAndAlgorithm needs the parents' input data and training image")
        # the definition must be a training job SageMaker would create
        self.emulator.check_create_request(self._child_body(body, f"{name}-001-00000000", {}))

    # --- children -----------------------------------------------------------------------------
    @staticmethod
    def _child_body(body: dict, child: str, tuned: dict[str, str]) -> dict:
        """The CreateTrainingJob a child amounts to: the definition, the values picked, the tuning job's tags."""
        definition = body["TrainingJobDefinition"]
        request = {"TrainingJobName": child,
                   "HyperParameters": {**definition.get("StaticHyperParameters", {}), **tuned},
                   "Tags": body.get("Tags", [])}
        for key in ("AlgorithmSpecification", "RoleArn", "InputDataConfig", "OutputDataConfig", "ResourceConfig",
                    "StoppingCondition", "EnableNetworkIsolation", "EnableManagedSpotTraining", "CheckpointConfig",
                    "VpcConfig"):
            if key in definition:
                request[key] = definition[key]
        return request

    @staticmethod
    def _sample(item: dict, kind: str, rng: random.Random) -> str:
        if kind == "CategoricalParameterRanges":
            return rng.choice(item["Values"])
        integer = kind == "IntegerParameterRanges"
        low, high = _number(item["MinValue"], integer), _number(item["MaxValue"], integer)
        scaling = item.get("ScalingType", "Auto")
        if scaling == "Logarithmic":
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        elif scaling == "ReverseLogarithmic":
            value = 1 - math.exp(rng.uniform(math.log(1 - high), math.log(1 - low)))
        else:
            value = rng.uniform(low, high)
        return str(min(max(round(value), int(low)), int(high))) if integer else repr(min(max(value, low), high))

    def _picks(self, run: TuningRun, name: str):
        """The tuned values of each child in turn."""
        listed = [(kind, item) for kind in RANGE_KINDS for item in run.config["ParameterRanges"].get(kind, [])]
        if run.config["Strategy"] == "Grid":
            for values in itertools.product(*(item["Values"] for _, item in listed)):
                yield {item["Name"]: value for (_, item), value in zip(listed, values)}
            return
        rng = random.Random(run.config.get("RandomSeed", name))
        while True:
            yield {item["Name"]: self._sample(item, kind, rng) for kind, item in listed}

    def _launch(self, run: TuningRun, name: str, tuned: dict[str, str]) -> None:
        child = f"{name}-{len(run.children) + 1:03d}-{secrets.token_hex(4)}"
        body = self._child_body(run.body, child, tuned)
        self.emulator.requests[child] = body  # the MetricDefinitions as sent
        self.emulator.sm.create_training_job(**body)
        sagemaker_backends[ACCOUNT][REGION].training_jobs[child].tuning_job_arn = run.arn
        with self._lock:
            run.children.append(child)
            run.tuned[child] = tuned

    def _status(self, child: str) -> str:
        job = sagemaker_backends[ACCOUNT][REGION].training_jobs[child]
        # moto calls a job Completed until the emulator claims it
        return job.training_job_status if child in self.emulator.threads else "InProgress"

    def _objective_history(self, run: TuningRun, child: str) -> list[float]:
        metric = run.config["HyperParameterTuningJobObjective"]["MetricName"]
        return [epoch[metric] for epoch in self.emulator.epoch_metrics.get(child, []) if metric in epoch]

    def _worse_than_median(self, run: TuningRun, child: str, finished: list[str]) -> bool:
        """AWS's rule: the child's running average up to its latest epoch is worse than the median of the
        finished children's running averages up to the same epoch."""
        mine = self._objective_history(run, child)
        if not mine:
            return False
        epoch = len(mine)
        others = [history[:epoch] for history in (self._objective_history(run, c) for c in finished)
                  if len(history) >= epoch]
        if not others:
            return False
        median = statistics.median(sum(h) / epoch for h in others)
        average = sum(mine) / epoch
        maximize = run.config["HyperParameterTuningJobObjective"]["Type"] == "Maximize"
        return average < median if maximize else average > median

    def _stop_child(self, child: str) -> None:
        self.emulator.stop_requests.add(child)
        if self._status(child) == "InProgress":
            self.emulator._set(child, "Stopping", "Stopping", "Stop requested")

    def _run(self, name: str) -> None:
        run = self.runs[name.lower()]
        limits = run.config["ResourceLimits"]
        picks = self._picks(run, name)
        total = limits.get("MaxNumberOfTrainingJobs") or math.prod(
            len(item["Values"]) for item in run.config["ParameterRanges"].get("CategoricalParameterRanges", []))
        early = run.config.get("TrainingJobEarlyStoppingType") == "Auto"
        while not self.emulator._stopped.is_set():
            statuses = {child: self._status(child) for child in run.children}
            running = [c for c, s in statuses.items() if s in RUNNING]
            run.peak_parallel = max(run.peak_parallel, len(running))
            if run.stop_requested:
                for child in running:
                    if child not in self.emulator.stop_requests:
                        self._stop_child(child)
                if not running:
                    self._end(run, "Stopped")
                    return
            else:
                if early:
                    finished = [c for c, s in statuses.items() if s == "Completed"]
                    for child in running:
                        if child not in self.emulator.stop_requests and self._worse_than_median(run, child, finished):
                            run.early_stopped.add(child)
                            self._stop_child(child)
                if len(run.children) < total and len(running) < limits["MaxParallelTrainingJobs"]:
                    self._launch(run, name, next(picks))
                    continue
                if len(run.children) >= total and not running:
                    failed = all(s == "Failed" for s in statuses.values())
                    self._end(run, "Failed" if failed else "Completed",
                              "All training jobs failed" if failed else "")
                    return
            self.emulator._stopped.wait(self.poll_seconds)

    def _end(self, run: TuningRun, status: str, reason: str = "") -> None:
        with self._lock:
            run.status, run.failure_reason = status, reason
            run.ended = run.modified = _now()

    # --- answers ------------------------------------------------------------------------------
    def child_summary(self, run: TuningRun, child: str) -> dict:
        """A HyperParameterTrainingJobSummary, as ListTrainingJobsForHyperParameterTuningJob gives it."""
        job = sagemaker_backends[ACCOUNT][REGION].training_jobs[child]
        status = self._status(child)
        objective = run.config["HyperParameterTuningJobObjective"]
        value = self.emulator.final_metrics.get(child, {}).get(objective["MetricName"])
        summary = {"TrainingJobName": child, "TrainingJobArn": job.arn, "TuningJobName": run.body[
            "HyperParameterTuningJobName"], "CreationTime": job.creation_time, "TrainingJobStatus": status,
            "TunedHyperParameters": run.tuned[child]}
        if job.training_start_time and child in self.emulator.threads:
            summary["TrainingStartTime"] = job.training_start_time
        if status not in RUNNING and job.training_end_time:
            summary["TrainingEndTime"] = job.training_end_time
        if status == "Failed":
            summary["FailureReason"] = getattr(job, "failure_reason", "") or "AlgorithmError"
            summary["ObjectiveStatus"] = "Failed"
        elif status in ("Completed", "Stopped") and value is not None:
            summary["ObjectiveStatus"] = "Succeeded"
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {**objective, "Value": value}
        else:
            summary["ObjectiveStatus"] = "Failed" if status in ("Completed", "Stopped") else "Pending"
        return summary

    def best(self, run: TuningRun) -> dict | None:
        scored = [s for s in (self.child_summary(run, c) for c in run.children) if s["ObjectiveStatus"] == "Succeeded"]
        if not scored:
            return None
        sign = 1 if run.config["HyperParameterTuningJobObjective"]["Type"] == "Maximize" else -1
        return max(scored, key=lambda s: sign * s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])

    def describe(self, run: TuningRun) -> dict:
        """DescribeHyperParameterTuningJob's answer (the Search entity, without the tags)."""
        summaries = [self.child_summary(run, c) for c in run.children]
        counters = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
        objectives = {"Succeeded": 0, "Pending": 0, "Failed": 0}
        for summary in summaries:
            status = summary["TrainingJobStatus"]
            counters[{"Failed": "NonRetryableError", "Stopping": "InProgress"}.get(status, status)] += 1
            objectives[summary["ObjectiveStatus"]] += 1
        answer = {"HyperParameterTuningJobName": run.body["HyperParameterTuningJobName"],
                  "HyperParameterTuningJobArn": run.arn, "HyperParameterTuningJobConfig": run.config,
                  "TrainingJobDefinition": run.definition, "HyperParameterTuningJobStatus": run.status,
                  "CreationTime": run.created, "LastModifiedTime": run.modified,
                  "TrainingJobStatusCounters": counters, "ObjectiveStatusCounters": objectives}
        best = self.best(run)
        if best:
            answer["BestTrainingJob"] = best
        if run.ended:
            answer["HyperParameterTuningEndTime"] = run.ended
        if run.body.get("WarmStartConfig"):
            answer["WarmStartConfig"] = run.body["WarmStartConfig"]
        if run.failure_reason:
            answer["FailureReason"] = run.failure_reason
        return answer

    def _describe(self, body: dict) -> dict:
        return self.describe(self._run_of(body["HyperParameterTuningJobName"], "DescribeHyperParameterTuningJob"))

    def _list_children(self, body: dict) -> dict:
        run = self._run_of(body["HyperParameterTuningJobName"], "ListTrainingJobsForHyperParameterTuningJob")
        summaries = [self.child_summary(run, c) for c in list(run.children)]
        if body.get("StatusEquals"):
            summaries = [s for s in summaries if s["TrainingJobStatus"] == body["StatusEquals"]]
        sort_by = body.get("SortBy", "CreationTime")
        key = {"Name": lambda s: s["TrainingJobName"], "CreationTime": lambda s: s["CreationTime"],
               "Status": lambda s: s["TrainingJobStatus"],
               "FinalObjectiveMetricValue": lambda s: s.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get(
                   "Value", -math.inf)}[sort_by]
        summaries.sort(key=key, reverse=body.get("SortOrder", "Descending") == "Descending")
        start = int(body.get("NextToken") or 0)
        page = body.get("MaxResults", 10)
        answer: dict = {"TrainingJobSummaries": summaries[start:start + page]}
        if start + page < len(summaries):
            answer["NextToken"] = str(start + page)
        return answer

    def _stop(self, body: dict) -> dict:
        run = self._run_of(body["HyperParameterTuningJobName"], "StopHyperParameterTuningJob")
        if run.status != "InProgress":
            raise sagemaker_error("ValidationException", f"The tuning job {run.body['HyperParameterTuningJobName']} "
                                  f"is {run.status}: only an InProgress tuning job can be stopped",
                                  "StopHyperParameterTuningJob")
        with self._lock:
            run.stop_requested, run.status, run.modified = True, "Stopping", _now()
        return {}

    def search(self, body: dict) -> dict:
        """SageMaker Search over tuning jobs (Resource HyperParameterTuningJob), as strict as the
        emulator's Search over training jobs: filters, visibility conditions, pages of at most 100."""
        page = body.get("MaxResults", 10)
        if not 1 <= page <= 100:
            raise sagemaker_error("ValidationException", "MaxResults must be 1..100", "Search")
        filters = body.get("SearchExpression", {}).get("Filters", [])
        entities = [{**self.describe(run), "Tags": run.body.get("Tags", [])} for run in list(self.runs.values())]
        entities = [e for e in entities if all(_matches(e, f, TUNING_SEARCH_PROPERTIES) for f in filters)
                    and all(_visible(e, c, TUNING_SEARCH_PROPERTIES) for c in body.get("VisibilityConditions", []))]
        sort_by = body.get("SortBy", "LastModifiedTime")
        if sort_by not in TUNING_SEARCH_PROPERTIES:
            raise sagemaker_error("ValidationException", f"Cannot sort by {sort_by!r}", "Search")
        entities.sort(key=lambda e: (e.get(sort_by) is None, e.get(sort_by)),
                      reverse=body.get("SortOrder", "Descending") == "Descending")
        start = int((body.get("NextToken") or "0").removeprefix("search-offset-"))
        answer: dict = {"Results": [{"HyperParameterTuningJob": e} for e in entities[start:start + page]]}
        if start + page < len(entities):
            answer["NextToken"] = f"search-offset-{start + page}"
        return answer

"""Hyperparameter tuning jobs on SageMaker: CreateHyperParameterTuningJob with the very training-job
definition :meth:`SageMakerBackend.training_job_request` builds, read back as
:class:`~amc_widgets.core.tuning.TuningJobDescription`.

A tuning job is tagged ``amc_user=<key>`` like a training job (SageMaker copies the tuning job's tags
onto every training job it launches, so children show in the owner's job list and nobody else's).
Its children write their outputs where the owner's training jobs do
(``users/<key>/training-jobs/<child>/output/``).  The list is SageMaker Search over
``HyperParameterTuningJob`` filtered by the owner tag (ListHyperParameterTuningJobs has no tag
filter), with the children of every listed tuning job from one Search of the owner's training jobs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from amc_widgets.backends.aws_session import AwsConnectionError, explain_client_error
from amc_widgets.backends.iam_policy import OWNER_TAG
from amc_widgets.core.hyperparameters import HYPERPARAMETERS
from amc_widgets.core.instances import CostEstimate, get_instance
from amc_widgets.core.jobs import COMPLETED, FAILED, STOPPED, JobNotFoundError
from amc_widgets.core.tuning import (
    TuningChild,
    TuningJobDescription,
    TuningSpec,
    TuningSpecError,
    check_tuning_name,
    estimate_tuning_cost,
    make_tuning_name,
    ranges_from_sagemaker,
    sagemaker_parameter_ranges,
    validate_tuning_spec,
)

if TYPE_CHECKING:
    from amc_widgets.backends.sagemaker import SageMakerBackend

WARM_START_TYPE = "IdenticalDataAndAlgorithm"  # same dataset and image: the parents' results carry over
CHILDREN_PAGE = 100  # ListTrainingJobsForHyperParameterTuningJob's MaxResults limit
SEARCH_PAGE, MAX_SEARCH_PAGES = 100, 10  # a listing reads at most 1,000 tuning jobs, newest first
# the training-job keys a TrainingJobDefinition takes as they are (the rest is renamed or tuning-level)
_DEFINITION_KEYS = ("RoleArn", "InputDataConfig", "OutputDataConfig", "ResourceConfig", "StoppingCondition",
                    "EnableNetworkIsolation", "EnableManagedSpotTraining", "CheckpointConfig")


def _ts(value: Any) -> float | None:
    return value.timestamp() if hasattr(value, "timestamp") else None


def _name_of(arn: str) -> str:
    return arn.rsplit("/", 1)[-1] if arn else ""


class SageMakerTuning:
    """The tuning requests of one connected :class:`SageMakerBackend` (its client, user and definitions)."""

    def __init__(self, backend: SageMakerBackend):
        self.backend = backend
        self.sm = backend.sm

    # --- starting -----------------------------------------------------------------------------
    def cost(self, spec: TuningSpec) -> CostEstimate:
        """The most the whole tuning job costs: max jobs x max runtime x the region's price (and spot)."""
        return estimate_tuning_cost(spec, price=self.backend.instance_price(spec.instance_type))

    def request(self, spec: TuningSpec, name: str, dataset_bytes: int = 0) -> dict[str, Any]:
        """The CreateHyperParameterTuningJob request for a validated ``spec``."""
        training = self.backend.training_job_request(spec.training_spec(), name, dataset_bytes)
        definition = {key: training[key] for key in _DEFINITION_KEYS if key in training}
        definition["StaticHyperParameters"] = dict(spec.hyperparameters)  # the tuned keys are not among them
        definition["AlgorithmSpecification"] = training["AlgorithmSpecification"]
        config: dict[str, Any] = {
            "Strategy": spec.strategy,
            "HyperParameterTuningJobObjective": {"Type": spec.direction, "MetricName": spec.objective},
            "ResourceLimits": {"MaxParallelTrainingJobs": spec.max_parallel},
            "ParameterRanges": sagemaker_parameter_ranges(spec.ranges),
            # Hyperband stops jobs itself and refuses early stopping
            "TrainingJobEarlyStoppingType": "Auto" if spec.early_stopping else "Off",
        }
        if spec.strategy != "Grid":  # Grid trains every combination: SageMaker counts them itself
            config["ResourceLimits"]["MaxNumberOfTrainingJobs"] = spec.total_jobs()
        if spec.strategy == "Hyperband":  # its resource is the epoch: at least 1, at most the static epochs
            epochs = int(spec.hyperparameters.get("epochs", HYPERPARAMETERS["epochs"].default))
            config["StrategyConfig"] = {"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": epochs}}
        if spec.seed is not None:
            config["RandomSeed"] = spec.seed
        request: dict[str, Any] = {"HyperParameterTuningJobName": name, "HyperParameterTuningJobConfig": config,
                                   "TrainingJobDefinition": definition, "Tags": training["Tags"]}
        if spec.warm_start_from:
            request["WarmStartConfig"] = {"WarmStartType": WARM_START_TYPE, "ParentHyperParameterTuningJobs": [
                {"HyperParameterTuningJobName": parent} for parent in spec.warm_start_from]}
        return request

    def start(self, spec: TuningSpec) -> TuningJobDescription:
        """Validate, check quotas and parents, then CreateHyperParameterTuningJob."""
        spec = validate_tuning_spec(spec)
        dataset_bytes = self.backend.check_launch(spec.training_spec())
        name = check_tuning_name(spec.name) if spec.name else make_tuning_name(spec.dataset, self.backend.clock)
        for parent in spec.warm_start_from:  # another user's tuning job is not found, as to SageMaker's IAM
            if not self.describe(parent, children=False).is_terminal:
                raise TuningSpecError({"warm start": f"the tuning job '{parent}' has not ended yet"})
        instance = get_instance(spec.instance_type)
        # every parallel child holds its instances at once
        self.backend.check_quota(instance.name, spec.instance_count * spec.max_parallel, spec.spot)
        try:
            self.sm.create_hyper_parameter_tuning_job(**self.request(spec, name, dataset_bytes))
        except ClientError as exc:
            from amc_widgets.backends.sagemaker import QuotaError

            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceInUse" or "already exists" in str(exc):
                raise FileExistsError(f"A tuning job named '{name}' already exists") from None
            if code == "ResourceLimitExceeded":
                message = exc.response["Error"].get("Message", "")
                raise QuotaError(f"SageMaker refused the tuning job: {message}") from None
            raise AwsConnectionError(explain_client_error(exc, "start the tuning job")) from None
        return self.describe(name)

    # --- reading ------------------------------------------------------------------------------
    def _own(self, raw: dict[str, Any]) -> bool:
        output = raw.get("TrainingJobDefinition", {}).get("OutputDataConfig", {}).get("S3OutputPath")
        return output == f"s3://{self.backend.bucket}/{self.backend.outputs_prefix}"

    def describe(self, name: str, children: bool = True) -> TuningJobDescription:
        """DescribeHyperParameterTuningJob and (``children``) every page of its training jobs."""
        try:
            raw = self.sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("AccessDenied", "AccessDeniedException", "ResourceNotFound", "ValidationException"):
                raise JobNotFoundError(f"No tuning job named '{name}'") from None  # another user's is denied
            raise AwsConnectionError(explain_client_error(exc, "read the tuning job")) from None
        if not self._own(raw):
            raise JobNotFoundError(f"No tuning job named '{name}'")
        description = self._description(raw)
        if children:
            summaries: list[dict[str, Any]] = []
            try:
                for page in self.sm.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job").paginate(
                        HyperParameterTuningJobName=name, PaginationConfig={"PageSize": CHILDREN_PAGE}):
                    summaries += page.get("TrainingJobSummaries", [])
            except ClientError as exc:
                raise AwsConnectionError(explain_client_error(exc, "list the tuning job's training jobs")) from None
            description.children = [self._child(s, description) for s in summaries]
        return description

    def _description(self, raw: dict[str, Any]) -> TuningJobDescription:
        config, definition = raw["HyperParameterTuningJobConfig"], raw.get("TrainingJobDefinition", {})
        objective = config.get("HyperParameterTuningJobObjective", {})
        limits, resources = config.get("ResourceLimits", {}), definition.get("ResourceConfig", {})
        ranges = ranges_from_sagemaker(config.get("ParameterRanges", {}))
        uri = next((c["DataSource"]["S3DataSource"]["S3Uri"] for c in definition.get("InputDataConfig", [])
                    if c.get("ChannelName") == "training"), "")
        status = raw["HyperParameterTuningJobStatus"]
        max_jobs = limits.get("MaxNumberOfTrainingJobs")
        if max_jobs is None:  # Grid: every combination
            max_jobs = 1
            for item in ranges:
                max_jobs *= len(item.values) or 1
        ended = _ts(raw.get("HyperParameterTuningEndTime"))
        if ended is None and status in ("Completed", "Failed", "Stopped"):
            ended = _ts(raw.get("LastModifiedTime"))
        return TuningJobDescription(
            name=raw["HyperParameterTuningJobName"], status=status, dataset=uri.rstrip("/").rsplit("/", 1)[-1],
            strategy=config.get("Strategy", ""), objective=objective.get("MetricName", ""),
            objective_type=objective.get("Type", "Maximize"), max_jobs=int(max_jobs),
            max_parallel=int(limits.get("MaxParallelTrainingJobs", 1)), created=_ts(raw.get("CreationTime")) or 0.0,
            ranges=ranges, static_hyperparameters=dict(definition.get("StaticHyperParameters", {})),
            instance_type=resources.get("InstanceType", ""), instance_count=resources.get("InstanceCount", 1),
            early_stopping=config.get("TrainingJobEarlyStoppingType") == "Auto", ended=ended,
            failure_reason=raw.get("FailureReason", ""),
            warm_start_from=tuple(p["HyperParameterTuningJobName"] for p in (raw.get("WarmStartConfig") or {}).get(
                "ParentHyperParameterTuningJobs", [])))

    @staticmethod
    def _early_stopped(status: str, tuning: TuningJobDescription) -> bool:
        """A child Stopped while its tuning job was not stopped was stopped by the tuner (early
        stopping, or Hyperband): SageMaker marks it no other way."""
        stops_early = tuning.early_stopping or tuning.strategy == "Hyperband"
        return status == STOPPED and stops_early and tuning.status not in ("Stopping", "Stopped")

    def _child(self, summary: dict[str, Any], tuning: TuningJobDescription) -> TuningChild:
        """A ListTrainingJobsForHyperParameterTuningJob summary as a :class:`TuningChild`."""
        metric = summary.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
        status = summary["TrainingJobStatus"]
        return TuningChild(
            name=summary["TrainingJobName"], status=status, tuned=dict(summary.get("TunedHyperParameters", {})),
            created=_ts(summary.get("CreationTime")) or 0.0, ended=_ts(summary.get("TrainingEndTime")),
            objective=float(metric["Value"]) if "Value" in metric else None,
            objective_status=summary.get("ObjectiveStatus", "Pending"),
            failure_reason=summary.get("FailureReason", ""), early_stopped=self._early_stopped(status, tuning))

    def _child_from_training_job(self, raw: dict[str, Any], tuning: TuningJobDescription) -> TuningChild:
        """A training job of the owner's Search as a :class:`TuningChild` of ``tuning`` (the same fields
        ListTrainingJobsForHyperParameterTuningJob gives, from the job itself)."""
        tuned_names = {r.name for r in tuning.ranges}
        status = raw["TrainingJobStatus"]
        final = {m["MetricName"]: float(m["Value"]) for m in raw.get("FinalMetricDataList", [])}
        objective = final.get(tuning.objective) if status in (COMPLETED, STOPPED) else None
        return TuningChild(
            name=raw["TrainingJobName"], status=status,
            tuned={k: v for k, v in raw.get("HyperParameters", {}).items() if k in tuned_names},
            created=_ts(raw.get("CreationTime")) or 0.0, ended=_ts(raw.get("TrainingEndTime")), objective=objective,
            objective_status="Succeeded" if objective is not None else ("Failed" if status == FAILED else "Pending"),
            failure_reason=raw.get("FailureReason", ""), early_stopped=self._early_stopped(status, tuning))

    def list(self) -> list[TuningJobDescription]:
        """This user's tuning jobs, newest first, each with its children: one Search of tuning jobs by the
        owner tag and one of training jobs (a page per 100), never a request per tuning job."""
        owner = self.backend.user
        request: dict[str, Any] = {
            "Resource": "HyperParameterTuningJob",
            "SearchExpression": {"Filters": [{"Name": f"Tags.{OWNER_TAG}", "Operator": "Equals", "Value": owner}]},
            "VisibilityConditions": [{"Key": f"Tags.{OWNER_TAG}", "Value": owner}],
            "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": SEARCH_PAGE}
        found: list[dict[str, Any]] = []
        try:
            for _ in range(MAX_SEARCH_PAGES):
                page = self.sm.search(**request)
                found += [r["HyperParameterTuningJob"] for r in page.get("Results", [])
                          if "HyperParameterTuningJob" in r]
                if not page.get("NextToken"):
                    break
                request["NextToken"] = page["NextToken"]
        except ClientError as exc:
            raise AwsConnectionError(explain_client_error(exc, "list your tuning jobs")) from None
        tunings = [self._description(raw) for raw in found if self._own(raw)]
        if not tunings:
            return []
        by_name = {t.name.lower(): t for t in tunings}  # ARNs carry the name in lower case
        for raw in self.backend._search_jobs():
            parent = by_name.get(_name_of(raw.get("TuningJobArn", "")).lower())
            if parent is not None:
                parent.children.append(self._child_from_training_job(raw, parent))
        return sorted(tunings, key=lambda t: t.created, reverse=True)

    # --- stopping -----------------------------------------------------------------------------
    def stop(self, name: str) -> TuningJobDescription:
        """StopHyperParameterTuningJob (SageMaker stops its running children); no-op once it ended."""
        description = self.describe(name, children=False)
        if description.status == "InProgress":
            try:
                self.sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
            except ClientError as exc:
                raise AwsConnectionError(explain_client_error(exc, "stop the tuning job")) from None
        return self.describe(name)

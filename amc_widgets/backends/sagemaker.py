"""The SageMaker backend: datasets in the user's S3 space, training jobs on SageMaker from AMC's
image, logs from CloudWatch, quotas from Service Quotas — behind the same protocol as local.

Bucket layout (``sagemaker-<region>-<account>``); ``<key>`` is the caller's ``aws:userid`` (STS
UserId), so the generated IAM policy and this layout name the same space::

    users/<key>/custom-uploads/<dataset>/...                   datasets (+ .amc-dataset.json)
    users/<key>/training-jobs/<job>/.amc-job.json              written before the job is created: the user's job list
    users/<key>/training-jobs/<job>/output/model.tar.gz        SageMaker's OutputDataConfig
    users/<key>/training-jobs/<job>/checkpoints/               spot checkpoints
    users/<key>/weights/<name>-<sha256[:12]>.pt                weights jobs start from (the 'weights' channel)

Jobs run with network isolation (the container never downloads: weights come as a channel).

Each job is tagged ``amc_user=<key>``; the IAM policies (iam_policy.py) let only its owner see or
stop it, and its execution role reach only the owner's space.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from amc_widgets.backends.aws_prices import RegionPrices
from amc_widgets.backends.aws_session import (
    AWS_ERRORS,
    AwsConnectionError,
    AwsCredentials,
    AwsError,
    ClientFactory,
    ConnectionInfo,
    describe_connection,
    dns_suffix,
    explain_client_error,
)
from amc_widgets.backends.base import (
    DatasetInfo,
    DeploysThroughEndpoints,
    DownloadResult,
    LogChunk,
    OutputInfo,
    ProgressCallback,
    TunesThroughManager,
    download_outputs_into,
)
from amc_widgets.backends.cloudwatch_logs import LogFollower, live_tail, streams_expected
from amc_widgets.backends.iam_policy import OWNER_TAG
from amc_widgets.backends.s3_datasets import S3DatasetStore, folder_items, zip_items
from amc_widgets.backends.sagemaker_endpoints import SageMakerEndpoints
from amc_widgets.backends.sagemaker_tuning import SageMakerTuning
from amc_widgets.core.container_contract import (
    DEFAULT_ML_ROOT,
    TRAINING_CHANNEL,
    TRAINING_LOG_GROUP,
    WEIGHTS_CHANNEL,
    MLPaths,
)
from amc_widgets.core.dataset_check import DatasetError
from amc_widgets.core.dataset_import import ready_to_store
from amc_widgets.core.dataset_split import DEFAULT_SPLIT, SplitSettings
from amc_widgets.core.hyperparameters import decode_hyperparameters
from amc_widgets.core.instances import (
    CostEstimate,
    check_storage,
    get_instance,
    training_volume_gb,
    validate_instance_count,
)
from amc_widgets.core.jobs import (
    TERMINAL_STATUSES,
    JobDescription,
    JobNotFoundError,
    JobSpec,
    StatusTransition,
    check_job_name,
    make_job_name,
    stopping_condition,
)
from amc_widgets.core.metrics import metric_definitions, parse_metrics
from amc_widgets.core.prices import Price, PriceCache
from amc_widgets.core.storage import check_dataset_name, dataset_source
from amc_widgets.core.tuning import TuningSpec
from amc_widgets.core.weights import WeightsError, stored_weights_name

if TYPE_CHECKING:  # pandas loads when a table is first made, not with the page
    import pandas as pd

DEFAULT_IMAGE_ENV = "AMC_TRAINING_IMAGE"
PRICES_FILE = "prices.json"  # under $AMC_HOME: the Price List's answers, with the time each was read
MIN_POLL_SECONDS = 10.0  # DescribeTrainingJob at most this often per running job
APP_TAG = "amc"
JOB_MARKER = ".amc-job.json"
# SageMaker tag values: letters, digits, spaces and _ . : / = + - @ (the API's Tag pattern)
TAG_VALUE_PATTERN = re.compile(r"^[\w\s.:/=+\-@]*$")
SEARCH_PAGE = 100  # Search's MaxResults limit
MAX_SEARCH_PAGES = 20  # a listing reads at most 2,000 jobs, the newest first
QUOTA_PAGE, MAX_QUOTA_PAGES = 100, 50  # ListServiceQuotas, once a session, to learn the quota codes
HOLDING_INSTANCES = "InProgress,Stopping"  # a Stopping job still holds its instances


class QuotaError(AwsError):
    """Starting the job would exceed the account's SageMaker quota."""


def _ts(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else None


class SageMakerBackend(DeploysThroughEndpoints, TunesThroughManager):
    """Backend protocol on S3, SageMaker, CloudWatch Logs, STS and Service Quotas; tunes hyperparameters."""

    name = "sagemaker"

    def __init__(self, client: ClientFactory, info: ConnectionInfo, role_arn: str, image_uri: str | None = None,
                 clock: Callable[[], float] = time.time, min_poll_seconds: float = MIN_POLL_SECONDS,
                 network_isolation: bool = True, home: Path | None = None):
        self._client = client
        self.network_isolation = network_isolation  # the container needs no internet
        self.info, self.role_arn = info, role_arn
        if not info.user_key:
            raise AwsConnectionError("AWS did not say who you are (no user id): cannot find your space")
        self.user, self.bucket, self.region = info.user_key, info.bucket, info.region
        self.image_uri = image_uri or os.environ.get(DEFAULT_IMAGE_ENV) or (
            f"{info.account}.dkr.ecr.{info.region}.{dns_suffix(info.partition)}/amc-yolov5-training:latest")
        self.clock, self.min_poll_seconds = clock, min_poll_seconds
        self.s3, self.sm, self.logs = client("s3"), client("sagemaker"), client("logs")
        self.datasets = S3DatasetStore(self.s3, self.bucket, f"users/{self.user}/custom-uploads", clock=clock)
        self._follower = LogFollower(self.logs)
        self._described: dict[str, tuple[float, JobDescription]] = {}
        self.endpoints = SageMakerEndpoints(client, self.sm, self.s3, self.user, self.bucket, role_arn, self.image_uri,
                                            self._model_data, clock)
        self._quota_codes: dict[str, str] | None = None  # quota name -> code, learnt once a session
        home = Path(home or os.environ.get("AMC_HOME") or Path.home() / ".amc").expanduser()
        self.prices = RegionPrices(client("pricing"), self.region, PriceCache(home / PRICES_FILE, clock=clock))
        self.tuning = SageMakerTuning(self)

    # --- connection ---------------------------------------------------------------------------
    @staticmethod
    def test_connection(credentials: AwsCredentials) -> ConnectionInfo:
        """STS GetCallerIdentity, the default bucket, the roles SageMaker may assume."""
        return describe_connection(credentials.client_factory(), credentials.region)

    @classmethod
    def connect(cls, credentials: AwsCredentials, role_arn: str, create_bucket: bool = False,
                image_uri: str | None = None) -> SageMakerBackend:
        if not role_arn or not role_arn.startswith("arn:"):
            raise AwsConnectionError("Give the ARN of your execution role, which SageMaker assumes "
                                     "(arn:<partition>:iam::<account>:role/amc/...)")
        client = credentials.client_factory()
        info = describe_connection(client, credentials.region)
        if not info.bucket_exists:
            if not create_bucket:
                raise AwsConnectionError(f"The bucket {info.bucket} does not exist; agree to create it to go on")
            kwargs = {} if info.region == "us-east-1" else {
                "CreateBucketConfiguration": {"LocationConstraint": info.region}}
            try:
                client("s3").create_bucket(Bucket=info.bucket, **kwargs)
            except ClientError as exc:
                raise AwsConnectionError(explain_client_error(exc, f"create the bucket {info.bucket}")) from None
            info = describe_connection(client, credentials.region)
        return cls(client, info, role_arn, image_uri=image_uri)

    @property
    def outputs_prefix(self) -> str:
        return f"users/{self.user}/training-jobs/"

    @property
    def weights_prefix(self) -> str:
        return f"users/{self.user}/weights/"

    # --- datasets -----------------------------------------------------------------------------
    def list_datasets(self) -> list[DatasetInfo]:
        return self.datasets.list()

    def store_dataset(self, source: Path, name: str | None = None, overwrite: bool = False,
                      progress: ProgressCallback | None = None, split: SplitSettings = DEFAULT_SPLIT) -> DatasetInfo:
        """Check, then upload a folder (parallel, resumable) or a zip (unpacked while uploading); an
        export that needs converting is converted into a temporary folder first."""
        source, name = dataset_source(source, name)
        try:
            with ready_to_store(source, split) as (ready, report):
                if ready.is_dir():
                    return self.datasets.upload(name, folder_items(ready), source.name, overwrite, progress,
                                                report.names)
                from amc_widgets.core.archive import open_safe_zip

                with open_safe_zip(ready) as archive:
                    return self.datasets.upload(name, zip_items(archive), source.name, overwrite, progress,
                                                report.names)
        except AWS_ERRORS as exc:
            raise AwsConnectionError(explain_client_error(exc, f"upload '{name}' (run the upload again to "
                                                               "resume; what arrived is kept)")) from None

    def delete_dataset(self, name: str) -> None:
        try:
            self.datasets.delete(check_dataset_name(name))
        except LookupError as exc:
            raise DatasetError(str(exc)) from None

    def dataset_class_names(self, name: str) -> list[str] | None:
        """From the dataset's manifest (None for datasets stored before manifests named them)."""
        manifest = self.datasets.manifest(check_dataset_name(name))
        if manifest is None:
            raise DatasetError(f"No complete dataset named '{name}' in s3://{self.bucket}/{self.datasets.prefix}")
        return manifest.get("classes") or None

    # --- weights ------------------------------------------------------------------------------
    def _has_object(self, key: str) -> bool:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1).get("Contents", [])
        return any(obj["Key"] == key for obj in listed)

    def store_weights(self, source: Path, sha256: str) -> str:
        """Upload a checked ``.pt`` to the user's weights space once (the name carries its hash)."""
        name = stored_weights_name(source, sha256)
        try:
            if not self._has_object(self.weights_prefix + name):
                self.s3.upload_file(str(source), self.bucket, self.weights_prefix + name, Config=self.datasets.config)
        except AWS_ERRORS as exc:
            raise AwsConnectionError(explain_client_error(exc, f"upload the weights {name}")) from None
        return name

    # --- jobs ---------------------------------------------------------------------------------
    def instance_price(self, instance_type: str) -> Price:
        """The training price of ``instance_type`` in this region (Price List, cached for a week)."""
        return self.prices.price(instance_type)

    def check_quota(self, instance_type: str, count: int, spot: bool) -> None:
        """Refuse a launch the account's quota would reject (instead of ResourceLimitExceeded)."""
        quota_name = f"{instance_type} for {'spot ' if spot else ''}training job usage"
        try:
            quotas = self._client("service-quotas")
            code = self._quota_code(quotas, quota_name)
            if code is None:
                return
            limit = quotas.get_service_quota(ServiceCode="sagemaker", QuotaCode=code)["Quota"].get("Value")
        except AWS_ERRORS:
            return  # no servicequotas permission: SageMaker itself will say no if it must
        if limit is None:
            return
        # Only this user's jobs can be seen (others' are theirs alone); SageMaker refuses what theirs
        # leave no room for with ResourceLimitExceeded, reported the same way by start_job.
        holding = self._search_jobs({"Name": "TrainingJobStatus", "Operator": "In", "Value": HOLDING_INSTANCES},
                                    {"Name": "ResourceConfig.InstanceType", "Operator": "Equals",
                                     "Value": instance_type})
        in_use = sum(job.get("ResourceConfig", {}).get("InstanceCount", 1) for job in holding
                     if bool(job.get("EnableManagedSpotTraining")) == spot)
        if in_use + count > limit:
            raise QuotaError(
                f"Your account may run {int(limit)} x {instance_type}{' (spot)' if spot else ''} at once and "
                f"{in_use} {'is' if in_use == 1 else 'are'} in use, so {count} more cannot start. Wait for a job "
                f"to finish, or ask for more in Service Quotas (quota '{quota_name}', region {self.region}).")

    def _quota_code(self, quotas: Any, name: str) -> str | None:
        """The code of SageMaker's quota ``name`` (codes are fixed; values are read by code)."""
        if self._quota_codes is None:
            codes: dict[str, str] = {}
            request: dict[str, Any] = {"ServiceCode": "sagemaker", "MaxResults": QUOTA_PAGE}
            for _ in range(MAX_QUOTA_PAGES):
                page = quotas.list_service_quotas(**request)
                codes.update({q["QuotaName"]: q["QuotaCode"] for q in page.get("Quotas", [])})
                if not page.get("NextToken"):
                    break
                request["NextToken"] = page["NextToken"]
            self._quota_codes = codes
        return self._quota_codes.get(name)

    def _search_jobs(self, *filters: dict[str, str]) -> list[dict[str, Any]]:
        """This user's training jobs (newest first) through SageMaker Search: filtered by the owner tag,
        which the user policy also demands as a visibility condition; at most MAX_SEARCH_PAGES pages."""
        owner = {"Name": f"Tags.{OWNER_TAG}", "Operator": "Equals", "Value": self.user}
        request: dict[str, Any] = {
            "Resource": "TrainingJob", "SearchExpression": {"Filters": [owner, *filters]},
            "VisibilityConditions": [{"Key": f"Tags.{OWNER_TAG}", "Value": self.user}],
            "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": SEARCH_PAGE}
        found: list[dict[str, Any]] = []
        try:
            for _ in range(MAX_SEARCH_PAGES):
                page = self.sm.search(**request)
                found += [r["TrainingJob"] for r in page.get("Results", []) if "TrainingJob" in r]
                if not page.get("NextToken"):
                    break
                request["NextToken"] = page["NextToken"]
        except ClientError as exc:
            raise AwsConnectionError(explain_client_error(exc, "list your training jobs")) from None
        own_output = f"s3://{self.bucket}/{self.outputs_prefix}"
        return [job for job in found if job.get("OutputDataConfig", {}).get("S3OutputPath") == own_output]

    def training_job_request(self, spec: JobSpec, name: str, dataset_bytes: int = 0) -> dict[str, Any]:
        """The CreateTrainingJob request for ``spec`` (the volume sized for ``dataset_bytes``)."""
        dataset_uri = f"s3://{self.bucket}/{self.datasets.dataset_prefix(spec.dataset)}"
        request: dict[str, Any] = {
            "TrainingJobName": name,
            "HyperParameters": spec.hyperparameters,
            "AlgorithmSpecification": {"TrainingImage": self.image_uri, "TrainingInputMode": "File",
                                       "MetricDefinitions": metric_definitions()},
            "RoleArn": self.role_arn,
            "InputDataConfig": [{"ChannelName": TRAINING_CHANNEL, "InputMode": "File", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": dataset_uri, "S3DataDistributionType": "FullyReplicated"}}}],
            "OutputDataConfig": {"S3OutputPath": f"s3://{self.bucket}/{self.outputs_prefix}"},
            "ResourceConfig": {"InstanceType": spec.instance_type, "InstanceCount": spec.instance_count,
                               "VolumeSizeInGB": training_volume_gb(dataset_bytes)},
            "StoppingCondition": stopping_condition(spec),
            "Tags": [{"Key": OWNER_TAG, "Value": self.user}, {"Key": f"{APP_TAG}_dataset", "Value": spec.dataset},
                     {"Key": f"{APP_TAG}_app", "Value": "amc"}],
            "EnableNetworkIsolation": self.network_isolation,
        }
        if spec.hyperparameters.get("weights"):
            request["InputDataConfig"].append({"ChannelName": WEIGHTS_CHANNEL, "InputMode": "File", "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
                                 "S3Uri": f"s3://{self.bucket}/{self.weights_prefix}{spec.hyperparameters['weights']}"}}})
        if spec.spot:
            request["EnableManagedSpotTraining"] = True
            request["CheckpointConfig"] = {"S3Uri": f"s3://{self.bucket}/{self.outputs_prefix}{name}/checkpoints/",
                                           "LocalPath": str(MLPaths(Path(DEFAULT_ML_ROOT)).checkpoints)}
        return request

    def check_launch(self, spec: JobSpec) -> int:
        """Refuse what SageMaker would refuse or fail on (hyperparameters, instance, limits, dataset,
        weights, tag value) before anything starts; returns the stored dataset's bytes."""
        params = decode_hyperparameters(spec.hyperparameters)
        instance = get_instance(spec.instance_type)
        validate_instance_count(instance, spec.instance_count)
        stopping_condition(spec)
        manifest = self.datasets.manifest(check_dataset_name(spec.dataset))
        if manifest is None:
            raise DatasetError(f"No complete dataset named '{spec.dataset}' in s3://{self.bucket}/"
                               f"{self.datasets.prefix} (an unfinished upload resumes when run again)")
        dataset_bytes = int(manifest.get("bytes", 0))
        check_storage(instance, dataset_bytes)
        if not TAG_VALUE_PATTERN.match(self.user):
            raise AwsConnectionError(f"Your AWS user id '{self.user}' cannot be a SageMaker tag value (letters, digits "
                                     "and _ . : / = + - @ only; a role session name with a comma?): start a session "
                                     "whose name has none")
        if params["weights"] and not self._has_object(self.weights_prefix + params["weights"]):
            raise WeightsError(f"weights: '{params['weights']}' is not stored in s3://{self.bucket}/{self.weights_prefix}")
        return dataset_bytes

    def start_job(self, spec: JobSpec) -> JobDescription:
        dataset_bytes = self.check_launch(spec)
        params = decode_hyperparameters(spec.hyperparameters)
        instance = get_instance(spec.instance_type)
        name = check_job_name(spec.name) if spec.name else make_job_name(params["model"], spec.dataset, self.clock)
        marker = f"{self.outputs_prefix}{name}/{JOB_MARKER}"
        if self._job_folder_exists(name):
            raise FileExistsError(f"A training job named '{name}' already exists")
        self.check_quota(instance.name, spec.instance_count, spec.spot)
        # the marker first: a job this user started is in their list even if this process dies next
        self.s3.put_object(Bucket=self.bucket, Key=marker, Body=json.dumps(
            {"name": name, "dataset": spec.dataset, "created": self.clock()}).encode())
        try:
            self.sm.create_training_job(**self.training_job_request(spec, name, dataset_bytes))
        except ClientError as exc:
            self.s3.delete_object(Bucket=self.bucket, Key=marker)
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("ResourceInUse", "ValidationException") and "already exists" in str(exc):
                raise FileExistsError(f"A training job named '{name}' already exists") from None
            if code == "ResourceLimitExceeded":
                raise QuotaError(f"SageMaker refused the job: {exc.response['Error'].get('Message', '')}") from None
            raise AwsConnectionError(explain_client_error(exc, "start the training job")) from None
        return self.describe_job(name)

    def _job_folder_exists(self, name: str) -> bool:
        """Whether this user has a job of that name (another user's is found by SageMaker's refusal)."""
        prefix = f"{self.outputs_prefix}{name}/"
        return bool(self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1).get("Contents"))

    def describe_job(self, name: str) -> JobDescription:
        """DescribeTrainingJob, at most every ``min_poll_seconds`` for a running job, never again once ended."""
        cached = self._described.get(name)
        now = self.clock()
        if cached and (cached[1].is_terminal or now - cached[0] < self.min_poll_seconds):
            return cached[1]
        try:
            raw = self.sm.describe_training_job(TrainingJobName=name)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if (code in ("AccessDenied", "AccessDeniedException", "ResourceNotFound")
                    or "ValidationException" in str(exc)
                    or "not found" in str(exc).lower()):  # another user's job is denied: to this user it is not there
                raise JobNotFoundError(f"No training job named '{name}'") from None
            raise AwsConnectionError(explain_client_error(exc, "read the job's status")) from None
        if raw.get("OutputDataConfig", {}).get("S3OutputPath") != f"s3://{self.bucket}/{self.outputs_prefix}":
            raise JobNotFoundError(f"No training job named '{name}'")  # not one of this user's (IAM says the same)
        description = self._description(raw)
        self._described[name] = (now, description)
        return description

    def _description(self, raw: dict[str, Any]) -> JobDescription:
        resources = raw.get("ResourceConfig", {})
        uri = raw.get("InputDataConfig", [{}])[0].get("DataSource", {}).get("S3DataSource", {}).get("S3Uri", "")
        transitions = [StatusTransition(t["Status"], _ts(t.get("StartTime")) or 0.0, _ts(t.get("EndTime")),
                                        t.get("StatusMessage", "")) for t in raw.get("SecondaryStatusTransitions", [])]
        billable, training = raw.get("BillableTimeInSeconds"), raw.get("TrainingTimeInSeconds")
        extra: dict[str, Any] = {}
        if raw.get("EnableManagedSpotTraining") and billable and training:
            extra["spot_savings"] = round(1 - billable / training, 3)
        return JobDescription(
            name=raw["TrainingJobName"], status=raw["TrainingJobStatus"],
            secondary_status=raw.get("SecondaryStatus", ""),
            dataset=uri.rstrip("/").rsplit("/", 1)[-1], instance_type=resources.get("InstanceType", ""),
            instance_count=resources.get("InstanceCount", 1), hyperparameters=raw.get("HyperParameters", {}),
            created=_ts(raw.get("CreationTime")) or 0.0, started=_ts(raw.get("TrainingStartTime")),
            # a job that failed before training has no TrainingEndTime: it ended when it last changed
            ended=(_ts(raw.get("TrainingEndTime")) or _ts(raw.get("LastModifiedTime")))
            if raw["TrainingJobStatus"] in TERMINAL_STATUSES else None,
            failure_reason=raw.get("FailureReason", ""), transitions=transitions,
            spot=bool(raw.get("EnableManagedSpotTraining")), billable_seconds=billable,
            final_metrics=({m["MetricName"]: float(m["Value"]) for m in raw.get("FinalMetricDataList", [])}
                           if raw["TrainingJobStatus"] in ("Completed", "Failed", "Stopped") else None),
            tuning_job=raw.get("TuningJobArn", "").rsplit("/", 1)[-1],
            extra=extra,
        )

    def list_jobs(self) -> list[JobDescription]:
        """This user's jobs: one Search by their owner tag (a page per 100 jobs), not a request per job."""
        now, jobs = self.clock(), {}
        for raw in self._search_jobs():
            description = self._description(raw)
            jobs[description.name] = description
            self._described[description.name] = (now, description)
        for name in set(self._described) - set(jobs):  # Search's index trails a job just created by seconds
            jobs[name] = self.describe_job(name)
        return sorted(jobs.values(), key=lambda j: j.created, reverse=True)

    def stop_job(self, name: str) -> JobDescription:
        description = self.describe_job(name)
        if not description.is_terminal:
            self.sm.stop_training_job(TrainingJobName=name)
            self._described.pop(name, None)
        return self.describe_job(name)

    def read_logs(self, name: str, cursor: Any = None) -> LogChunk:
        """Every host's new lines since ``cursor`` (JSON: each stream's token and last event), merged by time."""
        job = self.describe_job(name)
        lines, cursor, more = self._follower.read(name, cursor, streams_expected(job), job.is_terminal)
        return LogChunk(lines=lines, cursor=cursor, finished=job.is_terminal and not lines and not more, more=more)

    def read_metrics(self, name: str) -> pd.DataFrame:
        lines, cursor, more = [], None, True
        while more:
            chunk = self.read_logs(name, cursor)
            lines += chunk.lines
            cursor, more = chunk.cursor, chunk.more
        return parse_metrics(lines)

    def log_group_arn(self) -> str:
        return f"arn:{self.info.partition}:logs:{self.region}:{self.info.account}:log-group:{TRAINING_LOG_GROUP}"

    def tail_logs(self, name: str, on_line: Callable[[str], None], cursor: Any = None) -> Any:
        """Stream the job's lines after ``cursor`` through CloudWatch Live Tail until the job ends (Live
        Tail is billed per minute and not in every account: an option; :meth:`read_logs` polls for free);
        returns the cursor after the last line, to poll on from (lines still arriving after the end)."""
        job = self.describe_job(name)
        return live_tail(self.logs, self.log_group_arn(), self._follower, name, cursor, on_line,
                         should_stop=lambda: self.describe_job(name).is_terminal,
                         expected=streams_expected(job), label=job.instance_count > 1)

    # --- tuning jobs (TunesHyperparameters, through sagemaker_tuning.py) -----------------------
    def tuning_cost(self, spec: TuningSpec) -> CostEstimate:
        """The most the whole tuning job costs at this region's price (max jobs x max hours, and spot)."""
        return self.tuning.cost(spec)

    # --- outputs ------------------------------------------------------------------------------
    def list_outputs(self) -> list[OutputInfo]:
        """This user's job outputs only (their prefix of the bucket)."""
        jobs: dict[str, dict[str, int]] = {}
        modified: dict[str, float] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.outputs_prefix):
            for obj in page.get("Contents", []):
                job, _, rest = obj["Key"][len(self.outputs_prefix):].partition("/")
                if rest in ("output/model.tar.gz", "output/output.tar.gz"):
                    jobs.setdefault(job, {})[rest.split("/")[-1]] = obj["Size"]
                    modified[job] = max(modified.get(job, 0.0), obj["LastModified"].timestamp())
        return sorted((OutputInfo(job, files, f"s3://{self.bucket}/{self.outputs_prefix}{job}/output", modified[job])
                       for job, files in jobs.items()), key=lambda o: o.modified or 0, reverse=True)

    def download_outputs(self, name: str, dest: Path, progress: ProgressCallback | None = None,
                         overwrite: bool = False) -> DownloadResult:
        output = next((o for o in self.list_outputs() if o.job_name == name), None)
        if output is None:
            raise JobNotFoundError(f"Training job '{name}' has no outputs (yet)")
        def fetch(file_name: str, local: Path, advance: Callable[[int], None]) -> None:
            self.s3.download_file(self.bucket, f"{self.outputs_prefix}{name}/output/{file_name}", str(local),
                                  Callback=advance)

        return download_outputs_into(dest, name, output.files, fetch, progress, overwrite)

    # --- endpoints ----------------------------------------------------------------------------
    def _model_data(self, job_name: str) -> str:
        output = next((o for o in self.list_outputs() if o.job_name == job_name and "model.tar.gz" in o.files), None)
        if output is None:
            raise JobNotFoundError(f"Training job '{job_name}' has no model to deploy (it has not completed)")
        return f"{output.location}/model.tar.gz"


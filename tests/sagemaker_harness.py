"""Plays SageMaker's part on top of a moto server on 127.0.0.1, for tests of the SageMaker backend.

moto stores training jobs but marks them Completed at once, has no StopTrainingJob and no
Service Quotas for SageMaker.  :class:`SageMakerEmulator` watches the jobs created in moto and runs
each with the real ``container/train`` on the channel downloaded from moto's S3, writes the
output lines into moto's CloudWatch Logs stream, syncs checkpoints, uploads model.tar.gz and
output.tar.gz, and moves the job through SageMaker's statuses in moto's own state.  Faults can be
injected: a spot interruption (the container is killed and the job restarts from its
checkpoints), a failing job, a stop.  A job of several instances runs one container per host
(``algo-1`` ...), each with its own /opt/ml and log stream, and their host names resolve only
after a delay (``host_delay``; never, for a job whose delay is None), as on SageMaker.

:class:`StrictLogs` makes a client's CloudWatch Logs as strict as AWS where moto is lenient:
forward tokens that expire after 24 h on an injectable clock, Live Tail sessions that deliver only
what is ingested after they start, sample above 500 events per update and time out; :class:`Throttle`
answers chosen operations with ThrottlingException at a set rate, for botocore's retries to absorb.

Where AWS is strict and moto is not, the emulator is strict too: CreateTrainingJob is refused
(ValidationException, as SageMaker words it) for a role that does not exist or does not trust
SageMaker, an image that is not registered (as an image missing from ECR), and values over the
API's documented limits; a channel whose S3 prefix holds no object fails the job.  It also
reports what the product did rather than what it decided itself: every CreateTrainingJob request
as it went over the wire (``requests``), the container's exit code per attempt (``exit_codes``).

Account scale: :meth:`SageMakerEmulator.add_history` fills the account with many finished or running
jobs of several users (straight into moto's state, not run), and the emulator plays SageMaker Search
(moto's ignores MaxResults, NextToken, VisibilityConditions and most operators) as the service model
documents it: at most 100 results a page, an opaque NextToken, tag and nested-property filters,
``In`` over comma-separated values, unknown properties refused.  :class:`FakeServiceQuotas` pages
ListServiceQuotas and answers GetServiceQuota by quota code; :class:`FakePricing` answers Price List
GetProducts in AWS's shape (each PriceList entry a JSON string).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EventStreamError
from moto.logs.models import logs_backends
from moto.sagemaker.models import sagemaker_backends
from moto.server import ThreadedMotoServer

from amc_widgets.core.container_contract import EXIT_COMPLETED, FAILURE_LIMIT, ML_ROOT_ENV, TRAINING_LOG_GROUP, MLPaths
from tests.conftest import free_port

ACCOUNT, REGION = "123456789012", "us-east-1"
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
REPO = Path(__file__).resolve().parent.parent


class MotoServer:
    """A moto server on loopback for the length of a test session."""

    def __init__(self):
        self.port = free_port()
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MotoServer:
        self.server.start()
        self.reset()
        return self

    def __exit__(self, *exc) -> None:
        self.reset()
        self.server.stop()

    def reset(self) -> None:
        """Forget every resource: moto keeps them per process, not per server, so without this one
        test module's role or bucket would still be there in the next module's server."""
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"),
                               timeout=30).close()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def ok_response() -> tuple[AWSResponse, dict]:
    """What a botocore before-call handler returns to answer a call itself."""
    return AWSResponse("http://127.0.0.1/", 200, {}, None), {"ResponseMetadata": {"HTTPStatusCode": 200}}


def error_response(code: str, message: str) -> tuple[AWSResponse, dict]:
    """What a before-call handler returns to refuse a call: the client raises the modelled exception."""
    return (AWSResponse("http://127.0.0.1/", 400, {}, None),
            {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}})


def json_error(code: str, message: str) -> AWSResponse:
    """An error as a JSON-protocol service (CloudWatch Logs, SageMaker) sends it over the wire: what a
    before-send handler returns, so botocore parses it and its retry handler sees it."""
    response = AWSResponse("http://127.0.0.1/", 400, {"Content-Type": "application/x-amz-json-1.1",
                                                      "x-amzn-RequestId": "harness"}, None)
    response._content = json.dumps({"__type": code, "message": message}).encode()
    return response


class Throttle:
    """Answers the first of every ``every[operation]`` requests of a client's chosen operations with
    ThrottlingException, as AWS does past an operation's rate (DescribeLogStreams: 5 per second
    for the whole account).  Works below botocore's retries, which must absorb it; ``throttled``
    counts per operation."""

    def __init__(self, every: dict[str, int]):
        self.every = dict(every)
        self.requests: dict[str, int] = {}
        self.throttled: dict[str, int] = {}

    def attach(self, client) -> Throttle:
        service = client.meta.service_model.service_id.hyphenize()
        for operation in self.every:
            client.meta.events.register(f"before-send.{service}.{operation}", self._send)
        return self

    def _send(self, event_name: str, **_) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        self.requests[operation] = self.requests.get(operation, 0) + 1
        if (self.requests[operation] - 1) % self.every[operation]:  # the first of every n is refused
            return None
        self.throttled[operation] = self.throttled.get(operation, 0) + 1
        return json_error("ThrottlingException", "Rate exceeded")


TOKEN_LIFETIME_SECONDS = 24 * 3600  # GetLogEvents: "The token expires after 24 hours."


class StrictLogs:
    """CloudWatch Logs on one client as AWS behaves where moto does not.

    GetLogEvents' tokens expire ``TOKEN_LIFETIME_SECONDS`` after they were first handed out, by
    ``clock`` (a test moves it); the same token handed out again at the end of a stream keeps its
    age, as on AWS.  StartLiveTail opens a :class:`LiveTailSession` (moto's sends the whole history at
    once and ends).  ``sessions`` keeps every session opened."""

    def __init__(self, clock=time.time, session_events: int | None = None, session_seconds: float | None = None,
                 sample_above: int = 500, update_seconds: float = 0.05):
        self.clock = clock
        self.session_options = {"max_events": session_events, "max_seconds": session_seconds,
                                "sample_above": sample_above, "update_seconds": update_seconds}
        self.issued: dict[tuple, float] = {}
        self.expired = 0  # requests refused for an expired token
        self.sessions: list[LiveTailSession] = []

    def attach(self, logs_client) -> StrictLogs:
        events = logs_client.meta.events
        events.register("before-call.logs.GetLogEvents", self._check_token)
        events.register("after-call.logs.GetLogEvents", self._issue_tokens)
        events.register("before-call.logs.StartLiveTail", self._start_live_tail)
        return self

    def _check_token(self, params, context, **_):
        body = json.loads(params["body"])
        key = (body["logStreamName"], body.get("startTime"))
        context["strict_logs_key"] = key
        token = body.get("nextToken")
        issued = self.issued.get((*key, token))
        if token and issued is not None and self.clock() - issued > TOKEN_LIFETIME_SECONDS:
            self.expired += 1
            return error_response("InvalidParameterException", "The specified nextToken has expired.")
        return None

    def _issue_tokens(self, http_response, parsed, context, **_):
        if http_response.status_code == 200 and "strict_logs_key" in context:
            for token in (parsed.get("nextForwardToken"), parsed.get("nextBackwardToken")):
                self.issued.setdefault((*context["strict_logs_key"], token), self.clock())

    def _start_live_tail(self, params, **_):
        body = json.loads(params["body"])
        group = body["logGroupIdentifiers"][0].rsplit(":log-group:", 1)[-1]
        session = LiveTailSession(group, body.get("logStreamNamePrefixes") or [""], **self.session_options)
        self.sessions.append(session)
        return ok_response()[0], {"responseStream": session, "ResponseMetadata": {"HTTPStatusCode": 200}}


class LiveTailSession:
    """One Live Tail session as AWS streams it: a sessionStart, then every ``update_seconds`` a
    sessionUpdate with the events ingested since the session began and not sent yet (empty or not),
    at most ``sample_above`` of them with ``sampled`` set when there were more (the rest are never
    sent); after ``max_events`` events or ``max_seconds``, SessionTimeoutException, as botocore raises
    an error event of the stream.  ``close()`` ends it, as botocore's EventStream does."""

    def __init__(self, group: str, prefixes: list[str], max_events: int | None, max_seconds: float | None,
                 sample_above: int, update_seconds: float):
        self.group, self.prefixes = group, prefixes
        self.max_events, self.max_seconds = max_events, max_seconds
        self.sample_above, self.update_seconds = sample_above, update_seconds
        self.started = time.time()
        self.sent_ids: set[str] = set()
        self.sent = self.updates = 0
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def _new_events(self) -> list[dict]:
        group = logs_backends[ACCOUNT][REGION].groups[self.group]
        found = []
        for name, stream in list(group.streams.items()):
            if any(name.startswith(prefix) for prefix in self.prefixes):
                found += [(event, name) for event in list(stream.events)
                          if event.ingestion_time >= self.started * 1000 and event.event_id not in self.sent_ids]
        found.sort(key=lambda item: (item[0].ingestion_time, item[0].timestamp))
        self.sent_ids.update(event.event_id for event, _ in found)
        return [{"logStreamName": name, "logGroupIdentifier": self.group, "message": event.message,
                 "timestamp": event.timestamp, "ingestionTime": event.ingestion_time} for event, name in found]

    def __iter__(self):
        yield {"sessionStart": {"logGroupIdentifiers": [self.group], "logStreamNamePrefixes": self.prefixes}}
        while not self.closed:
            time.sleep(self.update_seconds)
            events = self._new_events()
            sampled = len(events) > self.sample_above
            events = events[:self.sample_above]
            self.sent += len(events)
            self.updates += 1
            yield {"sessionUpdate": {"sessionMetadata": {"sampled": sampled}, "sessionResults": events}}
            if ((self.max_events is not None and self.sent >= self.max_events)
                    or (self.max_seconds is not None and time.time() - self.started >= self.max_seconds)):
                raise EventStreamError({"Error": {"Code": "SessionTimeoutException",
                                                  "Message": "Live Tail session timed out after 3 hours"}},
                                       "StartLiveTail")


def create_running_job(backend, name: str, instance_count: int = 1) -> None:
    """A training job created in moto by ``backend``'s own request, InProgress and running nothing:
    its test writes its log (:func:`write_log`) and moves it on (:func:`hold_job`)."""
    from amc_widgets.core.jobs import JobSpec

    spec = JobSpec(dataset="logs", hyperparameters={"model": "yolov5n"}, name=name, instance_count=instance_count,
                   instance_type="ml.g4dn.xlarge" if instance_count > 1 else "ml.m5.large")
    sagemaker_client = backend._client("sagemaker")
    sagemaker_client.create_training_job(**backend.training_job_request(spec, name))
    hold_job(name, "InProgress", "Training", ["Starting", "Downloading", "Training"])


def write_log(logs, stream: str, messages: list[str], timestamps: list[int] | None = None) -> None:
    """Events into ``stream`` of the training log group (made if missing), as the job's host writes
    them; ``timestamps`` in ms, now by default.  In batches, as CloudWatch takes them."""
    try:
        logs.create_log_stream(logGroupName=TRAINING_LOG_GROUP, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    now = int(time.time() * 1000)
    times = timestamps or [now] * len(messages)
    for start in range(0, len(messages), 5000):
        logs.put_log_events(logGroupName=TRAINING_LOG_GROUP, logStreamName=stream, logEvents=[
            {"timestamp": t, "message": m} for t, m in zip(times[start:start + 5000], messages[start:start + 5000])])


def hold_job(name: str, status: str, secondary: str, transitions: list[str] | None = None) -> None:
    """Put a job created in moto in a status (moto says Completed at once), with secondary status
    transitions of those names: for tests that write its log themselves, without a container."""
    job = sagemaker_backends[ACCOUNT][REGION].training_jobs[name]
    now = _now()
    job.training_job_status, job.secondary_status = status, secondary
    job.secondary_status_transitions = [{"Status": t, "StartTime": now} for t in (transitions or [secondary])]
    job.training_end_time = now if status in ("Completed", "Failed", "Stopped") else None


CONTAINER_TRAIN = [sys.executable, str(REPO / "container" / "train")]
IN_THIS_THREAD = TransferConfig(use_threads=False)  # a job's transfers run in its thread: see job_of_this_thread
JOB_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
# CreateTrainingJob's documented limits (SageMaker API reference)
MAX_HYPERPARAMETERS, MAX_HYPERPARAMETER_KEY, MAX_HYPERPARAMETER_VALUE = 100, 256, 2500
MAX_TAGS, MAX_INSTANCE_COUNT = 50, 20
MAX_RUNTIME_SECONDS = 28 * 24 * 3600


def validation_error(message: str) -> ClientError:
    """The error SageMaker answers a request it refuses with."""
    return ClientError({"Error": {"Code": "ValidationException", "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, "CreateTrainingJob")


def search_error(message: str) -> ClientError:
    return ClientError({"Error": {"Code": "ValidationException", "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, "Search")


TRAINING_JOB_PROPERTIES = {"TrainingJobName", "TrainingJobArn", "TrainingJobStatus", "SecondaryStatus",
                           "CreationTime", "LastModifiedTime", "TrainingStartTime", "TrainingEndTime",
                           "ResourceConfig", "EnableManagedSpotTraining", "RoleArn", "OutputDataConfig",
                           "AlgorithmSpecification", "HyperParameters", "StoppingCondition", "FailureReason",
                           "TuningJobArn"}


def _property(job: dict, name: str, known: set[str] = TRAINING_JOB_PROPERTIES):
    """The value a Search filter names: ``Tags.<key>``, a top-level property (one of ``known``) or a nested one."""
    if name.startswith("Tags."):
        return next((t["Value"] for t in job.get("Tags", []) if t["Key"] == name[5:]), None)
    head, *rest = name.split(".")
    if head not in known:
        raise search_error(f"Unknown property name: {name}")
    value = job.get(head)
    for part in rest:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _matches(job: dict, condition: dict, known: set[str] = TRAINING_JOB_PROPERTIES) -> bool:
    value, wanted = _property(job, condition["Name"], known), condition.get("Value")
    operator = condition.get("Operator", "Equals")
    text = str(value).lower() if isinstance(value, bool) else (None if value is None else str(value))
    if operator == "Equals":
        return text == wanted
    if operator == "NotEquals":
        return text != wanted
    if operator == "In":
        return text in wanted.split(",")
    if operator == "Exists":
        return value is not None
    if operator == "NotExists":
        return value is None
    if operator == "Contains":
        return text is not None and wanted in text
    raise search_error(f"The harness does not play the {operator} operator")


def _visible(job: dict, condition: dict, known: set[str] = TRAINING_JOB_PROPERTIES) -> bool:
    """VisibilityConditions: a job carrying the tag must have that value; one without it is kept."""
    value = _property(job, condition["Key"], known)
    return value is None or value == condition["Value"]


class SageMakerEmulator:
    """Runs the training jobs created in moto with the real container, as SageMaker would.

    ``images`` maps an image URI to the command that plays that image (the registry: a job naming
    any other image is refused).  Each command runs with ``AMC_ML_ROOT`` set to the job's /opt/ml.
    """

    def __init__(self, client, workdir: Path, images: dict[str, list[str]]):
        self.client = client  # factory: service name -> boto3 client on the moto endpoint
        self.s3, self.sm, self.logs, self.iam = client("s3"), client("sagemaker"), client("logs"), client("iam")
        self.workdir = workdir
        self.images = dict(images)
        self.requests: dict[str, dict] = {}  # job name -> the CreateTrainingJob body as sent
        self.exit_codes: dict[str, list[int]] = {}  # job name -> the container's exit code per attempt
        self.final_metrics: dict[str, dict[str, float]] = {}  # job -> last value of each MetricDefinition
        self.epoch_metrics: dict[str, list[dict[str, float]]] = {}  # job -> those values after each epoch
        self.tuner = None  # a tests.sagemaker_tuner.TunerEmulator plays the tuning requests and their Search
        self.stop_requests: set[str] = set()
        self.interrupt_after_epoch: dict[str, int] = {}  # job -> epoch after which the spot instance "vanishes"
        self.processes: dict[str, list[subprocess.Popen]] = {}  # job -> its containers, one per host
        # Host names of a multi-host job resolve this many seconds after its containers start, as on
        # SageMaker where algo-N can take minutes (None: never); per job, else ``host_delay``.
        self.host_delay = 1.0
        self.host_delays: dict[str, float | None] = {}
        self.container_env: dict[str, dict[str, str]] = {}  # job -> extra environment of its containers
        self.fail_before_start: dict[str, str] = {}  # job -> reason it fails while Starting (no capacity, ...)
        self.history: set[str] = set()  # seeded jobs: in moto's state, never run
        self.threads: dict[str, threading.Thread] = {}
        self._claimed: set[str] = set()
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._thread_job = threading.local()
        self.logs_dropped = 0
        self.search_requests: list[dict] = []  # every Search the product made, as sent

    # --- plumbing -----------------------------------------------------------------------------
    def start(self) -> SageMakerEmulator:
        try:
            self.logs.create_log_group(logGroupName=TRAINING_LOG_GROUP)
        except self.logs.exceptions.ResourceAlreadyExistsException:
            pass
        self._watcher.start()
        return self

    def close(self) -> None:
        self._stopped.set()
        for processes in self.processes.values():
            for process in processes:
                if process.poll() is None:
                    process.kill()
        for thread in self.threads.values():
            thread.join(timeout=30)

    def attach(self, sagemaker_client) -> None:
        """Hook the backend's client: CreateTrainingJob is checked as SageMaker checks it and recorded,
        a created job is InProgress at once (moto would say Completed), and StopTrainingJob (which moto
        lacks) is answered here."""
        sagemaker_client.meta.events.register("before-call.sagemaker.CreateTrainingJob", self._receive)
        sagemaker_client.meta.events.register("after-call.sagemaker.CreateTrainingJob",
                                              lambda **kw: self._claim_pending())

        def stop(params, **_):  # before-call: params is the serialized request
            name = json.loads(params["body"])["TrainingJobName"]
            self.stop_requests.add(name)
            if self._job(name).training_job_status == "InProgress":
                self._set(name, "Stopping", "Stopping", "Stop requested")
            return ok_response()

        sagemaker_client.meta.events.register("before-call.sagemaker.StopTrainingJob", stop)
        sagemaker_client.meta.events.register("before-call.sagemaker.Search",
                                              lambda params, **_: (ok_response()[0], self.search(
                                                  json.loads(params["body"]))))

    def _receive(self, params, **_) -> None:
        """before-call: ``params['body']`` is the request exactly as it goes over the wire."""
        body = json.loads(params["body"])
        self.check_create_request(body)
        self.requests[body["TrainingJobName"]] = body
        self._pending.add(body["TrainingJobName"])

    def check_create_request(self, body: dict) -> None:
        """Refuse what SageMaker refuses at CreateTrainingJob (raises the ValidationException)."""
        name = body["TrainingJobName"]
        if not JOB_NAME_PATTERN.match(name):
            raise validation_error(f"Training job name '{name}' does not match {JOB_NAME_PATTERN.pattern}")
        if not self._role_trusts_sagemaker(body.get("RoleArn", "")):
            raise validation_error(f"Could not assume role {body.get('RoleArn')}. Please ensure that the role exists "
                                   "and allows principal 'sagemaker.amazonaws.com' to assume the role.")
        image = body["AlgorithmSpecification"].get("TrainingImage", "")
        if image not in self.images:
            raise validation_error(f"Requested image {image} not found.")
        hyperparameters = body.get("HyperParameters", {})
        if len(hyperparameters) > MAX_HYPERPARAMETERS:
            raise validation_error(f"{len(hyperparameters)} hyperparameters; at most {MAX_HYPERPARAMETERS}")
        for key, value in hyperparameters.items():
            if not isinstance(value, str) or len(key) > MAX_HYPERPARAMETER_KEY or len(value) > MAX_HYPERPARAMETER_VALUE:
                raise validation_error(f"Hyperparameter {key!r}: keys and values are strings of at most "
                                       f"{MAX_HYPERPARAMETER_KEY} and {MAX_HYPERPARAMETER_VALUE} characters")
        if len(body.get("Tags", [])) > MAX_TAGS:
            raise validation_error(f"At most {MAX_TAGS} tags")
        if not 1 <= body["ResourceConfig"]["InstanceCount"] <= MAX_INSTANCE_COUNT:
            raise validation_error(f"InstanceCount must be 1..{MAX_INSTANCE_COUNT}")
        stopping = body.get("StoppingCondition", {})
        runtime, wait = stopping.get("MaxRuntimeInSeconds", 86400), stopping.get("MaxWaitTimeInSeconds")
        if not 1 <= runtime <= MAX_RUNTIME_SECONDS:
            raise validation_error(f"MaxRuntimeInSeconds must be 1..{MAX_RUNTIME_SECONDS} (28 days)")
        if wait is not None and (not body.get("EnableManagedSpotTraining") or wait < runtime):
            raise validation_error("MaxWaitTimeInSeconds is for managed spot training, and must be equal to or "
                                   "greater than MaxRuntimeInSeconds")
        if body.get("EnableManagedSpotTraining") and wait is None:
            raise validation_error("Managed spot training needs MaxWaitTimeInSeconds")
        if body["ResourceConfig"].get("VolumeSizeInGB", 1) < 1:
            raise validation_error("VolumeSizeInGB must be at least 1")
        for channel in body.get("InputDataConfig", []):
            if not channel["DataSource"]["S3DataSource"]["S3Uri"].startswith("s3://"):
                raise validation_error("S3Uri must start with s3://")

    def _role_trusts_sagemaker(self, arn: str) -> bool:
        try:
            role = self.iam.get_role(RoleName=arn.rsplit("/", 1)[-1])["Role"]
        except ClientError:
            return False
        document = role.get("AssumeRolePolicyDocument", {})
        if isinstance(document, str):
            document = json.loads(urllib.parse.unquote(document))
        trusted = [s.get("Principal", {}).get("Service", []) for s in document.get("Statement", [])
                   if s.get("Effect") == "Allow" and "sts:AssumeRole" in json.dumps(s.get("Action"))]
        return role["Arn"] == arn and any("sagemaker.amazonaws.com" in ([t] if isinstance(t, str) else t)
                                          for t in trusted)

    def job_of_this_thread(self) -> str | None:
        """The job whose S3 and log requests this thread is making: what SageMaker does with the job's
        execution role (the IAM tests record them as that role's)."""
        return getattr(self._thread_job, "name", None)

    def _claim_pending(self) -> None:
        for name in list(self._pending):
            self._pending.discard(name)
            self._claim(name)

    def _claim(self, name: str) -> None:
        with self._lock:
            if name in self.threads or name in self.history or (
                    name not in sagemaker_backends[ACCOUNT][REGION].training_jobs):
                return
            self._set(name, "InProgress", "Starting", "Preparing the instances for training")
            thread = threading.Thread(target=self._run, args=(name,), daemon=True)
            self.threads[name] = thread
            thread.start()

    def _watch(self) -> None:
        while not self._stopped.is_set():
            for name in list(sagemaker_backends[ACCOUNT][REGION].training_jobs):
                self._claim(name)
            self._stopped.wait(0.1)

    def _job(self, name: str):
        return sagemaker_backends[ACCOUNT][REGION].training_jobs[name]

    def _set(self, name: str, status: str, secondary: str, message: str, **attributes) -> None:
        job = self._job(name)
        now = _now()
        if name not in self._claimed:  # replace moto's instant "Completed" record
            self._claimed.add(name)
            job.secondary_status_transitions = []
            job.training_start_time = job.training_end_time = None
            job.final_metric_data_list = []  # moto's stand-in "train:progress"
        transitions = job.secondary_status_transitions
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = now
        transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})
        job.training_job_status, job.secondary_status, job.last_modified_time = status, secondary, now
        for key, value in attributes.items():
            setattr(job, key, value)

    # --- one job ------------------------------------------------------------------------------
    def _download_prefix(self, uri: str, dest: Path) -> int:
        """Every object under ``uri`` into ``dest``; returns how many there were.  A URI that names one
        object whole puts that file in ``dest`` under its own name, as SageMaker does."""
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        count = 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                target = dest / (obj["Key"][len(prefix):].lstrip("/") or obj["Key"].rsplit("/", 1)[-1])
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(bucket, obj["Key"], str(target), Config=IN_THIS_THREAD)
                count += 1
        return count

    def _upload_folder(self, folder: Path, uri: str) -> None:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.endswith(".partial"):
                self.s3.upload_file(str(path), bucket, f"{prefix.rstrip('/')}/{path.relative_to(folder).as_posix()}",
                                    Config=IN_THIS_THREAD)

    def _layout(self, name: str, job: dict, attempt: int, host: str, hosts: list[str]) -> Path:
        root = self.workdir / name / f"attempt-{attempt}" / host / "ml"
        paths = MLPaths(root)
        paths.config_dir.mkdir(parents=True)
        paths.hyperparameters.write_text(json.dumps(job.get("HyperParameters", {})))
        instance_type = job["ResourceConfig"]["InstanceType"]
        paths.resourceconfig.write_text(json.dumps({  # as SageMaker writes it
            "current_host": host, "current_instance_type": instance_type, "current_group_name": "homogeneousCluster",
            "hosts": hosts, "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                                 "instance_type": instance_type, "hosts": hosts}],
            "network_interface_name": "lo"}))
        channels = {c["ChannelName"]: {"TrainingInputMode": "File"} for c in job["InputDataConfig"]}
        paths.inputdataconfig.write_text(json.dumps(channels))
        for channel in job["InputDataConfig"]:
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            if not self._download_prefix(uri, paths.channel(channel["ChannelName"])):
                raise ChannelError(f"ClientError: No S3 objects found under S3 URL \"{uri}\" given in input data "
                                   f"source. Please ensure that the bucket exists in the selected region ({REGION}), "
                                   "that objects exist under that S3 prefix, and that the role has s3:ListBucket "
                                   "permissions on the bucket.")
        if job.get("CheckpointConfig"):
            self._download_prefix(job["CheckpointConfig"]["S3Uri"], paths.checkpoints)
        return root

    def _stream_output(self, name: str, process: subprocess.Popen, stream: str, root: Path, job: dict,
                       master: bool = True) -> None:
        """Copy one host's lines into CloudWatch; on the master, sync checkpoints after each epoch."""
        self.logs.create_log_stream(logGroupName=TRAINING_LOG_GROUP, logStreamName=stream)
        sent = self.requests.get(name, {}).get("AlgorithmSpecification", {})  # moto answers a stand-in of its own
        definitions = [(d["Name"], re.compile(d["Regex"])) for d in sent.get("MetricDefinitions", [])]
        final = self.final_metrics.setdefault(name, {})
        epochs = 0
        for raw in process.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            if not line.strip():
                continue  # CloudWatch takes no empty events
            self.logs.put_log_events(logGroupName=TRAINING_LOG_GROUP, logStreamName=stream,
                                     logEvents=[{"timestamp": int(time.time() * 1000), "message": line}])
            for metric, regex in definitions:  # what SageMaker does with MetricDefinitions
                found = regex.search(line)
                if found:
                    final[metric] = float(found.group(1))
            if master and line.startswith("[amc-metrics]"):
                epochs += 1
                self.epoch_metrics.setdefault(name, []).append(dict(final))
                if job.get("CheckpointConfig"):
                    self._upload_folder(MLPaths(root).checkpoints, job["CheckpointConfig"]["S3Uri"])
                if self.interrupt_after_epoch.get(name) == epochs:
                    del self.interrupt_after_epoch[name]
                    for host_process in self.processes[name]:
                        host_process.kill()  # the spot instances are taken back: no SIGTERM, no goodbye
                    self._set(name, "InProgress", "Interrupted", "Spot capacity reclaimed; restarting")

    def _run(self, name: str) -> None:
        self._thread_job.name = name
        try:
            self._run_attempts(name)
        except ChannelError as exc:  # before training: SageMaker gives no TrainingStartTime or TrainingEndTime
            self._set(name, "Failed", "Failed", "Training job failed", failure_reason=str(exc))
        except Exception as exc:  # a harness fault must end the job, not hang the test
            self._set(name, "Failed", "Failed", "Harness error", failure_reason=f"harness: {exc!r}")
            raise

    def _run_attempts(self, name: str) -> None:
        job = self.sm.describe_training_job(TrainingJobName=name)
        hosts = [f"algo-{i}" for i in range(1, job["ResourceConfig"]["InstanceCount"] + 1)]
        started = time.time()
        attempt = 0
        if name in self.fail_before_start:
            raise ChannelError(self.fail_before_start[name])
        while True:
            attempt += 1
            self._set(name, "InProgress", "Downloading", "Downloading input data")
            roots = {host: self._layout(name, job, attempt, host, hosts) for host in hosts}
            self._set(name, "InProgress", "Training", "Training image download completed. Training in progress.",
                      training_start_time=_now())
            env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.container_env.get(name, {})}
            if len(hosts) > 1:
                env.update(AMC_HOSTS_FILE=str(self._hosts_file(name, attempt, hosts)), AMC_MASTER_PORT=str(free_port()))
            command = self.images[job["AlgorithmSpecification"]["TrainingImage"]]
            processes = [subprocess.Popen(command, env={**env, ML_ROOT_ENV: str(roots[host])}, stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT) for host in hosts]
            self.processes[name] = processes
            for process in processes:
                if name in self.stop_requests:
                    process.send_signal(signal.SIGTERM)
                threading.Thread(target=self._forward_stop, args=(name, process), daemon=True).start()
            streams = [threading.Thread(target=self._stream_host, daemon=True,
                                        args=(name, process, f"{name}/{host}-{int(time.time())}-{attempt}", roots[host],
                                              job, False))
                       for host, process in zip(hosts[1:], processes[1:])]
            for thread in streams:
                thread.start()
            self._stream_output(name, processes[0], f"{name}/{hosts[0]}-{int(time.time())}-{attempt}", roots[hosts[0]],
                                job)
            for thread in streams:
                thread.join()
            codes = [process.wait() for process in processes]
            # the job's code: the first host that failed, else the master's (it saves the model)
            host, code = next(((h, c) for h, c in zip(hosts, codes) if c != EXIT_COMPLETED), (hosts[0], codes[0]))
            self.exit_codes.setdefault(name, []).append(code)
            if code == -signal.SIGKILL and name not in self.stop_requests and not self._stopped.is_set():
                continue  # spot interruption: start again from the checkpoints
            break
        self._finish(name, job, roots[hosts[0]], code, started, failure_root=roots[host])

    def _stream_host(self, name: str, *args) -> None:
        """:meth:`_stream_output` in a thread of its own, its requests made as the job's."""
        self._thread_job.name = name
        self._stream_output(name, *args)

    def _hosts_file(self, name: str, attempt: int, hosts: list[str]) -> Path:
        """An empty hosts file for the job's containers (AMC_HOSTS_FILE), filled in after the job's
        host delay: the names resolve only from then on."""
        path = self.workdir / name / f"attempt-{attempt}" / "hosts"
        path.write_text("")
        delay = self.host_delays.get(name, self.host_delay)
        if delay is not None:
            def publish():
                partial = path.with_name("hosts.partial")
                partial.write_text("".join(f"127.0.0.1 {host}\n" for host in hosts))
                os.replace(partial, path)

            timer = threading.Timer(delay, publish)
            timer.daemon = True
            timer.start()
        return path

    def _forward_stop(self, name: str, process: subprocess.Popen) -> None:
        while process.poll() is None:
            if name in self.stop_requests:
                process.send_signal(signal.SIGTERM)
                return
            time.sleep(0.1)

    def _finish(self, name: str, job: dict, root: Path, code: int, started: float,
                failure_root: Path | None = None) -> None:
        output = f"{job['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/output"
        bucket, _, prefix = output.removeprefix("s3://").partition("/")
        paths = MLPaths(root)
        if paths.model_dir.is_dir() and any(paths.model_dir.iterdir()):
            self._set(name, self._job(name).training_job_status, "Uploading", "Uploading generated training model")
            for folder, archive in ((paths.model_dir, "model.tar.gz"), (paths.output_data_dir, "output.tar.gz")):
                if folder.is_dir():
                    packed = root.parent / archive
                    with tarfile.open(packed, "w:gz") as tar:
                        for path in sorted(folder.rglob("*")):
                            if path.is_file():
                                tar.add(path, arcname=path.relative_to(folder).as_posix())
                    self.s3.upload_file(str(packed), bucket, f"{prefix}/{archive}", Config=IN_THIS_THREAD)
        seconds = int(time.time() - started) + 1
        times = {"training_end_time": _now(), "training_time_in_seconds": seconds,
                 "billable_time_in_seconds": max(1, seconds // 3) if job.get("EnableManagedSpotTraining") else seconds,
                 "final_metric_data_list": [{"MetricName": metric, "Value": value, "Timestamp": _now()}
                                            for metric, value in self.final_metrics.get(name, {}).items()]}
        if name in self.stop_requests:
            self._set(name, "Stopped", "Stopped", "Training job stopped", **times)
        elif code == EXIT_COMPLETED:
            self._set(name, "Completed", "Completed", "Training job completed", **times)
        else:
            failure = MLPaths(failure_root or root).failure_file
            reason = failure.read_text()[:FAILURE_LIMIT] if failure.exists() else f"AlgorithmError: exit code {code}"
            self._set(name, "Failed", "Failed", "Training job failed", failure_reason=reason, **times)
        self._job(name).secondary_status_transitions[-1]["EndTime"] = _now()


    # --- account scale ------------------------------------------------------------------------
    def add_history(self, name: str, owner: str, output_path: str, status: str = "Completed",
                    instance_type: str = "ml.m5.large", count: int = 1, spot: bool = False,
                    created: datetime | None = None) -> None:
        """One job of an account's history, straight into moto's state (fast; never run): tagged with
        ``owner`` as AMC tags jobs, in any status (``Stopping`` included)."""
        created = created or _now()
        job = sagemaker_backends[ACCOUNT][REGION].create_training_job(
            training_job_name=name, hyper_parameters={}, role_arn=f"arn:aws:iam::{ACCOUNT}:role/amc/history",
            algorithm_specification={"TrainingImage": "history", "TrainingInputMode": "File"},
            input_data_config=[{"ChannelName": "training", "DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"{output_path}history/"}}}],
            output_data_config={"S3OutputPath": output_path},
            resource_config={"InstanceType": instance_type, "InstanceCount": count, "VolumeSizeInGB": 50},
            vpc_config=None, stopping_condition={"MaxRuntimeInSeconds": 3600},
            tags=[{"Key": "amc_user", "Value": owner}], enable_network_isolation=False,
            enable_inter_container_traffic_encryption=False, enable_managed_spot_training=spot,
            checkpoint_config=None, debug_hook_config=None, debug_rule_configurations=None,
            tensor_board_output_config=None, experiment_config=None)
        self.history.add(name)
        job.creation_time = job.last_modified_time = job.training_start_time = created
        job.training_job_status = job.secondary_status = status
        job.training_end_time = created if status in ("Completed", "Failed", "Stopped") else None

    def search(self, body: dict) -> dict:
        """SageMaker Search over moto's training jobs, as the service model documents it (strict where
        moto is lenient: MaxResults 1-100, default 10; NextToken; VisibilityConditions; ``In``)."""
        if body.get("Resource") == "HyperParameterTuningJob" and self.tuner is not None:
            self.search_requests.append(body)
            return self.tuner.search(body)
        if body.get("Resource") != "TrainingJob":
            raise search_error(f"Resource {body.get('Resource')!r}: this harness plays TrainingJob only")
        page = body.get("MaxResults", 10)
        if not 1 <= page <= 100:
            raise search_error(f"Value '{page}' at 'maxResults' failed to satisfy constraint: "
                               "Member must have value less than or equal to 100")
        filters = body.get("SearchExpression", {}).get("Filters", [])
        if not filters and not body.get("SearchExpression", {}).get("SubExpressions"):
            raise search_error("A SearchExpression needs at least one filter")
        jobs = [job.response_object for job in sagemaker_backends[ACCOUNT][REGION].training_jobs.values()]
        jobs = [job for job in jobs if all(_matches(job, f) for f in filters)
                and all(_visible(job, c) for c in body.get("VisibilityConditions", []))]
        sort_by = body.get("SortBy", "LastModifiedTime")
        if sort_by not in ("LastModifiedTime", "CreationTime", "TrainingJobName", "TrainingJobStatus"):
            raise search_error(f"Cannot sort by {sort_by!r}")
        jobs.sort(key=lambda job: (job.get(sort_by) is None, job.get(sort_by)),
                  reverse=body.get("SortOrder", "Descending") == "Descending")
        start = 0
        if body.get("NextToken"):
            try:
                start = int(body["NextToken"].removeprefix("search-offset-"))
            except ValueError:
                raise search_error("Invalid NextToken") from None
        self.search_requests.append(body)
        found = jobs[start:start + page]
        answer: dict = {"Results": [{"TrainingJob": job} for job in found]}
        if start + page < len(jobs):
            answer["NextToken"] = f"search-offset-{start + page}"
        return answer


class ChannelError(RuntimeError):
    """An input channel SageMaker could not download: the job fails with this reason."""


class FakeServiceQuotas:
    """Service Quotas for SageMaker, which moto lacks: set values per quota name (each gets a stable
    code, ``L-...``, as AWS gives every quota one).  ListServiceQuotas pages as AWS does (MaxResults
    1-100, NextToken; ``other_quotas`` more quotas around ours, as a real account has hundreds);
    GetServiceQuota answers by code.  ``on_request`` (operation, parameters) hears each request, as
    botocore's event hooks would; ``calls`` counts them by operation."""

    def __init__(self, values: dict[str, float], on_request=None, other_quotas: int = 250):
        self.values, self.on_request = values, on_request
        self.other_quotas = other_quotas
        self.calls: dict[str, int] = {}

    @staticmethod
    def code(name: str) -> str:
        return "L-" + hashlib.sha256(name.encode()).hexdigest()[:8].upper()

    def _heard(self, operation: str, params: dict) -> None:
        self.calls[operation] = self.calls.get(operation, 0) + 1
        if self.on_request:
            self.on_request(operation, params)

    def _quota(self, name: str, value: float) -> dict:
        return {"ServiceCode": "sagemaker", "QuotaName": name, "QuotaCode": self.code(name), "Value": value}

    def list_service_quotas(self, **params) -> dict:
        self._heard("ListServiceQuotas", params)
        page = params.get("MaxResults", 100)
        if params.get("ServiceCode") != "sagemaker" or not 1 <= page <= 100:
            raise _quota_error("ValidationException", "ServiceCode sagemaker, MaxResults 1-100")
        quotas = [self._quota(f"ml.other{i}.xlarge for endpoint usage", 2) for i in range(self.other_quotas)]
        quotas[len(quotas) // 2:len(quotas) // 2] = [self._quota(n, v) for n, v in self.values.items()]
        start = int(params.get("NextToken") or 0)
        answer = {"Quotas": quotas[start:start + page]}
        if start + page < len(quotas):
            answer["NextToken"] = str(start + page)
        return answer

    def get_service_quota(self, **params) -> dict:
        self._heard("GetServiceQuota", params)
        for name, value in self.values.items():
            if params.get("ServiceCode") == "sagemaker" and params.get("QuotaCode") == self.code(name):
                return {"Quota": self._quota(name, value)}
        raise _quota_error("NoSuchResourceException", f"No quota {params.get('QuotaCode')}")


def _quota_error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}},
                       "ServiceQuotas")


class FakePricing:
    """The AWS Price List API (GetProducts) for SageMaker, which moto lacks: ``prices`` maps (region code,
    instance type) to the on-demand training USD per hour.  Each product is answered in AWS's shape, one
    JSON string per PriceList entry, beside decoys the filters must keep out (the same instance for
    hosting, and a spot usage type).  Filters are TERM_MATCH on product attributes, MaxResults 1-100;
    ``reachable=False`` plays a machine without network; ``on_request`` hears each request."""

    def __init__(self, prices: dict[tuple[str, str], float], on_request=None):
        self.prices, self.on_request = prices, on_request
        self.requests: list[dict] = []
        self.reachable = True

    @staticmethod
    def product(region: str, instance: str, component: str, usd: float, usage: str = "Train") -> str:
        sku = f"{region}-{instance}-{component}-{usage}".upper().replace(".", "")
        return json.dumps({
            "product": {"productFamily": "ML Instance", "sku": sku, "attributes": {
                "servicecode": "AmazonSageMaker", "regionCode": region, "instanceType": instance,
                "component": component, "usagetype": f"{region.upper()[:4]}-{usage}:{instance}"}},
            "serviceCode": "AmazonSageMaker",
            "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {"sku": sku, "priceDimensions": {
                f"{sku}.JRTCKXETXF.6YS6EN2CT7": {"unit": "Hrs", "pricePerUnit": {"USD": f"{usd:.10f}"},
                                                 "description": f"${usd} per {component} hour"}}}}},
            "publicationDate": "2026-11-01T00:00:00Z"})

    def get_products(self, **params) -> dict:
        if self.on_request:
            self.on_request("GetProducts", params)
        self.requests.append(params)
        if not self.reachable:
            from botocore.exceptions import EndpointConnectionError

            raise EndpointConnectionError(endpoint_url="https://api.pricing.us-east-1.amazonaws.com")
        if params.get("ServiceCode") != "AmazonSageMaker" or not 1 <= params.get("MaxResults", 100) <= 100:
            raise _quota_error("ValidationException", "ServiceCode AmazonSageMaker, MaxResults 1-100")
        products = []
        for (region, instance), usd in self.prices.items():
            products += [self.product(region, instance, "Training", usd),
                         self.product(region, instance, "Hosting", usd * 1.5, "Host"),
                         self.product(region, instance, "Training", usd * 0.3, "Spot-Train")]
        terms = {f["Field"]: f["Value"] for f in params.get("Filters", []) if f.get("Type") == "TERM_MATCH"}
        found = [p for p in products if all(json.loads(p)["product"]["attributes"].get(field) == value
                                            for field, value in terms.items())]
        return {"FormatVersion": "aws_v1", "PriceList": found}


def moto_client_factory(endpoint: str, quotas: FakeServiceQuotas | None = None, pricing: FakePricing | None = None,
                        runtime_endpoint: str | None = None):
    """Clients on the moto endpoint; Service Quotas and the Price List from the fakes; sagemaker-runtime on
    ``runtime_endpoint`` where given (the hosting emulator's router)."""
    from amc_widgets.backends.aws_session import AwsCredentials

    def factory(url: str):
        return AwsCredentials(access_key_id="testing", secret_access_key="testing", region=REGION,
                              endpoint_url=url).client_factory()

    real = factory(endpoint)
    cache: dict[str, object] = {}

    def client(service: str):
        if service == "service-quotas" and quotas is not None:
            return quotas
        if service == "sagemaker-runtime" and runtime_endpoint and service not in cache:
            cache[service] = factory(runtime_endpoint)(service)
        if service == "pricing":  # moto has no Price List: never ask the real one from a test
            return pricing or FakePricing({})
        if service not in cache:
            cache[service] = real(service)
        return cache[service]

    return client



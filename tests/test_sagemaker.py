"""The SageMaker backend over real HTTP against moto on 127.0.0.1, with SageMaker's part played by
tests/sagemaker_harness.py (the real training container runs each job)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError
from botocore.retries.standard import ExponentialBackoff

from amc_widgets.backends.aws_session import (
    AwsConnectionError,
    AwsCredentials,
    explain_client_error,
    user_name_from_arn,
)
from amc_widgets.backends.s3_datasets import UPLOAD_THREADS
from amc_widgets.backends.sagemaker import QuotaError, SageMakerBackend
from amc_widgets.backends.start_weights import prepare_weights
from amc_widgets.core.dataset_check import DatasetError
from amc_widgets.core.dataset_split import SplitSettings
from amc_widgets.core.jobs import COMPLETED, FAILED, STOPPED, JobNotFoundError, JobSpec
from amc_widgets.core.metrics import metric_definitions
from amc_widgets.core.weights import WeightsCache, WeightsChoice, WeightsError, sha256_file
from tests.conftest import wait_until, zip_folder
from tests.label_exports import write_label_studio
from tests.sagemaker_harness import (
    CONTAINER_TRAIN,
    REGION,
    FakeServiceQuotas,
    MotoServer,
    SageMakerEmulator,
    moto_client_factory,
)

REPO = Path(__file__).resolve().parent.parent
FAST = {"model": "yolov5n", "imgsz": "96", "batch": "8", "workers": "0", "plots": "false"}
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/amc:test"  # plays the real container
FAKE_CONTAINER = [sys.executable, str(REPO / "tests" / "fake_container.py")]
FAKE_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/amc-fake:test"  # the stand-in, 3 quick epochs
LONG_FAKE_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/amc-fake:long"  # the stand-in, until stopped


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def role_arn(moto):
    iam = moto_client_factory(moto.endpoint)("iam")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "sagemaker.amazonaws.com"}}]}
    return iam.create_role(RoleName="AmcExecution", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


# the quotas the tests change (a session learns the codes of the account's quotas once, as AWS lists them)
GENEROUS_QUOTAS = {"ml.g4dn.xlarge for spot training job usage": 100, "ml.g4dn.xlarge for training job usage": 100}


@pytest.fixture(scope="module")
def quotas():
    return FakeServiceQuotas(dict(GENEROUS_QUOTAS))


@pytest.fixture(scope="module")
def backend(moto, role_arn, quotas):
    """A connected backend that describes jobs on every call (the courtesy delay has its own test)."""
    client = moto_client_factory(moto.endpoint, quotas)
    from amc_widgets.backends.aws_session import describe_connection

    info = describe_connection(client, REGION)
    if not info.bucket_exists:
        client("s3").create_bucket(Bucket=info.bucket)
        info = describe_connection(client, REGION)
    return SageMakerBackend(client, info, role_arn, image_uri=IMAGE, min_poll_seconds=0)


@pytest.fixture(scope="module")
def emulator(backend, moto, tmp_path_factory):
    images = {IMAGE: CONTAINER_TRAIN, FAKE_IMAGE: FAKE_CONTAINER,
              LONG_FAKE_IMAGE: ["env", "FAKE_EPOCHS=100000", *FAKE_CONTAINER]}
    harness = SageMakerEmulator(moto_client_factory(moto.endpoint), tmp_path_factory.mktemp("sagemaker"), images)
    harness.start()
    harness.attach(backend.sm)
    yield harness
    harness.close()


def backend_with_image(backend, image: str, role_arn: str | None = None) -> SageMakerBackend:
    """The same connection (and so the same hooked clients) starting jobs from another image."""
    return SageMakerBackend(backend._client, backend.info, role_arn or backend.role_arn, image_uri=image,
                            min_poll_seconds=0)


def _count_calls(client, operation: str) -> list[str]:
    calls: list[str] = []
    client.meta.events.register(f"before-parameter-build.s3.{operation}",
                                lambda params, **_: calls.append(params["Key"]))
    return calls


# --- connection -------------------------------------------------------------------------------

def test_connection_finds_account_user_bucket_and_roles(moto, role_arn):
    credentials = AwsCredentials(access_key_id="testing", secret_access_key="sekrit-value", region=REGION,
                                 endpoint_url=moto.endpoint)
    assert "sekrit" not in repr(credentials) and "sekrit" not in str(credentials)
    info = SageMakerBackend.test_connection(credentials)
    assert info.account == "123456789012" and info.bucket == "sagemaker-us-east-1-123456789012"
    assert info.user_name == user_name_from_arn(info.arn)
    identity = moto_client_factory(moto.endpoint)("sts").get_caller_identity()
    assert info.user_key == identity["UserId"] and info.space == f"users/{identity['UserId']}/"
    assert info.partition == "aws"
    assert role_arn in info.roles
    with pytest.raises(AwsConnectionError, match="role"):
        SageMakerBackend.connect(credentials, role_arn="")


def test_user_names_and_error_messages():
    assert user_name_from_arn("arn:aws:iam::1:user/alice") == "alice"
    assert user_name_from_arn("arn:aws:sts::1:assumed-role/SageMakerRole/bob@corp.com") == "bob@corp.com"  # as is
    assert user_name_from_arn("arn:aws:iam::1:root") == "root"
    error = ClientError({"Error": {"Code": "InvalidClientTokenId", "Message": "x"}}, "GetCallerIdentity")
    assert "access key ID is not valid" in explain_client_error(error, "reach AWS")


def test_partition_comes_from_the_callers_arn(monkeypatch):
    from types import SimpleNamespace

    from amc_widgets.backends.aws_session import ConnectionInfo, partition_from_arn

    monkeypatch.delenv("AMC_TRAINING_IMAGE", raising=False)
    assert partition_from_arn("arn:aws-us-gov:iam::1:user/ana") == "aws-us-gov"
    arn = "arn:aws-cn:sts::123456789012:assumed-role/AWSReservedSSO_Amc_0123/ana@corp.com"
    info = ConnectionInfo(account="123456789012", arn=arn, user_name="ana@corp.com", user_key="AROAX:ana@corp.com",
                          region="cn-north-1", bucket="sagemaker-cn-north-1-123456789012", bucket_exists=True, roles=[],
                          partition=partition_from_arn(arn))
    china = SageMakerBackend(lambda service: SimpleNamespace(), info, "arn:aws-cn:iam::123456789012:role/amc/ana")
    assert china.image_uri == "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/amc-yolov5-training:latest"
    assert china.log_group_arn() == "arn:aws-cn:logs:cn-north-1:123456789012:log-group:/aws/sagemaker/TrainingJobs"
    assert china.outputs_prefix == "users/AROAX:ana@corp.com/training-jobs/"


def test_missing_bucket_is_created_only_when_agreed(moto, role_arn):
    credentials = AwsCredentials(access_key_id="testing", secret_access_key="testing", region="eu-west-1",
                                 endpoint_url=moto.endpoint)
    with pytest.raises(AwsConnectionError, match="does not exist"):
        SageMakerBackend.connect(credentials, role_arn)
    backend = SageMakerBackend.connect(credentials, role_arn, create_bucket=True)
    assert backend.bucket == "sagemaker-eu-west-1-123456789012" and backend.info.bucket_exists


# --- datasets ---------------------------------------------------------------------------------

def test_folder_upload_skips_unchanged_files(backend, small_dataset):
    info = backend.store_dataset(small_dataset, name="folder-up")
    files = [p for p in small_dataset.rglob("*") if p.is_file()]
    assert info.files == len(files) and info.complete
    listed = {d.name: d for d in backend.list_datasets()}["folder-up"]
    assert listed.files == len(files) and listed.bytes == sum(p.stat().st_size for p in files)
    assert listed.location.startswith(f"s3://{backend.bucket}/users/{backend.user}/custom-uploads/folder-up/")
    puts = _count_calls(backend.s3, "PutObject")
    with pytest.raises(FileExistsError):
        backend.store_dataset(small_dataset, name="folder-up")
    backend.store_dataset(small_dataset, name="folder-up", overwrite=True)
    assert puts == [f"users/{backend.user}/custom-uploads/folder-up/.amc-dataset.json"]  # only the manifest


def test_interrupted_upload_looks_incomplete_and_resumes(backend, small_dataset):
    sent: list[str] = []

    def network_drops_after_ten(params, **_):
        if not params["Key"].endswith(".amc-dataset.json"):
            sent.append(params["Key"])
            if len(sent) == 10:
                raise EndpointConnectionError(endpoint_url="http://127.0.0.1")

    backend.s3.meta.events.register("before-parameter-build.s3.PutObject", network_drops_after_ten, unique_id="drop")
    try:
        with pytest.raises(AwsConnectionError, match="resume"):
            backend.store_dataset(small_dataset, name="flaky")
    finally:
        backend.s3.meta.events.unregister("before-parameter-build.s3.PutObject", unique_id="drop")
    assert len(sent) <= 10 + UPLOAD_THREADS - 1  # after the failure only what was in flight went on
    assert {d.name: d.complete for d in backend.list_datasets()}["flaky"] is False
    with pytest.raises(DatasetError, match="No complete dataset"):
        backend.start_job(JobSpec(dataset="flaky", hyperparameters=FAST, instance_type="ml.m5.large"))
    arrived = backend.s3.list_objects_v2(Bucket=backend.bucket, Prefix=backend.datasets.dataset_prefix("flaky"))
    arrived = {obj["Key"] for obj in arrived.get("Contents", [])}
    assert 0 < len(arrived)
    puts = _count_calls(backend.s3, "PutObject")
    info = backend.store_dataset(small_dataset, name="flaky")
    assert info.complete
    total = sum(1 for p in small_dataset.rglob("*") if p.is_file())
    resent = [k for k in puts if not k.endswith(".json")]
    assert len(resent) == total - len(arrived) and not set(resent) & arrived  # only what was missing


class _FlakyRaw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_):
        yield self.body


def test_s3_500s_and_throttling_are_retried(backend, small_dataset, monkeypatch):
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)  # same attempts, no waiting
    failures = {"left": 4}

    def fail_some(request, **_):
        if failures["left"] and request.method == "PUT":
            failures["left"] -= 1
            code = "SlowDown" if failures["left"] % 2 else "InternalError"
            body = f"<Error><Code>{code}</Code><Message>try again</Message></Error>".encode()
            return AWSResponse(request.url, 503 if code == "SlowDown" else 500, {}, _FlakyRaw(body))
        return None

    backend.s3.meta.events.register("before-send.s3", fail_some, unique_id="flaky500")
    try:
        info = backend.store_dataset(small_dataset, name="retried")
    finally:
        backend.s3.meta.events.unregister("before-send.s3", unique_id="flaky500")
    assert failures["left"] == 0 and info.complete


def test_retries_in_force_are_adaptive_with_nine_attempts(backend, monkeypatch):
    """The configuration botocore really uses on every client, and its effect: a request that keeps
    failing is sent 9 times (8 retries) before the error reaches the product."""
    for service in ("s3", "sagemaker", "logs", "sts", "iam"):
        assert backend._client(service).meta.config.retries == {"mode": "adaptive", "total_max_attempts": 9}
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0)
    sent = []

    def always_500(request, **_):
        if request.url.endswith("/retry-probe"):
            sent.append(request.method)
            body = b"<Error><Code>InternalError</Code><Message>try again</Message></Error>"
            return AWSResponse(request.url, 500, {}, _FlakyRaw(body))
        return None

    backend.s3.meta.events.register("before-send.s3", always_500, unique_id="always500")
    try:
        with pytest.raises(ClientError, match="InternalError"):
            backend.s3.put_object(Bucket=backend.bucket, Key="retry-probe", Body=b"x")
    finally:
        backend.s3.meta.events.unregister("before-send.s3", unique_id="always500")
    assert sent == ["PUT"] * 9


def test_zip_is_unpacked_while_uploading_and_unsafe_zips_refused(backend, small_dataset, tmp_path):
    archive = tmp_path / "solder.zip"
    zip_folder(small_dataset, archive).close()
    info = backend.store_dataset(archive)
    assert info.name == "solder" and info.files == sum(1 for p in small_dataset.rglob("*") if p.is_file())
    body = backend.s3.get_object(Bucket=backend.bucket,
                                 Key=f"users/{backend.user}/custom-uploads/solder/export/data.yaml")["Body"].read()
    assert body == (small_dataset / "data.yaml").read_bytes()
    evil = tmp_path / "evil.zip"
    with zip_folder(small_dataset, evil) as zf:  # a good dataset, and one member that climbs out
        zf.writestr("../../etc/cron.d/x", "boom")
    with pytest.raises(DatasetError, match=r"'\.\./\.\./etc/cron\.d/x' climbs out"):
        backend.store_dataset(evil)
    assert "evil" not in [d.name for d in backend.list_datasets()]
    listed = backend.s3.list_objects_v2(Bucket=backend.bucket).get("Contents", [])
    assert not [obj["Key"] for obj in listed if "cron" in obj["Key"] or "/evil/" in obj["Key"]]


def test_zipped_label_studio_export_is_converted_then_uploaded(backend, small_dataset, tmp_path):
    archive = tmp_path / "label-studio.zip"
    zip_folder(write_label_studio(small_dataset, tmp_path / "ls"), archive).close()
    info = backend.store_dataset(archive, name="ls", split=SplitSettings(val_fraction=0.25, seed=3))
    prefix = f"users/{backend.user}/custom-uploads/ls/"
    listed = backend.s3.list_objects_v2(Bucket=backend.bucket, Prefix=prefix)["Contents"]
    keys = [o["Key"][len(prefix):] for o in listed]
    assert sum(k.startswith("images/val/") for k in keys) == 12
    assert sum(k.startswith("labels/train/") for k in keys) == 36
    data = yaml.safe_load(backend.s3.get_object(Bucket=backend.bucket, Key=prefix + "data.yaml")["Body"].read())
    assert data["amc_import"]["split"] == {"automatic": True, "val_fraction": 0.25, "seed": 3, "train": 36, "val": 12}
    assert info.files == 48 * 2 + 1


def test_delete_dataset(backend, small_dataset):
    backend.store_dataset(small_dataset, name="doomed")
    backend.delete_dataset("doomed")
    assert "doomed" not in [d.name for d in backend.list_datasets()]
    with pytest.raises(DatasetError):
        backend.delete_dataset("doomed")


# --- jobs -------------------------------------------------------------------------------------

def test_training_job_request_is_complete(backend, role_arn):
    request = backend.training_job_request(
        JobSpec(dataset="solder", hyperparameters={"epochs": "3"}, instance_type="ml.g4dn.12xlarge",
                instance_count=2, spot=True), "amc-job-1")
    assert request["RoleArn"] == role_arn
    assert request["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert request["InputDataConfig"] == [{"ChannelName": "training", "InputMode": "File", "DataSource": {
        "S3DataSource": {"S3DataType": "S3Prefix", "S3DataDistributionType": "FullyReplicated",
                         "S3Uri": f"s3://{backend.bucket}/users/{backend.user}/custom-uploads/solder/"}}}]
    assert request["ResourceConfig"] == {"InstanceType": "ml.g4dn.12xlarge", "InstanceCount": 2, "VolumeSizeInGB": 50}
    stopping = request["StoppingCondition"]
    assert stopping["MaxRuntimeInSeconds"] == 48 * 3600 <= stopping["MaxWaitTimeInSeconds"]
    assert request["CheckpointConfig"]["S3Uri"] == (
        f"s3://{backend.bucket}/users/{backend.user}/training-jobs/amc-job-1/checkpoints/")
    assert request["OutputDataConfig"]["S3OutputPath"] == f"s3://{backend.bucket}/users/{backend.user}/training-jobs/"
    assert request["AlgorithmSpecification"]["MetricDefinitions"] == metric_definitions()
    assert {t["Key"] for t in request["Tags"]} == {"amc_user", "amc_dataset", "amc_app"}
    assert all(isinstance(v, str) for v in request["HyperParameters"].values())
    assert request["EnableNetworkIsolation"] is True  # the container downloads nothing


def test_sagemaker_receives_the_weights_channel_with_network_isolation(backend, emulator, small_dataset,
                                                                       stand_in_asset, tmp_path):
    """Weights checked against the dataset's classes (from its manifest), uploaded once to the user's
    space, and given to the job as its 'weights' channel; the request as sent carries the isolation."""
    backend.store_dataset(small_dataset, name="wire-weights", overwrite=True)
    assert backend.dataset_class_names("wire-weights") == ["good", "insufficient", "bridge"]
    cache = WeightsCache(tmp_path / "cache", base_url="http://127.0.0.1:9", pins={})
    puts, multipart = _count_calls(backend.s3, "PutObject"), _count_calls(backend.s3, "CreateMultipartUpload")
    start = prepare_weights(backend, WeightsChoice.parse(str(stand_in_asset)), "yolov5n", "wire-weights", cache)
    again = prepare_weights(backend, WeightsChoice.parse(str(stand_in_asset)), "yolov5n", "wire-weights", cache)
    stored = start.hyperparameters["weights"]
    assert again == start and "the dataset has 3" in start.note
    key = f"users/{backend.user}/weights/{stored}"
    fake = backend_with_image(backend, FAKE_IMAGE)
    with pytest.raises(WeightsError, match="'other.pt' is not stored"):  # refused before anything is billed
        fake.start_job(JobSpec(dataset="wire-weights", hyperparameters={**FAST, "weights": "other.pt"},
                               instance_type="ml.m5.large", name="amc-no-weights"))
    assert "amc-no-weights" not in emulator.requests
    job = fake.start_job(JobSpec(dataset="wire-weights", hyperparameters={**FAST, **start.hyperparameters},
                                 instance_type="ml.m5.large", name="amc-weights"))
    sent = emulator.requests["amc-weights"]
    assert sent["EnableNetworkIsolation"] is True
    assert [c["ChannelName"] for c in sent["InputDataConfig"]] == ["training", "weights"]
    assert sent["InputDataConfig"][1]["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{backend.bucket}/{key}"
    lineage = f"file:{stand_in_asset.name} sha256:{sha256_file(stand_in_asset)}"
    assert sent["HyperParameters"]["weights_source"] == lineage
    done = wait_until(lambda: (d := fake.describe_job(job.name)).is_terminal and d, timeout=60, what="the job")
    assert done.status == COMPLETED, done.failure_reason
    assert f"fake container, weights: ['{stored}']" in fake.read_logs(job.name).lines
    assert [k for k in puts + multipart if "/weights/" in k] == [key]  # stored once


def test_sagemaker_receives_the_users_role_image_and_dataset(backend, emulator, role_arn, small_dataset):
    """What went over the wire, checked by the emulator as SageMaker checks it, and run by the stand-in."""
    backend.store_dataset(small_dataset, name="wire", overwrite=True)
    fake = backend_with_image(backend, FAKE_IMAGE)
    job = fake.start_job(JobSpec(dataset="wire", hyperparameters={**FAST, "epochs": "3", "lr0": "0.02"},
                                 instance_type="ml.m5.large", name="amc-wire"))
    sent = emulator.requests["amc-wire"]
    assert sent["RoleArn"] == role_arn
    assert sent["AlgorithmSpecification"]["TrainingImage"] == FAKE_IMAGE
    (channel,) = sent["InputDataConfig"]
    assert channel["ChannelName"] == "training"
    assert channel["DataSource"]["S3DataSource"]["S3Uri"] == f"s3://{backend.bucket}/users/{backend.user}/custom-uploads/wire/"
    assert sent["HyperParameters"]["lr0"] == "0.02" and sent["HyperParameters"]["epochs"] == "3"
    done = wait_until(lambda: (d := fake.describe_job(job.name)).is_terminal and d, timeout=60, what="the job")
    assert done.status == COMPLETED, done.failure_reason
    lines = fake.read_logs(job.name).lines
    # the stand-in counted the entries of the channel it was given: the dataset's and its manifest
    entries = len(list(small_dataset.rglob("*"))) + 1
    assert f"fake container, dataset files: {entries}" in lines


def test_sagemaker_refuses_a_role_it_cannot_assume_and_an_unknown_image(backend, emulator, moto, small_dataset):
    backend.store_dataset(small_dataset, name="refused", overwrite=True)
    iam = moto_client_factory(moto.endpoint)("iam")
    trust_ec2 = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                         "Principal": {"Service": "ec2.amazonaws.com"}}]}
    ec2_role = iam.create_role(RoleName="NotForSageMaker",
                               AssumeRolePolicyDocument=json.dumps(trust_ec2))["Role"]["Arn"]
    spec = JobSpec(dataset="refused", hyperparameters=FAST, instance_type="ml.m5.large")
    for other in (backend_with_image(backend, FAKE_IMAGE, role_arn=ec2_role),
                  backend_with_image(backend, "123456789012.dkr.ecr.us-east-1.amazonaws.com/nothing:here")):
        with pytest.raises(AwsConnectionError, match="Could not start the training job: ValidationException"):
            other.start_job(spec)
    assert not [name for name in emulator.requests if name.startswith("amc-yolov5n-refused")]


def test_quota_counts_the_jobs_already_running(backend, emulator, quotas, small_dataset):
    """3 spot g4dn.xlarge allowed, one job on 2 of them running (and one on another type): one more may
    start, two may not; on-demand instances are counted apart."""
    backend.store_dataset(small_dataset, name="quota-busy", overwrite=True)
    long = backend_with_image(backend, LONG_FAKE_IMAGE)
    running = [long.start_job(JobSpec(dataset="quota-busy", hyperparameters=FAST, instance_type="ml.g4dn.xlarge",
                                      instance_count=2, spot=True, name="amc-quota-busy")),
               long.start_job(JobSpec(dataset="quota-busy", hyperparameters=FAST, instance_type="ml.g5.xlarge",
                                      spot=True, name="amc-quota-other"))]
    quotas.values["ml.g4dn.xlarge for spot training job usage"] = 3
    quotas.values["ml.g4dn.xlarge for training job usage"] = 2
    try:
        assert [long.describe_job(job.name).status for job in running] == ["InProgress"] * 2
        long.check_quota("ml.g4dn.xlarge", 1, spot=True)
        with pytest.raises(QuotaError,
                           match=r"may run 3 x ml.g4dn.xlarge \(spot\) at once and 2 are in use, so 2 more"):
            long.check_quota("ml.g4dn.xlarge", 2, spot=True)
        long.check_quota("ml.g4dn.xlarge", 2, spot=False)
        with pytest.raises(QuotaError, match="0 are in use, so 3 more"):
            long.check_quota("ml.g4dn.xlarge", 3, spot=False)
    finally:
        quotas.values.update(GENEROUS_QUOTAS)
        for job in running:
            long.stop_job(job.name)
    for job in running:
        stopped = wait_until(lambda job=job: (d := long.describe_job(job.name)).is_terminal and d, timeout=60,
                             what="stop")
        assert stopped.status == STOPPED


def test_quota_refuses_before_launch(backend, quotas, small_dataset):
    backend.store_dataset(small_dataset, name="quota-set", overwrite=True)
    quotas.values["ml.g4dn.xlarge for spot training job usage"] = 0
    try:
        with pytest.raises(QuotaError, match="may run 0 x ml.g4dn.xlarge"):
            backend.start_job(JobSpec(dataset="quota-set", hyperparameters=FAST, instance_type="ml.g4dn.xlarge",
                                      spot=True))
    finally:
        quotas.values.update(GENEROUS_QUOTAS)
    with pytest.raises(ValueError, match="no GPU"):
        backend.start_job(JobSpec(dataset="quota-set", hyperparameters=FAST, instance_type="ml.m5.large",
                                  instance_count=2))
    with pytest.raises(JobNotFoundError):
        backend.describe_job("amc-never-started")


@pytest.mark.slow
def test_two_jobs_logs_metrics_stop_and_download(backend, emulator, small_dataset, tmp_path):
    backend.store_dataset(small_dataset, name="flow", overwrite=True)
    keep = backend.start_job(JobSpec(dataset="flow", hyperparameters={**FAST, "epochs": "2"},
                                     instance_type="ml.m5.large", name="amc-keep"))
    stop = backend.start_job(JobSpec(dataset="flow", hyperparameters={**FAST, "epochs": "40"},
                                     instance_type="ml.m5.large", name="amc-stop"))
    with pytest.raises(FileExistsError):
        backend.start_job(JobSpec(dataset="flow", hyperparameters=FAST, instance_type="ml.m5.large", name="amc-keep"))
    lines, cursor = [], None

    def follow() -> bool:
        nonlocal cursor
        chunk = backend.read_logs(keep.name, cursor)
        lines.extend(chunk.lines)
        cursor = chunk.cursor
        return chunk.finished

    wait_until(follow, timeout=300, what="the first job to finish")
    assert sum(line.startswith("[amc-metrics]") for line in lines) == 2
    # a reconnect (a fresh backend) from the same cursor finds nothing new: no duplicates
    fresh = SageMakerBackend(backend._client, backend.info, backend.role_arn, min_poll_seconds=0)
    assert fresh.read_logs(keep.name, cursor).lines == []
    assert lines == fresh.read_logs(keep.name).lines  # and nothing was missed
    done, metrics = backend.describe_job(keep.name), backend.read_metrics(keep.name)
    assert done.status == COMPLETED and metrics["epoch"].tolist() == [1, 2]
    # its summary, from FinalMetricDataList as SageMaker keeps it by the MetricDefinitions
    assert done.final_metrics.get("epoch") == 2, done.final_metrics
    assert done.final_metrics["mAP50-95"] == pytest.approx(metrics["mAP50-95"].iloc[-1], rel=1e-5)

    wait_until(lambda: not backend.read_metrics(stop.name).empty, timeout=300, what="a first epoch of the job to stop")
    backend.stop_job(stop.name)
    stopped = wait_until(lambda: (d := backend.describe_job(stop.name)).is_terminal and d, timeout=120, what="the stop")
    assert stopped.status == STOPPED
    assert emulator.exit_codes[stop.name] == [143]  # the container itself heard SIGTERM and saved
    saved = backend.download_outputs(stop.name, tmp_path / "stopped")
    card = json.loads((saved.onnx.parent / "model_card.json").read_text())
    assert card["stopped_by_request"] is True and card["epochs_completed"] >= 1

    outputs = {o.job_name for o in backend.list_outputs()}
    assert {keep.name, stop.name} <= outputs
    result = backend.download_outputs(keep.name, tmp_path / "dl")
    import onnxruntime as ort

    session = ort.InferenceSession(str(result.onnx), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: np.zeros((1, 3, 96, 96), np.float32)})
    assert out.shape[:2] == (1, 7)
    assert {j.name for j in backend.list_jobs()} >= {keep.name, stop.name}


class _CountingSageMaker:
    """DescribeTrainingJob that counts its calls (the courtesy delay needs no real job)."""

    def __init__(self, output_path: str):
        self.output_path, self.calls, self.status = output_path, 0, "InProgress"

    def describe_training_job(self, TrainingJobName):
        from datetime import datetime, timezone

        self.calls += 1
        return {"TrainingJobName": TrainingJobName,
                "TrainingJobArn": f"arn:aws:sagemaker:::training-job/{TrainingJobName}",
                "TrainingJobStatus": self.status, "SecondaryStatus": "Training",
                "OutputDataConfig": {"S3OutputPath": self.output_path},
                "CreationTime": datetime.now(timezone.utc), "ResourceConfig": {"InstanceType": "ml.m5.large"}}


def test_status_polling_is_gentle(backend):
    """A running job is described at most every 10 s however often it is asked; an ended one never again."""
    now = [1000.0]
    fake = _CountingSageMaker(f"s3://{backend.bucket}/{backend.outputs_prefix}")
    gentle = SageMakerBackend(lambda service: fake if service == "sagemaker" else backend._client(service),
                              backend.info, backend.role_arn, clock=lambda: now[0])
    for _ in range(20):  # a dashboard asking twice a second for 10 s
        gentle.describe_job("amc-polled")
        now[0] += 0.5
    assert fake.calls == 1
    now[0] += 0.5
    gentle.describe_job("amc-polled")
    assert fake.calls == 2
    fake.status = "Completed"
    now[0] += 10
    assert gentle.describe_job("amc-polled").is_terminal
    now[0] += 1000
    gentle.describe_job("amc-polled")
    assert fake.calls == 3


def test_a_dropped_log_stream_loses_no_line(backend, moto):
    logs = backend.logs
    group = "/aws/sagemaker/TrainingJobs"
    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    streams = ["amc-logs/algo-1-100", "amc-logs/algo-2-100"]
    for stream in streams:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)

    base = int(time.time() * 1000)

    def put(stream, start, count):
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[
            {"timestamp": base + i * 10 + (5 if stream.endswith("2-100") else 0),
             "message": f"{stream[-10:-4]} line {i}"} for i in range(start, start + count)])

    from amc_widgets.backends.cloudwatch_logs import LogFollower

    follower = LogFollower(logs)
    put(streams[0], 0, 3)
    put(streams[1], 0, 3)
    lines, cursor, _ = follower.read("amc-logs", None, expected=2)
    assert lines[:2] == ["[algo-1] algo-1 line 0", "[algo-2] algo-2 line 0"]  # merged by time, host named
    put(streams[0], 3, 2)
    put(streams[1], 3, 2)
    dropped = {"n": 0}

    def drop_host_two(params, **_):
        if params.get("logStreamName") == streams[1] and dropped["n"] == 0:
            dropped["n"] += 1
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1")

    logs.meta.events.register("before-parameter-build.logs.GetLogEvents", drop_host_two, unique_id="drop-log")
    try:
        more, cursor, _ = follower.read("amc-logs", cursor, expected=2)
    finally:
        logs.meta.events.unregister("before-parameter-build.logs.GetLogEvents", unique_id="drop-log")
    assert more == ["[algo-1] algo-1 line 3", "[algo-1] algo-1 line 4"]
    reconnected = LogFollower(backend._client("logs"))  # a new connection continues from the cursor
    rest, cursor, _ = reconnected.read("amc-logs", json.loads(json.dumps(cursor)), expected=2)  # plain JSON
    assert rest == ["[algo-2] algo-2 line 3", "[algo-2] algo-2 line 4"]
    assert reconnected.read("amc-logs", cursor, expected=2)[0] == []
    everything = lines + more + rest
    assert sorted(everything) == sorted(follower.read("amc-logs", None)[0]) and len(set(everything)) == 10


def test_live_tail_delivers_lines():
    from amc_widgets.backends.cloudwatch_logs import LogFollower, live_tail

    class FakeLiveTailLogs:  # the event stream's shape, as boto3 yields it; no history to catch up on
        def start_live_tail(self, logGroupIdentifiers, logStreamNamePrefixes):
            assert logStreamNamePrefixes == ["amc-tail/"]
            return {"responseStream": iter([
                {"sessionStart": {}},
                {"sessionUpdate": {"sessionResults": [
                    {"logStreamName": "amc-tail/algo-1-1700000000", "message": "epoch 1\n", "timestamp": 1,
                     "ingestionTime": 2},
                    {"logStreamName": "amc-tail/algo-2-1700000000", "message": "epoch 2", "timestamp": 1,
                     "ingestionTime": 2}]}},
                {"sessionUpdate": {"sessionResults": [{"logStreamName": "amc-tail/algo-1-1700000000",
                                                       "message": "epoch 3", "timestamp": 3, "ingestionTime": 4}]}},
            ])}

    class NoHistory(LogFollower):
        def read(self, job, cursor, expected=1, ended=False):
            return [], cursor, False

    arn = "arn:aws:logs:us-east-1:1:log-group:/aws/sagemaker/TrainingJobs"
    got: list[str] = []
    live_tail(FakeLiveTailLogs(), arn, NoHistory(None), "amc-tail", None, got.append, should_stop=lambda: len(got) >= 3)
    assert got == ["epoch 1", "epoch 2", "epoch 3"]
    labelled: list[str] = []
    live_tail(FakeLiveTailLogs(), arn, NoHistory(None), "amc-tail", None, labelled.append, should_stop=lambda: False,
              label=True)
    assert labelled == ["[algo-1] epoch 1", "[algo-2] epoch 2", "[algo-1] epoch 3"]


def test_cli_works_against_the_sagemaker_backend(moto, role_arn, small_dataset, tmp_path):
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "sekrit-cli-value",
           "PYTHONPATH": str(REPO), "AMC_ROLE_ARN": role_arn}
    base = [sys.executable, "-m", "amc_widgets.cli", "--backend", "sagemaker", "--endpoint-url", moto.endpoint,
            "--region", REGION]

    def amc(*args):
        return subprocess.run([*base, *map(str, args)], env=env, capture_output=True, text=True, timeout=120)

    connected = amc("connect")
    assert connected.returncode == 0 and "123456789012" in connected.stdout and role_arn in connected.stdout
    assert "sekrit" not in connected.stdout + connected.stderr  # no secret in output
    uploaded = amc("datasets", "upload", small_dataset, "--name", "from-cli")
    assert uploaded.returncode == 0, uploaded.stderr
    assert "from-cli" in amc("datasets").stdout
    bad = amc("train", "from-cli", "--instance-type", "ml.m5.large", "--instance-count", "3")
    assert bad.returncode == 1 and "no GPU" in bad.stderr and "Traceback" not in bad.stderr
    unknown = amc("train", "from-cli", "--instance-type", "ml.g4dn.xlarg")
    assert "did you mean" in unknown.stderr.lower() or "ml.g4dn.xlarge" in unknown.stderr
    no_wait = amc("train", "from-cli", "--instance-type", "ml.m5.large", "--spot", "--max-hours", "2",
                  "--max-wait-hours", "1")
    assert no_wait.returncode == 1 and no_wait.stderr.startswith(
        "amc: error: max wait hours: must be at least max hours (2)") and "Traceback" not in no_wait.stderr


def test_iam_policy_is_scoped_to_the_users_prefix(tmp_path):
    def iam_policy(*args):
        result = subprocess.run([sys.executable, "-m", "amc_widgets.cli", *args], capture_output=True, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    documents = iam_policy("--region", "eu-west-1", "iam-policy", "--account", "111122223333",
                           "--user-key", "AROAEXAMPLE:ana@corp.com")
    statements = {s["Sid"]: s for s in documents["user_policy"]["Statement"]}
    assert statements["OwnSpace"]["Resource"] == (
        "arn:aws:s3:::sagemaker-eu-west-1-111122223333/users/${aws:userid}/*")
    assert statements["PassOwnExecutionRole"]["Condition"]["StringEquals"] == {
        "iam:PassedToService": "sagemaker.amazonaws.com", "aws:ResourceTag/amc_user": "${aws:userid}"}
    assert "*" not in json.dumps(statements["OwnSpace"]["Action"])
    role = documents["execution_role"]
    assert role["path"] == "/amc/" and role["tags"] == [{"Key": "amc_user", "Value": "AROAEXAMPLE:ana@corp.com"}]
    resources = json.dumps([s["Resource"] for s in documents["execution_role_policy"]["Statement"]])
    assert "users/*" not in resources and "users/${aws:PrincipalTag/amc_user}/custom-uploads/*" in resources
    assert role["trust_policy"]["Statement"][0]["Principal"]["Service"] == "sagemaker.amazonaws.com"
    china = iam_policy("--region", "cn-north-1", "iam-policy", "--account", "111122223333")
    arns = [arn for s in china["user_policy"]["Statement"] + china["execution_role_policy"]["Statement"]
            for arn in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"]) if arn != "*"]
    assert arns and all(arn.startswith("arn:aws-cn:") for arn in arns)


@pytest.mark.slow
def test_spot_interruption_resumes_from_checkpoints(backend, emulator, small_dataset):
    backend.store_dataset(small_dataset, name="spot", overwrite=True)
    emulator.interrupt_after_epoch["amc-spot"] = 1
    backend.start_job(JobSpec(dataset="spot", hyperparameters={**FAST, "epochs": "3", "device": "cpu"},
                              instance_type="ml.g4dn.xlarge",
                              spot=True, name="amc-spot"))
    done = wait_until(lambda: (d := backend.describe_job("amc-spot")).is_terminal and d, timeout=300, what="spot job")
    assert done.status == COMPLETED, done.failure_reason
    assert emulator.exit_codes["amc-spot"] == [-9, 0]  # killed after epoch 1, then finished in a second attempt
    lines = backend.read_logs("amc-spot").lines
    assert any("Resuming" in line for line in lines)
    assert all(line.startswith("[algo-1]") for line in lines)  # two streams (attempts) of one host
    assert backend.read_metrics("amc-spot")["epoch"].tolist() == [1, 2, 3]
    assert done.spot and 0 < done.extra["spot_savings"] < 1


@pytest.mark.slow
def test_a_failing_job_reports_the_containers_reason(backend, emulator, small_dataset, tmp_path):
    backend.store_dataset(small_dataset, name="failing", overwrite=True)
    junk = tmp_path / "start.pt"
    junk.write_bytes(b"this is not a checkpoint")  # stored unchecked, as only a changed client would
    stored = backend.store_weights(junk, sha256_file(junk))
    backend.start_job(JobSpec(dataset="failing", hyperparameters={**FAST, "epochs": "1", "weights": stored},
                              instance_type="ml.m5.large", name="amc-failing"))
    done = wait_until(lambda: (d := backend.describe_job("amc-failing")).is_terminal and d, timeout=120, what="failure")
    assert done.status == FAILED
    assert stored in done.failure_reason and "checkpoint" in done.failure_reason


def test_a_gpu_instance_whose_gpus_cuda_cannot_use_fails_at_once(backend, emulator, small_dataset):
    """device=auto on 8 GPUs this machine does not have: a clear failure, not a CPU training paid as GPUs."""
    backend.store_dataset(small_dataset, name="nocuda", overwrite=True)
    backend.start_job(JobSpec(dataset="nocuda", hyperparameters={**FAST, "epochs": "1"},
                              instance_type="ml.p3.16xlarge", name="amc-no-cuda"))
    done = wait_until(lambda: (d := backend.describe_job("amc-no-cuda")).is_terminal and d, timeout=60, what="failure")
    assert done.status == FAILED
    assert re.match(r"ml\.p3\.16xlarge has 8 GPU\(s\), but CUDA can use [0-7]: the job stops here", done.failure_reason)
    assert emulator.exit_codes["amc-no-cuda"] == [1]
    assert backend.read_metrics("amc-no-cuda").empty


def test_hosts_whose_names_never_resolve_fail_the_job_with_a_clear_reason(backend, emulator, small_dataset):
    backend.store_dataset(small_dataset, name="nohosts", overwrite=True)
    emulator.host_delays["amc-no-hosts"] = None
    emulator.container_env["amc-no-hosts"] = {"AMC_HOST_WAIT_SECONDS": "2"}
    backend.start_job(JobSpec(dataset="nohosts", hyperparameters={**FAST, "device": "cpu"},
                              instance_type="ml.g4dn.xlarge", instance_count=2, name="amc-no-hosts"))
    done = wait_until(lambda: (d := backend.describe_job("amc-no-hosts")).is_terminal and d, timeout=60, what="failure")
    assert done.status == FAILED
    assert done.failure_reason.startswith("Host names did not resolve within 2 s: algo-1, algo-2 "
                                          "(the master is algo-1).")
    assert emulator.exit_codes["amc-no-hosts"] == [1]
    lines = backend.read_logs("amc-no-hosts").lines
    for host in ("algo-1", "algo-2"):  # each host said what it waited for
        assert any(line.startswith(f"[{host}]") and "Waiting for host names to resolve: algo-1, algo-2" in line
                   for line in lines), lines


@pytest.mark.slow
def test_a_multi_host_job_waits_for_its_host_names_and_trains(backend, emulator, small_dataset):
    backend.store_dataset(small_dataset, name="hosts", overwrite=True)
    emulator.host_delays["amc-late-hosts"] = 15.0  # from the containers' start: longer than their input check
    backend.start_job(JobSpec(dataset="hosts", hyperparameters={**FAST, "epochs": "1", "device": "cpu"},
                              instance_type="ml.g4dn.xlarge", instance_count=2, name="amc-late-hosts"))
    done = wait_until(lambda: (d := backend.describe_job("amc-late-hosts")).is_terminal and d, timeout=600,
                      what="the two-host job")
    assert done.status == COMPLETED, done.failure_reason
    assert emulator.exit_codes["amc-late-hosts"] == [0]
    lines = backend.read_logs("amc-late-hosts").lines
    for host in ("algo-1", "algo-2"):
        mine = [line for line in lines if line.startswith(f"[{host}]")]
        assert any("Waiting for host names to resolve: algo-1, algo-2" in line for line in mine), lines
        assert any("All 2 host names resolve, after" in line for line in mine), lines
    assert any("2 host(s)" in line and "this host rank 1" in line for line in lines)
    assert backend.read_metrics("amc-late-hosts")["epoch"].tolist() == [1]

"""The SageMaker backend in an account with a long history of many users' jobs (moto, with the harness
playing Search and Service Quotas as AWS documents them): listing and quota checks cost a request
per page, not per job; Stopping jobs hold instances; spot jobs get time to wait; the volume fits the
dataset; a job that failed before it started has a fixed duration."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from amc_widgets.backends.aws_session import describe_connection
from amc_widgets.backends.base import PricesInstances
from amc_widgets.backends.local import LocalBackend
from amc_widgets.backends.sagemaker import QuotaError, SageMakerBackend
from amc_widgets.core.jobs import FAILED, JobSpec
from tests.conftest import wait_until
from tests.sagemaker_harness import (
    REGION,
    FakePricing,
    FakeServiceQuotas,
    MotoServer,
    SageMakerEmulator,
    moto_client_factory,
)
from tests.test_sagemaker import FAKE_CONTAINER, FAKE_IMAGE

FAST = {"model": "yolov5n", "imgsz": "96", "batch": "8", "workers": "0", "epochs": "1"}
SPOT_G4DN = "ml.g4dn.xlarge for spot training job usage"
OTHERS = ("AIDAOTHERUSER00000001", "AROAOTHERROLE0000002:ana@corp.com")
OWN_JOBS = 130  # two pages of Search


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def quotas():
    return FakeServiceQuotas({SPOT_G4DN: 4, "ml.m5.large for training job usage": 20})


@pytest.fixture(scope="module")
def backend(moto, quotas):
    client = moto_client_factory(moto.endpoint, quotas)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "sagemaker.amazonaws.com"}}]}
    role = client("iam").create_role(RoleName="AmcScale", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    info = describe_connection(client, REGION)
    client("s3").create_bucket(Bucket=info.bucket)
    info = describe_connection(client, REGION)
    return SageMakerBackend(client, info, role, image_uri=FAKE_IMAGE, min_poll_seconds=0)


@pytest.fixture(scope="module")
def emulator(backend, moto, tmp_path_factory):
    harness = SageMakerEmulator(moto_client_factory(moto.endpoint), tmp_path_factory.mktemp("scale"),
                                {FAKE_IMAGE: FAKE_CONTAINER})
    harness.start()
    harness.attach(backend.sm)
    yield harness
    harness.close()


@pytest.fixture(scope="module")
def history(backend, emulator) -> list[str]:
    """An account's past: OWN_JOBS finished jobs of this user (each with the job folder AMC writes)
    and as many of two other users, a few of them still running on the quota's instance type."""
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    own = []
    for i in range(OWN_JOBS):
        name = f"amc-history-own-{i:03d}"
        emulator.add_history(name, backend.user, f"s3://{backend.bucket}/{backend.outputs_prefix}",
                             created=start + timedelta(hours=i))
        backend.s3.put_object(Bucket=backend.bucket, Key=f"{backend.outputs_prefix}{name}/.amc-job.json", Body=b"{}")
        own.append(name)
    for user in OTHERS:
        space = f"s3://{backend.bucket}/users/{user}/training-jobs/"
        for i in range(OWN_JOBS):
            emulator.add_history(f"amc-history-{user[:8].lower()}-{i:03d}", user, space,
                                 created=start + timedelta(hours=i, minutes=30))
        emulator.add_history(f"amc-busy-{user[:8].lower()}", user, space, "InProgress", "ml.g4dn.xlarge", 3, True)
    return own


def count_requests(client) -> dict[str, int]:
    counts: dict[str, int] = {}

    def heard(model, **_):
        counts[model.name] = counts.get(model.name, 0) + 1

    client.meta.events.register("before-parameter-build.sagemaker", heard)
    return counts


def test_listing_is_one_search_per_hundred_own_jobs(backend, emulator, history):
    fresh = SageMakerBackend(backend._client, backend.info, backend.role_arn, image_uri=FAKE_IMAGE,
                             min_poll_seconds=0)
    counts = count_requests(fresh.sm)
    emulator.search_requests.clear()
    jobs = fresh.list_jobs()
    assert [job.name for job in jobs] == sorted(history, reverse=True)  # newest first, only this user's
    assert counts == {"Search": 2}  # no DescribeTrainingJob or ListTags per job
    for request in emulator.search_requests:
        assert request["MaxResults"] == 100
        assert {"Name": "Tags.amc_user", "Operator": "Equals", "Value": backend.user} in (
            request["SearchExpression"]["Filters"])
        assert request["VisibilityConditions"] == [{"Key": "Tags.amc_user", "Value": backend.user}]


def test_quota_counts_in_progress_and_stopping_jobs_and_reads_the_quota_by_code(backend, emulator, quotas, history):
    """4 spot g4dn.xlarge allowed; this user holds 2 (InProgress) + 1 (Stopping, still on its instances);
    other users' running jobs are not this user's to see, and on-demand jobs count apart."""
    own = f"s3://{backend.bucket}/{backend.outputs_prefix}"
    emulator.add_history("amc-own-running", backend.user, own, "InProgress", "ml.g4dn.xlarge", 2, True)
    emulator.add_history("amc-own-stopping", backend.user, own, "Stopping", "ml.g4dn.xlarge", 1, True)
    emulator.add_history("amc-own-ondemand", backend.user, own, "InProgress", "ml.g4dn.xlarge", 2, False)
    emulator.add_history("amc-own-done", backend.user, own, "Stopped", "ml.g4dn.xlarge", 4, True)
    checker = SageMakerBackend(backend._client, backend.info, backend.role_arn, image_uri=FAKE_IMAGE)
    quotas.calls.clear()
    checker.check_quota("ml.g4dn.xlarge", 1, spot=True)
    with pytest.raises(QuotaError, match=r"may run 4 x ml.g4dn.xlarge \(spot\) at once and 3 are in use, so 2 more"):
        checker.check_quota("ml.g4dn.xlarge", 2, spot=True)
    # the codes are learnt once (the fake's 250 other quotas: 3 pages), the value read by code each time
    assert quotas.calls == {"ListServiceQuotas": 3, "GetServiceQuota": 2}
    quotas.values[SPOT_G4DN] = 5  # raised by the administrator: the next check sees it
    try:
        checker.check_quota("ml.g4dn.xlarge", 2, spot=True)
    finally:
        quotas.values[SPOT_G4DN] = 4


def test_spot_jobs_get_time_to_wait_within_the_apis_limits(backend):
    def stopping(**spec) -> dict:
        return backend.training_job_request(JobSpec(dataset="d", hyperparameters={}, instance_type="ml.m5.large",
                                                    **spec), "amc-stopping")["StoppingCondition"]

    assert stopping(spot=True) == {"MaxRuntimeInSeconds": 48 * 3600, "MaxWaitTimeInSeconds": 96 * 3600}
    assert stopping(spot=True, max_runtime_hours=2, max_wait_hours=3) == {
        "MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 10800}
    assert stopping(spot=True, max_runtime_hours=600) == {  # twice would pass 28 days
        "MaxRuntimeInSeconds": 600 * 3600, "MaxWaitTimeInSeconds": 28 * 24 * 3600}
    assert stopping(max_runtime_hours=2) == {"MaxRuntimeInSeconds": 7200}
    with pytest.raises(ValueError, match=r"^max wait hours: must be at least max hours \(2\)"):
        stopping(spot=True, max_runtime_hours=2, max_wait_hours=1)
    with pytest.raises(ValueError, match=r"^max hours: must be more than 0 and at most 672"):
        stopping(max_runtime_hours=700)


def test_spot_job_reaches_sagemaker_with_room_to_wait(backend, emulator, small_dataset, history):
    backend.store_dataset(small_dataset, name="spot", overwrite=True)
    job = backend.start_job(JobSpec(dataset="spot", hyperparameters=FAST, instance_type="ml.m5.large", spot=True,
                                    max_runtime_hours=1, name="amc-spot-wait"))
    assert emulator.requests[job.name]["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600,
                                                                "MaxWaitTimeInSeconds": 7200}
    wait_until(lambda: backend.describe_job(job.name).is_terminal, timeout=120, what="the spot job")


def test_volume_is_sized_from_the_stored_dataset(backend, emulator, small_dataset, history):
    """A 500 GB dataset (its manifest says so) gets a volume that holds it; an NVMe type that cannot
    hold it is refused before anything starts."""
    backend.store_dataset(small_dataset, name="huge", overwrite=True)
    manifest_key = f"{backend.datasets.dataset_prefix('huge')}.amc-dataset.json"
    manifest = json.loads(backend.s3.get_object(Bucket=backend.bucket, Key=manifest_key)["Body"].read())
    backend.s3.put_object(Bucket=backend.bucket, Key=manifest_key,
                          Body=json.dumps({**manifest, "bytes": 500 * 10**9}).encode())
    with pytest.raises(ValueError, match="more than the 125 GB of NVMe storage of ml.g4dn.xlarge"):
        backend.start_job(JobSpec(dataset="huge", hyperparameters=FAST, instance_type="ml.g4dn.xlarge",
                                  name="amc-huge-nvme"))
    assert "amc-huge-nvme" not in emulator.requests
    emulator.fail_before_start["amc-huge"] = "CapacityError: Unable to provision requested ML compute capacity."
    backend.start_job(JobSpec(dataset="huge", hyperparameters=FAST, instance_type="ml.m5.large", name="amc-huge"))
    assert emulator.requests["amc-huge"]["ResourceConfig"]["VolumeSizeInGB"] == 610  # 500 x 1.2 + 10


def test_a_job_that_failed_before_starting_has_a_fixed_duration(backend, emulator, small_dataset, history):
    backend.store_dataset(small_dataset, name="nocapacity", overwrite=True)
    emulator.fail_before_start["amc-no-capacity"] = "CapacityError: Unable to provision requested ML compute capacity."
    backend.start_job(JobSpec(dataset="nocapacity", hyperparameters=FAST, instance_type="ml.m5.large",
                              name="amc-no-capacity"))
    failed = wait_until(lambda: (d := backend.describe_job("amc-no-capacity")).is_terminal and d, timeout=60,
                        what="the failure")
    assert failed.status == FAILED and failed.started is None and "CapacityError" in failed.failure_reason
    now = failed.created + 60
    assert failed.duration(now) == failed.duration(now + 3600) < 60


def test_the_backend_prices_instances_in_its_region(moto, backend, tmp_path):
    pricing = FakePricing({(REGION, "ml.m5.large"): 0.125})
    priced = SageMakerBackend(moto_client_factory(moto.endpoint, pricing=pricing), backend.info, backend.role_arn,
                              image_uri=FAKE_IMAGE, home=tmp_path)
    assert isinstance(priced, PricesInstances) and not isinstance(LocalBackend(home=tmp_path), PricesInstances)
    price = priced.instance_price("ml.m5.large")
    assert (price.per_hour, price.region, price.is_estimate) == (0.125, REGION, False)
    assert json.loads((tmp_path / "prices.json").read_text())[REGION]["ml.m5.large"]["usd"] == 0.125

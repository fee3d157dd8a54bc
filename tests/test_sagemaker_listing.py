"""A month of SageMaker jobs later: the Jobs tab lists 200 finished jobs from their summaries
(DescribeTrainingJob's FinalMetricDataList), without one CloudWatch Logs call."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from amc_widgets.backends.aws_session import describe_connection
from amc_widgets.backends.sagemaker import JOB_MARKER, SageMakerBackend
from amc_widgets.core.jobs import COMPLETED, JobSpec
from amc_widgets.ui.models.job_table import JobTable
from amc_widgets.ui.models.jobs import JobBoard
from tests.dashboard_fakes import Clock
from tests.sagemaker_harness import REGION, MotoServer, moto_client_factory

FINISHED = 200


@pytest.fixture(scope="module")
def backend():
    with MotoServer() as moto:
        client = moto_client_factory(moto.endpoint)
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                         "Principal": {"Service": "sagemaker.amazonaws.com"}}]}
        role = client("iam").create_role(RoleName="AmcExecution", AssumeRolePolicyDocument=json.dumps(trust))
        info = describe_connection(client, REGION)
        client("s3").create_bucket(Bucket=info.bucket)
        backend = SageMakerBackend(client, describe_connection(client, REGION), role["Role"]["Arn"],
                                   image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/amc:test",
                                   min_poll_seconds=0)
        # finished jobs made quickly: the very request the backend sends, left to moto (which completes
        # it at once) rather than run by the harness; each with the marker its folder starts with
        sagemaker = client("sagemaker")
        for i in range(FINISHED):
            name = f"amc-old-{i:03d}"
            request = backend.training_job_request(JobSpec(dataset="solder", hyperparameters={"model": "yolov5n"},
                                                           instance_type="ml.m5.large"), name)
            sagemaker.create_training_job(**request)
            backend.s3.put_object(Bucket=backend.bucket, Key=f"{backend.outputs_prefix}{name}/{JOB_MARKER}",
                                  Body=json.dumps({"name": name, "dataset": "solder"}).encode())
        yield backend


def count_calls(client) -> Counter:
    calls: Counter = Counter()
    client.meta.events.register("before-call.*.*", lambda model, **_: calls.update([model.name]))
    return calls


def test_listing_finished_jobs_reads_no_log(backend):
    fresh = SageMakerBackend(backend._client, backend.info, backend.role_arn, min_poll_seconds=0)
    logs_calls = count_calls(fresh.logs)
    board = JobBoard(lambda: fresh, clock=Clock(0.0))
    cards, finished = board.restore()
    board.poll_due()
    table = JobTable(jobs=finished)
    assert cards == [] and table.matching == FINISHED and {job.status for job in finished} == {COMPLETED}
    assert table.rows[0]["model"] == "yolov5n" and table.rows[0]["dataset"] == "solder"
    assert sum(logs_calls.values()) == 0, logs_calls

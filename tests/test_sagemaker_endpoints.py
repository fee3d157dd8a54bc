"""Endpoints on the SageMaker backend over real HTTP against moto, with hosting played by
tests/sagemaker_hosting.py: CreateEndpoint starts the real serving program, InvokeEndpoint reaches
it through the runtime router, autoscaling requests are checked against botocore's model."""

from __future__ import annotations

import json

import pytest

from amc_widgets import cli
from amc_widgets.backends.aws_session import describe_connection
from amc_widgets.backends.base import DeploysModels
from amc_widgets.backends.sagemaker import SageMakerBackend
from amc_widgets.core.endpoints import EndpointSpec
from amc_widgets.core.storage import pack_tar_gz
from tests.onnx_fakes import tiny_detector
from tests.sagemaker_harness import REGION, MotoServer, moto_client_factory
from tests.sagemaker_hosting import SERVE, HostingEmulator
from tests.test_serving_invocation import image_bytes

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/amc:test"
JOB = "amc-yolov5n-solder-20261126-001500-ab12"


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def hosting(moto, tmp_path_factory):
    emulator = HostingEmulator(moto_client_factory(moto.endpoint), tmp_path_factory.mktemp("hosting"), {IMAGE: SERVE})
    yield emulator
    emulator.close()


@pytest.fixture(scope="module")
def backend(moto, hosting, tmp_path_factory):
    client = moto_client_factory(moto.endpoint, runtime_endpoint=hosting.runtime_url)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "sagemaker.amazonaws.com"}}]}
    role = client("iam").create_role(RoleName="AmcExecution", AssumeRolePolicyDocument=json.dumps(trust))
    client("s3").create_bucket(Bucket=describe_connection(client, REGION).bucket)
    backend = SageMakerBackend(client, describe_connection(client, REGION), role["Role"]["Arn"], image_uri=IMAGE,
                               min_poll_seconds=0)
    hosting.attach(backend.sm, backend.endpoints.scaling)
    for job, broken in ((JOB, False), ("amc-broken-model", True)):  # what a completed job leaves in S3
        packed = tmp_path_factory.mktemp(job)
        if broken:
            (packed / "best.onnx").write_bytes(b"not a model")
        else:
            tiny_detector(packed / "best.onnx", [[32, 32, 20, 10, 0.1, 0.9]])
        (packed / "model_card.json").write_text(json.dumps({"classes": ["good", "bridge"]}))
        archive = pack_tar_gz(packed, tmp_path_factory.mktemp("archives") / "model.tar.gz")
        backend.s3.upload_file(str(archive), backend.bucket, f"{backend.outputs_prefix}{job}/output/model.tar.gz")
    return backend


@pytest.fixture()
def amc(backend, monkeypatch):
    """`amc --backend sagemaker ...` on this connection."""
    monkeypatch.setattr(cli, "_backend", lambda args: backend)
    return lambda *argv: cli.main(["--backend", "sagemaker", *argv])


@pytest.mark.slow
def test_deploy_with_autoscaling_invoke_list_and_delete(backend, hosting, amc, tmp_path, capsys):
    assert isinstance(backend, DeploysModels)
    assert amc("deploy", JOB, "--name", "solder-ep", "--instance-type", "ml.c5.large", "--min-instances", "1",
               "--max-instances", "3", "--target-invocations", "100") == 0
    err = capsys.readouterr().err
    assert "Endpoint solder-ep: Creating" in err and "Endpoint solder-ep: InService" in err
    (model,) = hosting.requests["CreateModel"]
    user_tag = {"Key": "amc_user", "Value": backend.user}
    assert model["EnableNetworkIsolation"] is True and model["ExecutionRoleArn"] == backend.role_arn
    assert model["PrimaryContainer"] == {"Image": IMAGE, "ModelDataUrl": f"s3://{backend.bucket}/"
                                         f"{backend.outputs_prefix}{JOB}/output/model.tar.gz"}
    (config,) = hosting.requests["CreateEndpointConfig"]
    assert config["ProductionVariants"] == [{"VariantName": "AllTraffic", "ModelName": "solder-ep",
                                             "InstanceType": "ml.c5.large", "InitialInstanceCount": 1}]
    for operation in ("CreateModel", "CreateEndpointConfig", "CreateEndpoint"):
        assert user_tag in hosting.requests[operation][0]["Tags"]
    (target,) = hosting.requests["RegisterScalableTarget"]
    assert (target["ResourceId"], target["MinCapacity"], target["MaxCapacity"]) == (
        "endpoint/solder-ep/variant/AllTraffic", 1, 3)
    (policy,) = hosting.requests["PutScalingPolicy"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert policy["PolicyType"] == "TargetTrackingScaling" and tracking["TargetValue"] == 100.0
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}

    image = tmp_path / "board.png"
    image.write_bytes(image_bytes("PNG", size=(128, 64)))
    assert amc("predict", "solder-ep", str(image), "--json", "--conf", "0.5") == 0
    (detection,) = json.loads(capsys.readouterr().out)["detections"]
    assert detection["class_name"] == "bridge" and detection["box"] == [44.0, 22.0, 84.0, 42.0]
    sent = hosting.invocations[-1]
    assert sent["endpoint"] == "solder-ep" and sent["x-amzn-sagemaker-custom-attributes"] == "conf=0.5"
    assert sent["content-type"] == "image/png"
    assert amc("predict", "solder-ep", str(image), "--iou", "3") == 1
    assert capsys.readouterr().err.strip() == ("amc: error: Endpoint solder-ep refused the request (400): "
                                               "Custom attribute iou must be between 0.0 and 1.0 (got 3.0)")

    assert amc("endpoints") == 0
    listed = capsys.readouterr().out
    assert "solder-ep" in listed and "InService" in listed and "ml.c5.large" in listed and "$0.102/h" in listed

    assert amc("undeploy", "solder-ep") == 0
    (deregistered,) = hosting.requests["DeregisterScalableTarget"]
    assert deregistered["ResourceId"] == "endpoint/solder-ep/variant/AllTraffic"
    assert backend.list_endpoints() == [] and "solder-ep" not in hosting.servers
    assert backend.sm.list_models()["Models"] == [] and backend.sm.list_endpoint_configs()["EndpointConfigs"] == []


@pytest.mark.slow
def test_serverless_settings_reach_the_endpoint_config(backend, hosting, amc, capsys):
    assert amc("deploy", JOB, "--name", "serverless-ep", "--serverless-memory", "2048",
               "--serverless-concurrency", "4") == 0
    config = hosting.requests["CreateEndpointConfig"][-1]
    assert config["ProductionVariants"][0]["ServerlessConfig"] == {"MemorySizeInMB": 2048, "MaxConcurrency": 4}
    endpoint = backend.describe_endpoint("serverless-ep")
    assert endpoint.instance_type == "serverless" and endpoint.hourly_cost == 0.0
    backend.delete_endpoint("serverless-ep")


@pytest.mark.slow
def test_a_model_that_does_not_load_fails_with_the_reason(backend, amc, capsys):
    assert amc("deploy", "amc-broken-model", "--name", "broken-ep") == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("amc: error: Endpoint broken-ep failed: The primary container did not pass the ping "
                           "health check. ERROR: cannot serve the model: ")
    backend.delete_endpoint("broken-ep")


def test_bad_settings_and_refusals_are_one_line_and_leave_nothing(backend, hosting, amc, capsys):
    assert amc("deploy", JOB, "--serverless-memory", "1500") == 1
    assert capsys.readouterr().err.strip() == (
        "amc: error: Serverless memory must be 1024, 2048, ... 6144 MB (got 1500)")
    assert amc("deploy", JOB, "--min-instances", "1") == 1
    assert "Autoscaling needs --min-instances, --max-instances and --target-invocations" in capsys.readouterr().err
    assert amc("deploy", "amc-no-such-job") == 1
    assert capsys.readouterr().err.strip() == (
        "amc: error: Training job 'amc-no-such-job' has no model to deploy (it has not completed)")
    other = SageMakerBackend(backend._client, backend.info, backend.role_arn, image_uri=IMAGE + "-missing")
    with pytest.raises(Exception, match="Requested image .* not found"):
        other.deploy(EndpointSpec(JOB, name="no-image-ep", instance_type="ml.c5.large"))
    assert backend.list_endpoints() == [] and backend.sm.list_models()["Models"] == []

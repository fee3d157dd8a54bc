"""The Endpoints tab's model, headless: settings and cost rows, the invoke snippet, and the whole
deploy / try / delete cycle on the local backend with the real serving program."""

from __future__ import annotations

import json

import pytest

from amc_widgets.backends.local import LocalBackend
from amc_widgets.core.endpoints import FAILED, IN_SERVICE, EndpointDescription
from amc_widgets.ui.models.endpoints import EndpointCard, EndpointsModel, invoke_snippet
from tests.dashboard_fakes import assert_imports_no_widgets
from tests.test_local_endpoints import JOB, completed_job, home  # noqa: F401 (fixture)
from tests.test_serving_invocation import image_bytes


def test_the_model_imports_no_widgets():
    assert_imports_no_widgets("amc_widgets.ui.models.endpoints")


def test_settings_show_instances_scaling_and_cost():
    endpoint = EndpointDescription("ep", IN_SERVICE, JOB, "ml.c5.large", 2, created=0.0, hourly_cost=0.204,
                                   extra={"min_instances": 1, "max_instances": 4, "target_invocations": 100})
    assert EndpointCard(name="ep", description=endpoint).settings(now=7200) == {
        "Job": JOB, "Instances": "2 x ml.c5.large",
        "Scaling": "1-4 instances, target 100 invocations/instance/min", "Cost": "$0.204/h, $0.41 so far"}
    serverless = EndpointDescription("ep", IN_SERVICE, JOB, "serverless", 1, 0.0,
                                     extra={"serverless_memory_mb": 2048, "serverless_max_concurrency": 5})
    assert EndpointCard(name="ep", description=serverless).settings(0)["Serverless"] == "2048 MB, max concurrency 5"


def test_the_snippet_is_boto3_on_sagemaker_and_plain_http_here():
    remote = invoke_snippet(EndpointDescription("solder-ep", IN_SERVICE, JOB, "ml.c5.large", 1, 0.0,
                                                url="arn:aws:sagemaker:eu-west-1:1:endpoint/solder-ep"), "eu-west-1")
    assert "boto3.client('sagemaker-runtime', region_name='eu-west-1')" in remote
    assert "EndpointName='solder-ep'" in remote
    compile(remote, "snippet", "exec")
    local = invoke_snippet(EndpointDescription("e", IN_SERVICE, JOB, "local", 1, 0.0, url="http://127.0.0.1:5000"))
    assert "'http://127.0.0.1:5000/invocations'" in local
    compile(local, "snippet", "exec")


@pytest.mark.slow
def test_deploy_try_and_delete_on_this_machine(home):  # noqa: F811 (the fixture)
    completed_job(home)
    backend = LocalBackend()
    model = EndpointsModel(lambda: backend)
    seen = []
    model.observe(lambda change: seen.append(list(change["new"])), "names")
    endpoint = model.deploy(JOB)
    assert endpoint is not None and endpoint.status == IN_SERVICE and model.error == ""
    assert seen == [[endpoint.name]] and model.ready(endpoint.name)
    model.try_image(endpoint.name, image_bytes("PNG", size=(128, 64)), "image/png", conf=0.5)
    state = model.card(endpoint.name).try_it
    assert state.error == "" and state.seconds > 0 and state.drawn.startswith(b"\x89PNG")
    assert [d["class_name"] for d in json.loads(state.answer)["detections"]] == ["bridge"]
    model.try_image(endpoint.name, b"not an image", "image/png")
    assert state.error.endswith("(400): Body is not a JPEG or PNG image")
    model.delete(endpoint.name)
    assert model.names == [] and backend.list_endpoints() == []
    model.refresh()
    assert model.names == []


@pytest.mark.slow
def test_a_failed_deploy_is_a_card_with_its_reason(home):  # noqa: F811
    completed_job(home, broken=True)
    model = EndpointsModel(lambda: LocalBackend())
    endpoint = model.deploy(JOB)
    assert endpoint.status == FAILED
    assert "cannot serve the model" in model.card(endpoint.name).description.failure_reason
    model.delete(endpoint.name)
    assert model.deploy("amc-no-such-job") is None
    assert model.error == "Deploy failed: Training job 'amc-no-such-job' has no model to deploy (it has not completed)"

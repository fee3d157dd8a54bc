"""Endpoints on this machine: `amc deploy` starts the real serving program as a detached process,
which outlives the CLI; predict, list, fail with a reason, delete."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from amc_widgets import cli
from amc_widgets.backends.base import DeploysModels
from amc_widgets.backends.local import LocalBackend
from amc_widgets.backends.local_endpoints import ENDPOINT_ENV
from amc_widgets.core.endpoints import (
    CREATING,
    FAILED,
    IN_SERVICE,
    EndpointDescription,
    EndpointNotFoundError,
    EndpointSpec,
    make_endpoint_name,
    wait_until_settled,
)
from amc_widgets.core.processes import kill_processes, processes_with_environment
from amc_widgets.core.storage import pack_tar_gz
from tests.onnx_fakes import tiny_detector
from tests.test_serving_invocation import image_bytes

JOB = "amc-yolov5n-solder-20261126-001500-ab12"


def completed_job(home, user: str = "ana", job: str = JOB, broken: bool = False) -> str:
    """A job's outputs as a completed local job leaves them: model.tar.gz with best.onnx and the card."""
    packed = home / "packed" / job
    packed.mkdir(parents=True)
    if broken:
        (packed / "best.onnx").write_bytes(b"not an onnx model")
    else:
        tiny_detector(packed / "best.onnx", [[32, 32, 20, 10, 0.1, 0.9]])
    (packed / "model_card.json").write_text(json.dumps({"classes": ["good", "bridge"]}))
    pack_tar_gz(packed, home / "users" / user / "training-jobs" / job / "output" / "model.tar.gz")
    return job


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AMC_HOME", str(tmp_path))
    monkeypatch.setenv("AMC_USER", "ana")
    yield tmp_path
    for folder in (tmp_path / "endpoints").glob("*"):  # whatever a failed test left running
        kill_processes(lambda folder=folder: processes_with_environment(f"{ENDPOINT_ENV}={folder}"))


def test_names_and_waiting_are_plain_logic():
    name = make_endpoint_name(JOB, clock=lambda: 0)
    assert name.startswith("amc-yolov5n-solder-20261126-001500") and "-ep-0101000000-" in name and len(name) <= 63
    states = iter([CREATING, CREATING, IN_SERVICE])
    seen, now = [], [0.0]

    def describe():
        return EndpointDescription("e", next(states), JOB, "local", 1, 0.0)

    final = wait_until_settled(describe, lambda e: seen.append(e.status), timeout=10,
                               sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert final.status == IN_SERVICE and seen == [CREATING, IN_SERVICE] and now[0] == 2.0
    with pytest.raises(TimeoutError, match="still Creating after 1 s"):
        wait_until_settled(lambda: EndpointDescription("e", CREATING, JOB, "local", 1, 0.0), lambda e: None,
                           timeout=1, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert EndpointDescription("e", IN_SERVICE, JOB, "ml.c5.large", 1, 0.0, hourly_cost=0.12).cost_so_far(1800) == 0.06


@pytest.mark.slow
def test_deploy_outlives_the_cli_predicts_lists_and_undeploys(home, tmp_path, capsys):
    completed_job(home)
    # `amc deploy` in its own process, which exits once the endpoint is InService
    done = subprocess.run([sys.executable, "-m", "amc_widgets.cli", "deploy", JOB, "--name", "solder-ep"],
                          capture_output=True, text=True, timeout=120, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert "Endpoint solder-ep: Creating" in done.stderr and "Endpoint solder-ep: InService" in done.stderr
    backend = LocalBackend()
    assert isinstance(backend, DeploysModels)
    endpoint = backend.describe_endpoint("solder-ep")
    assert endpoint.status == IN_SERVICE and endpoint.job_name == JOB and endpoint.url.startswith("http://127.0.0.1:")

    answer = backend.invoke_endpoint("solder-ep", image_bytes("PNG", size=(128, 64)), "image/png")
    (detection,) = json.loads(answer.body)["detections"]
    assert detection["class_name"] == "bridge" and detection["box"] == [44.0, 22.0, 84.0, 42.0] and answer.seconds > 0

    image = tmp_path / "board.png"
    Image.new("RGB", (128, 64), (30, 90, 30)).save(image)
    capsys.readouterr()
    assert cli.main(["endpoints"]) == 0
    listed = capsys.readouterr().out
    assert "solder-ep" in listed and "InService" in listed and JOB in listed and "$0.000/h" in listed
    assert cli.main(["predict", "solder-ep", str(image), "--out", str(tmp_path / "drawn")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"{image}: 1 object(s) in ") and printed.rstrip().endswith(" ms: bridge 0.90")
    drawn = Image.open(tmp_path / "drawn" / "board.png")
    assert drawn.size == (128, 64) and drawn.convert("RGB").getpixel((44, 30)) != (30, 90, 30)
    assert cli.main(["predict", "solder-ep", str(image), "--json", "--conf", "0.95"]) == 0
    assert json.loads(capsys.readouterr().out)["detections"] == []
    assert cli.main(["predict", "solder-ep", str(image), "--conf", "7"]) == 1
    assert capsys.readouterr().err.strip() == ("amc: error: Endpoint solder-ep refused the request (400): "
                                               "Custom attribute conf must be between 0.0 and 1.0 (got 7.0)")

    with pytest.raises(EndpointNotFoundError):  # another user sees nothing of it
        LocalBackend(user="bob").describe_endpoint("solder-ep")
    assert LocalBackend(user="bob").list_endpoints() == []

    assert cli.main(["undeploy", "solder-ep"]) == 0
    assert processes_with_environment(f"{ENDPOINT_ENV}={home / 'endpoints' / 'solder-ep'}") == []
    assert backend.list_endpoints() == [] and not (home / "endpoints" / "solder-ep").exists()


@pytest.mark.slow
def test_a_model_that_does_not_load_fails_with_its_reason(home, capsys):
    completed_job(home, broken=True)
    assert cli.main(["deploy", JOB, "--name", "broken-ep"]) == 1
    err = capsys.readouterr().err
    assert "Endpoint broken-ep: Creating" in err
    assert err.strip().splitlines()[-1].startswith(
        "amc: error: Endpoint broken-ep failed: ERROR: cannot serve the model: ")
    assert LocalBackend().describe_endpoint("broken-ep").status == FAILED
    LocalBackend().delete_endpoint("broken-ep")


def test_a_job_without_a_model_and_sagemaker_settings_are_refused_in_one_line(home, capsys):
    assert cli.main(["deploy", "amc-no-such-job"]) == 1
    assert capsys.readouterr().err.strip() == (
        "amc: error: Training job 'amc-no-such-job' has no model to deploy (it has not completed)")
    completed_job(home)
    with pytest.raises(Exception, match="instances, serverless and scaling are for SageMaker"):
        LocalBackend().deploy(EndpointSpec(JOB, instance_type="ml.c5.large"))
    assert cli.main(["predict", "nope", "x.png"]) == 1
    assert capsys.readouterr().err.strip() == "amc: error: No endpoint named 'nope'"

"""Plays SageMaker hosting on top of moto, for tests of the SageMaker backend's endpoints.

moto stores models, endpoint configs and endpoints (InService at once) and answers InvokeEndpoint
with canned results.  :class:`HostingEmulator` makes them real: CreateEndpoint starts the real
serving program (``container/train serve``) on the model's ``model.tar.gz`` from moto's S3, the
endpoint is Creating until its ``/ping`` answers and Failed (with the reason) if it ends, and a
small router plays the ``sagemaker-runtime`` URL: ``POST /endpoints/<name>/invocations`` goes to
that endpoint's server, and a 4xx from it comes back as SageMaker's ModelError.

Where AWS is strict it is strict too: CreateModel needs a role that trusts SageMaker and a
registered image; an endpoint config names a hosting instance type or valid serverless settings;
Application Auto Scaling targets an InService endpoint's variant; every enum in those requests is
checked against botocore's own service model.  It records each request as sent (``requests``).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from moto.sagemaker.models import sagemaker_backends

from tests.conftest import free_port
from tests.sagemaker_harness import ACCOUNT, REGION, REPO, SageMakerEmulator, validation_error

SERVE = [sys.executable, str(REPO / "container" / "train"), "serve"]
HOSTING_TYPES = {"ml.t2.medium", "ml.c5.large", "ml.c5.xlarge", "ml.m5.large", "ml.m5.xlarge", "ml.g4dn.xlarge"}
SERVERLESS_MEMORY = range(1024, 6145, 1024)


def check_enums(shape, value, where: str = "") -> None:
    """Raise ValidationException for a value outside an enum of botocore's model, anywhere in ``value``."""
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, item in value.items():
            if key in shape.members:
                check_enums(shape.members[key], item, f"{where}.{key}")
    elif shape.type_name == "list" and isinstance(value, list):
        for item in value:
            check_enums(shape.member, item, where)
    elif shape.type_name == "string" and getattr(shape, "enum", None) and value not in shape.enum:
        raise validation_error(f"{where.lstrip('.')}: '{value}' is not one of {shape.enum}")


class HostingEmulator:
    """Serves the endpoints created in moto with the real serving program."""

    _role_trusts_sagemaker = SageMakerEmulator._role_trusts_sagemaker  # the same check, on self.iam

    def __init__(self, client, workdir: Path, images: dict[str, list[str]]):
        self.s3, self.sm, self.iam = client("s3"), client("sagemaker"), client("iam")
        self.workdir, self.images = workdir, dict(images)
        self.requests: dict[str, list[dict]] = {}  # operation -> bodies as sent
        self.invocations: list[dict] = []  # the headers of each InvokeEndpoint the router received
        self.servers: dict[str, tuple[subprocess.Popen, int]] = {}
        self.scalable: set[str] = set()
        self.router = ThreadingHTTPServer(("127.0.0.1", free_port()), self._handler())
        self.runtime_url = f"http://127.0.0.1:{self.router.server_address[1]}"
        threading.Thread(target=self.router.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.router.shutdown()
        for process, _ in self.servers.values():
            _stop(process)

    def _endpoint(self, name: str):
        return sagemaker_backends[ACCOUNT][REGION].endpoints.get(name)

    # --- the control plane --------------------------------------------------------------------
    def attach(self, sagemaker_client, autoscaling_client=None) -> None:
        events = sagemaker_client.meta.events
        for operation in ("CreateModel", "CreateEndpointConfig", "CreateEndpoint"):
            events.register(f"before-call.sagemaker.{operation}", self._check(sagemaker_client, operation))
        events.register("after-call.sagemaker.CreateEndpoint", self._start)
        events.register("after-call.sagemaker.DeleteEndpoint", self._stop_endpoint)
        if autoscaling_client is not None:
            for operation in ("RegisterScalableTarget", "PutScalingPolicy", "DeregisterScalableTarget"):
                autoscaling_client.meta.events.register(f"before-call.application-autoscaling.{operation}",
                                                        self._check(autoscaling_client, operation))

    def _check(self, client, operation: str):
        shape = client.meta.service_model.operation_model(operation).input_shape

        def check(params, **_):
            body = json.loads(params["body"]) if params.get("body") else {}
            check_enums(shape, body)
            getattr(self, f"_check_{operation}", lambda b: None)(body)
            self.requests.setdefault(operation, []).append(body)

        return check

    def _check_CreateModel(self, body: dict) -> None:  # noqa: N802 - named after the operation
        if not self._role_trusts_sagemaker(body.get("ExecutionRoleArn", "")):
            raise validation_error(f"Could not assume role {body.get('ExecutionRoleArn')}.")
        if body["PrimaryContainer"]["Image"] not in self.images:
            raise validation_error(f"Requested image {body['PrimaryContainer']['Image']} not found.")
        if not body["PrimaryContainer"].get("ModelDataUrl", "").startswith("s3://"):
            raise validation_error("ModelDataUrl must be an s3:// URL")

    def _check_CreateEndpointConfig(self, body: dict) -> None:  # noqa: N802
        for variant in body["ProductionVariants"]:
            serverless = variant.get("ServerlessConfig")
            if serverless:
                memory, concurrency = serverless["MemorySizeInMB"], serverless["MaxConcurrency"]
                if memory not in SERVERLESS_MEMORY or not 1 <= concurrency <= 200:
                    raise validation_error(f"Invalid ServerlessConfig {serverless}")
            elif variant.get("InstanceType") not in HOSTING_TYPES or variant.get("InitialInstanceCount", 0) < 1:
                raise validation_error(f"Invalid instance type or count in {variant}")

    def _check_RegisterScalableTarget(self, body: dict) -> None:  # noqa: N802
        name = body["ResourceId"].split("/")[1]
        endpoint = self._endpoint(name)
        if endpoint is None or endpoint.endpoint_status != "InService":
            raise validation_error(f"The endpoint {name} is not InService")
        if not 1 <= body["MinCapacity"] <= body["MaxCapacity"]:
            raise validation_error("MinCapacity must be >= 1 and <= MaxCapacity")
        self.scalable.add(body["ResourceId"])

    def _check_PutScalingPolicy(self, body: dict) -> None:  # noqa: N802
        if body["ResourceId"] not in self.scalable:
            raise validation_error(f"No scalable target registered for {body['ResourceId']}")

    def _start(self, **_) -> None:
        """after-call CreateEndpoint: Creating, and the serving program starting on the model."""
        name = self.requests["CreateEndpoint"][-1]["EndpointName"]
        endpoint = self._endpoint(name)
        endpoint.endpoint_status = "Creating"
        threading.Thread(target=self._serve, args=(name,), daemon=True).start()

    def _serve(self, name: str) -> None:
        endpoint = self._endpoint(name)
        config = self.sm.describe_endpoint_config(EndpointConfigName=endpoint.endpoint_config_name)
        model = self.sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
        url = model["PrimaryContainer"]["ModelDataUrl"]
        root = self.workdir / name
        (root / "model").mkdir(parents=True, exist_ok=True)
        bucket, _, key = url.removeprefix("s3://").partition("/")
        try:
            self.s3.download_file(bucket, key, str(root / "model" / "model.tar.gz"))
        except Exception as exc:  # noqa: BLE001 - as SageMaker reports it
            endpoint.endpoint_status, endpoint.failure_reason = "Failed", f"Failed to download model data: {exc}"
            return
        port = free_port()
        log = open(root / "log.txt", "wb")
        process = subprocess.Popen([*self.images[model["PrimaryContainer"]["Image"]], "--host", "127.0.0.1",
                                    "--port", str(port), "--workers", "1"],
                                   env={**os.environ, "AMC_ML_ROOT": str(root)}, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.servers[name] = (process, port)
        while process.poll() is None:
            if _ping(port):
                endpoint.endpoint_status = "InService"
                return
            time.sleep(0.1)
        lines = (root / "log.txt").read_text(errors="replace").strip().splitlines()
        endpoint.endpoint_status = "Failed"
        endpoint.failure_reason = ("The primary container did not pass the ping health check. "
                                   + (lines[-1] if lines else ""))

    def _stop_endpoint(self, **_) -> None:
        """after-call DeleteEndpoint: the servers of endpoints moto no longer has are stopped."""
        for name in list(self.servers):
            if self._endpoint(name) is None:
                _stop(self.servers.pop(name)[0])

    # --- the runtime ---------------------------------------------------------------------------
    def _handler(self):
        emulator = self

        class Router(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, kind: str, fields: dict) -> None:
                self._answer(status, json.dumps(fields).encode(),
                             {"Content-Type": "application/json", "x-amzn-ErrorType": kind})

            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.strip("/").split("/")
                name = parts[1] if len(parts) == 3 and parts[0] == "endpoints" and parts[2] == "invocations" else ""
                emulator.invocations.append({"endpoint": name, **{k.lower(): v for k, v in self.headers.items()}})
                endpoint = emulator._endpoint(name)
                if endpoint is None or name not in emulator.servers:
                    return self._error(400, "ValidationError",
                                       {"message": f"Endpoint {name} of account {ACCOUNT} not found."})
                if endpoint.endpoint_status != "InService":
                    return self._error(400, "ValidationError", {"message": f"Endpoint {name} is not InService."})
                forwarded = {k: v for k, v in self.headers.items()
                             if k.lower() in ("content-type", "accept", "x-amzn-sagemaker-custom-attributes")}
                conn = http.client.HTTPConnection("127.0.0.1", emulator.servers[name][1], timeout=60)
                conn.request("POST", "/invocations", body=body, headers=forwarded)
                response = conn.getresponse()
                answer = response.read()
                conn.close()
                if response.status >= 400:
                    text = answer.decode(errors="replace")
                    return self._error(424, "ModelError", {
                        "ErrorCode": "CLIENT_ERROR_FROM_MODEL", "OriginalStatusCode": response.status,
                        "OriginalMessage": text,
                        "Message": f"Received client error ({response.status}) from primary with message \"{text}\"."})
                self._answer(200, answer, {"Content-Type": response.getheader("Content-Type", ""),
                                           "x-Amzn-Invoked-Production-Variant": "AllTraffic"})

        return Router


def _ping(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/ping")
        return conn.getresponse().status == 200
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


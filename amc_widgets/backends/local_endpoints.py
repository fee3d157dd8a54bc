"""Endpoints on this machine: the serving program as a detached process on 127.0.0.1, one per
endpoint, which outlives the CLI or dashboard that started it.

``<AMC_HOME>/endpoints/<name>/`` holds ``endpoint.json`` (what was asked, the port, the owner),
``model/model.tar.gz`` (a copy of the job's), ``log.txt`` (the server's output) and ``deleting``
(present while it is being deleted).  The status is read from the processes themselves: none left
is Failed (the log says why), a 200 from ``/ping`` is InService, anything else is Creating.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from amc_widgets.backends.base import Prediction
from amc_widgets.core.container_contract import CUSTOM_ATTRIBUTES_HEADER, INVOCATIONS_PATH, MODEL_ARCHIVE, PING_PATH
from amc_widgets.core.endpoints import (
    CREATING,
    DELETING,
    FAILED,
    IN_SERVICE,
    EndpointDescription,
    EndpointNotFoundError,
    EndpointSpec,
    check_endpoint_name,
    make_endpoint_name,
)
from amc_widgets.core.errors import AmcError
from amc_widgets.core.processes import kill_processes, processes_with_environment

ENDPOINT_ENV = "AMC_ENDPOINT"  # marks an endpoint's processes (its folder), to find them again
LOCAL_WORKERS = 2  # this machine also runs the dashboard and training: two workers, not one per CPU
STOP_SECONDS = 15


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalEndpoints:
    """Deploy, describe, invoke and delete endpoints under ``folder`` for ``user``."""

    def __init__(self, folder: Path, user: str, model_archive: Callable[[str], Path],
                 clock: Callable[[], float] = time.time,
                 popen: Callable[..., subprocess.Popen] = subprocess.Popen):
        self.folder = Path(folder)
        self.user = user
        self.model_archive = model_archive  # job name -> its model.tar.gz (raises when there is none)
        self.clock = clock
        self._popen = popen

    def _settings(self, name: str) -> dict:
        path = self.folder / name / "endpoint.json"
        try:
            settings = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            settings = {}
        if settings.get("user") != self.user:
            raise EndpointNotFoundError(f"No endpoint named '{name}'")
        return settings

    def _processes(self, name: str) -> list[int]:
        return processes_with_environment(f"{ENDPOINT_ENV}={self.folder / name}")

    def set_scaling(self, name: str) -> None:
        """One server on this machine: nothing to scale."""

    def deploy(self, spec: EndpointSpec) -> EndpointDescription:
        """Start the serving program on the job's model; returns at once (Creating)."""
        if spec.instance_type != "local" or spec.instance_count != 1 or spec.serverless_memory_mb or spec.scales:
            raise AmcError("Endpoints on this machine run one server: "
                           "instances, serverless and scaling are for SageMaker")
        archive = self.model_archive(spec.job_name)
        name = check_endpoint_name(spec.name) if spec.name else make_endpoint_name(spec.job_name, self.clock)
        folder = self.folder / name
        if folder.exists():
            raise FileExistsError(f"An endpoint named '{name}' already exists")
        (folder / "model").mkdir(parents=True)
        shutil.copyfile(archive, folder / "model" / MODEL_ARCHIVE)
        port = free_port()
        settings = {"user": self.user, "spec": {**asdict(spec), "name": name}, "port": port, "created": self.clock()}
        (folder / "endpoint.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
        with open(folder / "log.txt", "wb") as log:
            server = self._popen(
                [sys.executable, "-m", "amc_widgets.serving", "--host", "127.0.0.1", "--port", str(port),
                 "--model", str(folder / "model"), "--workers", str(LOCAL_WORKERS)],
                env={**os.environ, ENDPOINT_ENV: str(folder)}, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=server.wait, daemon=True).start()  # reap it if it ends while we run
        return self.describe(name)

    def describe(self, name: str) -> EndpointDescription:
        settings = self._settings(name)
        spec, folder = settings["spec"], self.folder / name
        url = f"http://127.0.0.1:{settings['port']}"
        endpoint = EndpointDescription(name=name, status=CREATING, job_name=spec["job_name"], instance_type="local",
                                       instance_count=1, created=settings["created"], url=url)
        if (folder / "deleting").exists():
            endpoint.status = DELETING
        elif not self._processes(name):
            endpoint.status, endpoint.failure_reason = FAILED, _last_error(folder / "log.txt")
        elif _ping(settings["port"]):
            endpoint.status = IN_SERVICE
        return endpoint

    def list(self) -> list[EndpointDescription]:
        endpoints = []
        for path in sorted(self.folder.glob("*/endpoint.json")) if self.folder.is_dir() else []:
            try:
                endpoints.append(self.describe(path.parent.name))
            except EndpointNotFoundError:  # another user's, or half written
                continue
        return sorted(endpoints, key=lambda e: e.created, reverse=True)

    def invoke(self, name: str, body: bytes, content_type: str, accept: str = "application/json",
               custom_attributes: str = "") -> Prediction:
        endpoint = self.describe(name)
        if endpoint.status != IN_SERVICE:
            raise AmcError(f"Endpoint {name} is {endpoint.status}, not InService"
                           + (f": {endpoint.failure_reason}" if endpoint.failure_reason else ""))
        headers = {"Content-Type": content_type, "Accept": accept}
        if custom_attributes:
            headers[CUSTOM_ATTRIBUTES_HEADER] = custom_attributes
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self._settings(name)["port"], timeout=60)
        try:
            conn.request("POST", INVOCATIONS_PATH, body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
        finally:
            conn.close()
        if response.status >= 400:
            reason = answer.decode("utf-8", "replace").strip().splitlines()
            raise AmcError(f"Endpoint {name} refused the request ({response.status}): "
                           f"{reason[0] if reason else response.reason}")
        return Prediction(answer, response.getheader("Content-Type", ""), time.perf_counter() - started)

    def delete(self, name: str) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a while) and remove the endpoint's files."""
        self._settings(name)
        folder = self.folder / name
        (folder / "deleting").touch()
        for pid in self._processes(name):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_SECONDS
        while self._processes(name) and time.monotonic() < deadline:
            time.sleep(0.1)
        kill_processes(lambda: self._processes(name))
        shutil.rmtree(folder)


def _ping(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", PING_PATH)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def _last_error(log: Path) -> str:
    """Why the server ended: its ERROR line, else its last line."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
    except OSError:
        lines = []
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["The serving process ended"])[-1]

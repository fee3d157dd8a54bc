"""Shared fixtures: demo datasets and a runner for the training container."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from amc_widgets.core.demo_dataset import make_demo_dataset

REPO = Path(__file__).resolve().parent.parent
CONTAINER_TRAIN = REPO / "container" / "train"

ASSET = "yolov5nu.pt"  # the release asset the stand-in plays

# Small and fast: a real model, real training, a few seconds per epoch on 2 CPU cores.
FAST_TRAINING = {"model": "yolov5n", "imgsz": "96", "batch": "8", "workers": "0", "plots": "false"}


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """A small demo dataset (32 train / 16 val images) shared read-only by the tests."""
    root = tmp_path_factory.mktemp("small") / "dataset"
    make_demo_dataset(root, train=32, val=16, size=128, seed=1)
    return root


@pytest.fixture()
def dataset_copy(small_dataset, tmp_path) -> Path:
    """A private copy of the small dataset that a test may break."""
    dest = tmp_path / "dataset"
    shutil.copytree(small_dataset, dest)
    return dest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_group(process: subprocess.Popen, timeout: float = 15) -> None:
    """End a server started with ``start_new_session=True`` and everything in its process group:
    SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until(predicate, timeout: float = 30.0, what: str = "condition", every: float = 0.1):
    """Poll ``predicate`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def zip_folder(folder: Path, archive: Path, top: str = "export") -> zipfile.ZipFile:
    """Write ``folder``'s files into ``archive`` below ``top/``, as export tools do; the archive is
    returned open for appending (close it, or use it in ``with``)."""
    zf = zipfile.ZipFile(archive, "w")
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            zf.write(path, f"{top}/{path.relative_to(folder).as_posix()}")
    return zf


@dataclass
class ContainerRun:
    root: Path
    code: int | None
    log: str

    @property
    def failure(self) -> str:
        path = self.root / "output" / "failure"
        return path.read_text() if path.exists() else ""


def make_ml_root(root: Path, dataset: Path, hyperparameters: dict, resourceconfig: dict | None = None) -> Path:
    """Lay out an emulated /opt/ml as SageMaker would: config files and the training channel."""
    (root / "input" / "config").mkdir(parents=True, exist_ok=True)
    (root / "input" / "data").mkdir(parents=True, exist_ok=True)
    shutil.copytree(dataset, root / "input" / "data" / "training")
    (root / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({k: str(v) for k, v in hyperparameters.items()}))
    (root / "input" / "config" / "inputdataconfig.json").write_text(
        json.dumps({"training": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}}))
    if resourceconfig is not None:
        (root / "input" / "config" / "resourceconfig.json").write_text(json.dumps(resourceconfig))
    return root


def container_env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "AMC_"))}
    env.update(AMC_ML_ROOT=str(root), PYTHONUNBUFFERED="1", **extra)
    return env


def start_container(root: Path, log_path: Path, **extra: str) -> subprocess.Popen:
    handle = open(log_path, "w")
    return subprocess.Popen([sys.executable, str(CONTAINER_TRAIN)], env=container_env(root, **extra),
                            stdout=handle, stderr=subprocess.STDOUT)


def run_container(root: Path, timeout: float = 600, **extra: str) -> ContainerRun:
    log_path = root.parent / f"{root.name}.log"
    process = start_container(root, log_path, **extra)
    try:
        code = process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return ContainerRun(root=root, code=code, log=log_path.read_text())


@pytest.fixture(scope="session")
def trained_run(small_dataset, tmp_path_factory) -> ContainerRun:
    """One real 2-epoch training run of container/train, shared by the tests that inspect it."""
    root = make_ml_root(tmp_path_factory.mktemp("trained") / "ml", small_dataset,
                        {**FAST_TRAINING, "epochs": 2, "plots": "true"})
    return run_container(root)


@pytest.fixture(scope="session")
def stand_in_asset(tmp_path_factory) -> Path:
    """A COCO-shaped (80 classes) yolov5n checkpoint saved by ultralytics, untrained."""
    from amc_widgets.training.ultralytics_env import keep_pillow_open, prepare_offline_ultralytics

    prepare_offline_ultralytics()
    from ultralytics import YOLO

    keep_pillow_open()  # later tests in this process check bad images
    path = tmp_path_factory.mktemp("assets") / ASSET
    YOLO("yolov5n.yaml").save(str(path))
    return path


@pytest.fixture()
def asset_server(stand_in_asset):
    """Serves the stand-in asset on 127.0.0.1; counts requests; stopped after the test."""
    requests: list[str] = []

    class Counting(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             partial(Counting, directory=str(stand_in_asset.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()
    thread.join()

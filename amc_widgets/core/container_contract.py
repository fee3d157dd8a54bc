"""The contract between SageMaker and AMC's container: the ``/opt/ml`` layout, the files and
channels training reads, the exit codes and failure text it leaves, where its log goes, and the
hosting contract the same image serves a model by (port, ``/ping``, ``/invocations``).

The container (``amc_widgets.training``, ``amc_widgets.serving``), the local job runner (which plays
SageMaker on this machine) and the tests' SageMaker emulator all take it from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ML_ROOT_ENV = "AMC_ML_ROOT"  # moves the root, so the container runs outside Docker (local backend, tests)
DEFAULT_ML_ROOT = "/opt/ml"

TRAINING_CHANNEL = "training"  # required: the dataset
WEIGHTS_CHANNEL = "weights"  # optional: .pt files to start from

EXIT_COMPLETED = 0
EXIT_FAILED = 1  # training or export failed, or the instances cannot run the job (hosts, GPUs)
EXIT_BAD_INPUT = 2  # hyperparameters, dataset or channels refused before training started
EXIT_STOPPED = 143  # 128 + SIGTERM: stopped on request, the model trained so far saved

FAILURE_LIMIT = 1024  # SageMaker shows the first 1,024 characters of the failure file as FailureReason

TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"  # CloudWatch Logs group of the container's output

# SageMaker starts the image as `docker run <image> train` or `docker run <image> serve`
TRAIN_COMMAND = "train"
SERVE_COMMAND = "serve"

# hosting: SageMaker sends health checks and requests to this port and these paths
SERVING_PORT = 8080
SERVING_PORT_ENV = "SAGEMAKER_BIND_TO_PORT"  # SageMaker's own override (multi-container endpoints)
SERVING_WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"  # as SageMaker's own model servers read it
PING_PATH = "/ping"
INVOCATIONS_PATH = "/invocations"
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"  # InvokeEndpoint's CustomAttributes
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # InvokeEndpoint refuses bigger bodies on real-time endpoints
MODEL_ARCHIVE = "model.tar.gz"  # ModelDataUrl; SageMaker unpacks it into model/, AMC also unpacks it itself


@dataclass(frozen=True)
class MLPaths:
    """Where everything lives under the (possibly emulated) ``/opt/ml`` root."""

    root: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MLPaths:
        environ = os.environ if environ is None else environ
        return cls(Path(environ.get(ML_ROOT_ENV, DEFAULT_ML_ROOT)))

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def hyperparameters(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def resourceconfig(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def inputdataconfig(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"


"""The SageMaker training contract: the ``/opt/ml`` layout and the files SageMaker writes there.

``AMC_ML_ROOT`` moves the root, so the same program runs outside Docker (local backend, tests).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amc_widgets.core.errors import AmcError

FAILURE_LIMIT = 1024  # SageMaker shows the first 1,024 characters of the failure file as FailureReason


class ContractError(AmcError, ValueError):
    """A file SageMaker should have written is missing or malformed."""


@dataclass(frozen=True)
class MLPaths:
    """Where everything lives under the (possibly emulated) ``/opt/ml`` root."""

    root: Path

    @classmethod
    def from_env(cls) -> "MLPaths":
        return cls(Path(os.environ.get("AMC_ML_ROOT", "/opt/ml")))

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
    def output_data_dir(self) -> Path:
        return self.root / "output" / "data"

    @property
    def failure_file(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"


def _read_json(path: Path, default: Any) -> Any:
    if not path.exists():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ContractError(f"{path.name} is not valid JSON: {exc}") from None


def read_hyperparameters(paths: MLPaths) -> dict[str, Any]:
    data = _read_json(paths.hyperparameters, {})
    if not isinstance(data, dict):
        raise ContractError("hyperparameters.json must be a JSON object")
    return data


def read_input_channels(paths: MLPaths) -> dict[str, Any]:
    data = _read_json(paths.inputdataconfig, {})
    if not isinstance(data, dict):
        raise ContractError("inputdataconfig.json must be a JSON object")
    return data


@dataclass(frozen=True)
class ClusterConfig:
    """This host's place in the cluster, from resourceconfig.json (one host when absent)."""

    current_host: str
    hosts: tuple[str, ...]
    network_interface: str | None

    @property
    def node_rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def master_host(self) -> str:
        return self.hosts[0]

    @property
    def is_master(self) -> bool:
        return self.current_host == self.master_host


def read_cluster(paths: MLPaths) -> ClusterConfig:
    data = _read_json(paths.resourceconfig, None)
    if data is None:
        return ClusterConfig(current_host="algo-1", hosts=("algo-1",), network_interface=None)
    try:
        hosts = tuple(sorted(str(h) for h in data["hosts"]))
        current = str(data["current_host"])
    except (KeyError, TypeError):
        raise ContractError("resourceconfig.json needs 'current_host' and 'hosts'") from None
    if current not in hosts:
        raise ContractError(f"resourceconfig.json: current_host {current!r} is not among hosts {list(hosts)}")
    return ClusterConfig(current_host=current, hosts=hosts, network_interface=data.get("network_interface_name"))


def resolve_host(name: str) -> str:
    """The address of a cluster host.  ``AMC_HOST_ADDRESSES`` ('algo-1=127.0.0.1,...') maps hosts
    for local emulation, where SageMaker's host names do not resolve."""
    for pair in os.environ.get("AMC_HOST_ADDRESSES", "").split(","):
        host, _, address = pair.partition("=")
        if host.strip() == name and address.strip():
            return address.strip()
    return socket.gethostbyname(name)


def write_failure(paths: MLPaths, message: str) -> None:
    """Write the failure reason unless a more specific one is already there (first writer wins)."""
    paths.failure_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(paths.failure_file, "x", encoding="utf-8") as handle:
            handle.write(message)
    except FileExistsError:
        pass

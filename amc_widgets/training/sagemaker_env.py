"""Reading what SageMaker writes under ``/opt/ml`` (the layout is in
:mod:`amc_widgets.core.container_contract`): hyperparameters, channels, the cluster.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amc_widgets.core.container_contract import MLPaths
from amc_widgets.core.errors import AmcError


class ContractError(AmcError, ValueError):
    """A file SageMaker should have written is missing or malformed."""


class InstanceError(AmcError):
    """The instances SageMaker gave cannot run the job: host names that never resolve, GPUs that
    CUDA cannot use."""


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
    instance_type: str | None = None  # ``current_instance_type``, e.g. 'ml.g4dn.xlarge'

    @property
    def node_rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def master_host(self) -> str:
        return self.hosts[0]


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
    return ClusterConfig(current_host=current, hosts=hosts, network_interface=data.get("network_interface_name"),
                         instance_type=data.get("current_instance_type"))


def write_failure(paths: MLPaths, message: str) -> None:
    """Write the failure reason unless a more specific one is already there (first writer wins)."""
    paths.failure_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(paths.failure_file, "x", encoding="utf-8") as handle:
            handle.write(message)
    except FileExistsError:
        pass

"""What one training run will do, decided before any training process starts.

The launcher builds a :class:`TrainingPlan` from the SageMaker files (hyperparameters, cluster,
dataset channel, checkpoints), so that bad input fails in seconds and every worker process —
in-process or started by torchrun — reads the same decisions from ``plan.json``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from amc_widgets.core.container_contract import TRAINING_CHANNEL, WEIGHTS_CHANNEL, MLPaths
from amc_widgets.core.dataset_check import DatasetError, check_dataset, resolve_dataset, write_resolved_data_yaml
from amc_widgets.core.hyperparameters import decode_hyperparameters
from amc_widgets.core.instances import CATALOG
from amc_widgets.training.hosts import wait_for_cluster
from amc_widgets.training.sagemaker_env import (
    ContractError,
    InstanceError,
    read_cluster,
    read_hyperparameters,
    read_input_channels,
)

CHECKPOINT_STATE = "state.json"


@dataclass
class TrainingPlan:
    ml_root: str
    work_dir: str
    params: dict[str, Any]
    data_yaml: str
    class_names: list[str]
    dataset_counts: dict[str, dict[str, int]]
    sample_image: str | None
    weights: str | None  # a .pt from the weights channel, or None (from scratch)
    resume: str  # "no" | "resume" | "finished"
    accelerator: str  # "cpu" | "cuda"
    gpus_per_host: int
    hosts: list[str]
    node_rank: int
    master_addr: str
    master_port: int
    network_interface: str | None

    @property
    def paths(self) -> MLPaths:
        return MLPaths(Path(self.ml_root))

    @property
    def world_size(self) -> int:
        return len(self.hosts) * max(self.gpus_per_host, 1)

    @property
    def distributed(self) -> bool:
        """Several training processes (GPUs, hosts): torchrun starts them; else this process trains."""
        return self.world_size > 1

    @property
    def ultralytics_device(self) -> str:
        if self.accelerator == "cpu":
            return "cpu"
        return ",".join(str(i) for i in range(self.gpus_per_host))

    def save(self) -> Path:
        path = Path(self.work_dir) / "plan.json"
        path.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> TrainingPlan:
        return cls(**json.loads(Path(path).read_text(encoding="utf-8")))


def cuda_device_count() -> int:
    """The GPUs torch can use on this machine."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def cuda_build() -> str:
    """The CUDA version this image's PyTorch was built for ('none' for a CPU build)."""
    import torch

    return torch.version.cuda or "none"


def choose_devices(device: str, gpu_count: Callable[[], int] = cuda_device_count,
                   instance_type: str | None = None) -> tuple[str, int]:
    """The accelerator and GPUs per host for the ``device`` hyperparameter ('auto', 'cpu', '0,1').

    With 'auto' on an instance type the catalog knows to have GPUs, every one of them must be
    usable: InstanceError rather than training on the CPU (or fewer GPUs) while paying for them.
    """
    if device == "cpu":
        return "cpu", 0
    available = gpu_count()
    if device == "auto":
        spec = CATALOG.get(instance_type or "")
        if spec is not None and available < spec.gpus:
            raise InstanceError(
                f"{spec.name} has {spec.gpus} GPU(s), but CUDA can use {available}: the job stops here rather "
                f"than train without them. This image's PyTorch is built for CUDA {cuda_build()} and needs an "
                f"NVIDIA driver of 525.60.13 or newer on the instance (see 'GPU instances' in the README); set "
                f"device=cpu to train on the CPU anyway.")
        return ("cuda", available) if available else ("cpu", 0)
    wanted = [int(i) for i in device.split(",")]
    if max(wanted) >= available:
        raise ContractError(
            f"device: '{device}' asks for GPU {max(wanted)}, but this machine has "
            f"{available} GPU(s). Use 'auto' to take every GPU there is."
        )
    return "cuda", len(wanted)


def _find_weights(paths: MLPaths, name: str) -> str | None:
    channel = paths.channel(WEIGHTS_CHANNEL)
    if not name:
        return None
    if "/" in name or "\\" in name or ":" in name:  # a URL or a path elsewhere: this container never downloads
        raise ContractError(f"weights: '{name}' must name a file in the '{WEIGHTS_CHANNEL}' channel; the "
                            "training container downloads nothing (SageMaker runs it without network access)")
    if not channel.is_dir():
        raise ContractError(f"weights: '{name}' was asked for, but the job has no '{WEIGHTS_CHANNEL}' channel")
    matches = [p for p in channel.rglob("*") if p.name == Path(name).name and p.is_file()]
    if not matches:
        available = sorted(p.name for p in channel.rglob("*.pt"))
        raise ContractError(f"weights: '{name}' is not in the weights channel "
                            f"(it has: {', '.join(available) or 'nothing'})")
    return str(matches[0])


def _resume_state(paths: MLPaths) -> str:
    state_file = paths.checkpoints / CHECKPOINT_STATE
    if not (state_file.exists() and (paths.checkpoints / "last.pt").exists()):
        return "no"
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return "no"
    return "finished" if state.get("finished") else "resume"


def build_plan(paths: MLPaths, gpu_count: Callable[[], int] = cuda_device_count,
               find_hosts: Callable[[Sequence[str]], dict[str, str]] = wait_for_cluster) -> TrainingPlan:
    """Validate everything the job was given and decide how to run it (``gpu_count``: the GPUs of
    this machine, asked only when the device is not 'cpu'; ``find_hosts``: the hosts' addresses,
    asked last and only for several hosts, as it may wait for them).

    Raises :class:`HyperparameterError`, :class:`DatasetError` or :class:`ContractError` with a
    message meant for the user, :class:`InstanceError` when the instances cannot run the job.
    """
    params = decode_hyperparameters(read_hyperparameters(paths))
    cluster = read_cluster(paths)
    channels = read_input_channels(paths)
    if channels and TRAINING_CHANNEL not in channels:
        raise ContractError(f"The job has no '{TRAINING_CHANNEL}' input channel (it has: {', '.join(channels)})")
    channel = paths.channel(TRAINING_CHANNEL)
    if not channel.is_dir():
        raise DatasetError(f"The '{TRAINING_CHANNEL}' channel ({channel}) is missing: no dataset was given")
    report = check_dataset(channel)
    if not report.ok:
        raise DatasetError("The dataset cannot be used for training:\n" + "\n".join(report.errors))
    resolved = resolve_dataset(channel)
    accelerator, gpus = choose_devices(params["device"], gpu_count, cluster.instance_type)
    work_dir = paths.root / "amc-work"
    shutil.rmtree(work_dir, ignore_errors=True)
    data_yaml = write_resolved_data_yaml(resolved, work_dir / "dataset")
    weights = _find_weights(paths, params["weights"])
    master_addr = "127.0.0.1" if len(cluster.hosts) == 1 else find_hosts(cluster.hosts)[cluster.master_host]
    return TrainingPlan(
        ml_root=str(paths.root),
        work_dir=str(work_dir),
        params=params,
        data_yaml=str(data_yaml),
        class_names=resolved.names,
        dataset_counts={split: asdict(counts) for split, counts in report.splits.items()},
        sample_image=str(resolved.images["val"][0]),
        weights=weights,
        resume=_resume_state(paths),
        accelerator=accelerator,
        gpus_per_host=gpus,
        hosts=list(cluster.hosts),
        node_rank=cluster.node_rank,
        master_addr=master_addr,
        master_port=int(os.environ.get("AMC_MASTER_PORT", "29500")),
        network_interface=cluster.network_interface,
    )

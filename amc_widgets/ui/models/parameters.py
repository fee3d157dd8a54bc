"""The training form: run settings, every hyperparameter, preset, instance and its cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amc_widgets.core.hyperparameters import HYPERPARAMETERS, HyperparameterError, ParamSpec, normalize_device
from amc_widgets.core.instances import (
    BATCH_PER_DEVICE,
    CATALOG,
    THIS_MACHINE,
    CostEstimate,
    InstanceType,
    auto_batch,
    estimate_cost,
    get_instance,
    validate_instance_count,
)
from amc_widgets.core.jobs import JobSpec
from amc_widgets.core.parameters import TrainingParameters, preset_names, preset_values
from amc_widgets.ui.models import Observable

RUN_KEYS = ("model", "imgsz", "epochs", "patience", "batch", "workers", "optimizer", "device")
EDITOR_GROUPS = ("learning", "loss", "augmentation")
LOCAL_INSTANCE = THIS_MACHINE
DEFAULT_AWS_INSTANCE = "ml.g4dn.xlarge"
DEFAULT_PRESET = "scratch-low"
INSTANCE_ERROR_KEY = "instance"


def editor_keys(group: str) -> list[str]:
    """The hyperparameters of one editor group, in table order."""
    return [name for name, spec in HYPERPARAMETERS.items() if spec.group == group]


def instance_label(spec: InstanceType) -> str:
    """``ml.g4dn.xlarge - 4 vCPU, 1 x T4 (16 GiB), 16 GiB RAM, $0.74/h``."""
    gpu = f"{spec.gpus} x {spec.gpu_name} ({spec.gpu_memory_gib} GiB)" if spec.gpus else "no GPU"
    return f"{spec.name} - {spec.vcpus} vCPU, {gpu}, {spec.memory_gib} GiB RAM, ${spec.price_per_hour:.2f}/h"


def _decode(spec: ParamSpec, raw: Any) -> Any:
    value = spec.decode(raw)
    return normalize_device(value) if spec.name == "device" else value


class ParametersModel(Observable):
    """Raw field values, their problems, preset, instance choice; builds the JobSpec."""

    def __init__(self, local: bool = True):
        super().__init__()
        self.raw: dict[str, Any] = {name: spec.default for name, spec in HYPERPARAMETERS.items()}
        self.errors: dict[str, str] = {}
        self.preset = DEFAULT_PRESET
        self.batch_auto = True
        self.spot = False
        self.max_hours = 2.0
        self.instance_count = 1
        self.local = local
        self.instance_type = LOCAL_INSTANCE if local else DEFAULT_AWS_INSTANCE
        self.apply_preset(DEFAULT_PRESET)

    # --- fields -------------------------------------------------------------------------------
    def set_value(self, key: str, raw: Any) -> str | None:
        """Take a field's value; returns (and keeps) its problem, or None when it is valid."""
        spec = HYPERPARAMETERS[key]
        self.raw[key] = raw
        if key == "batch":
            self.batch_auto = False
        try:
            _decode(spec, raw)
        except ValueError as exc:
            self.errors[key] = str(exc)
        else:
            self.errors.pop(key, None)
        self._notify(key)
        return self.errors.get(key)

    def value(self, key: str) -> Any:
        return self.raw[key]

    def apply_preset(self, name: str) -> None:
        """Reset the learning, loss and augmentation values (and close_mosaic) to a preset."""
        for key, value in preset_values(name).items():
            self.raw[key] = value
            self.errors.pop(key, None)
        self.preset = name
        self._notify("preset")

    @staticmethod
    def presets() -> list[str]:
        return preset_names()

    # --- batch and instance -------------------------------------------------------------------
    def set_batch_auto(self, on: bool) -> None:
        self.batch_auto = on
        if on:
            self._sync_auto_batch()
        self._notify("batch")

    def _sync_auto_batch(self) -> None:
        if self.batch_auto and INSTANCE_ERROR_KEY not in self.errors:
            self.raw["batch"] = self.auto_batch()
            self.errors.pop("batch", None)

    def auto_batch(self) -> int:
        """16 images per GPU (or per CPU machine), times the instances."""
        if self.instance_type == LOCAL_INSTANCE:
            return BATCH_PER_DEVICE
        return auto_batch(self.instance_type, self.instance_count)

    def set_local(self, local: bool) -> None:
        """The backend changed: 'this machine' locally, a SageMaker instance type otherwise."""
        self.local = local
        self.set_instance(LOCAL_INSTANCE if local else DEFAULT_AWS_INSTANCE, 1, self.spot and not local)

    def set_instance(self, instance_type: str, count: int, spot: bool, max_hours: float | None = None) -> str | None:
        """Choose the instance; returns the problem with the choice, or None."""
        self.instance_type, self.instance_count, self.spot = instance_type, count, spot
        if max_hours is not None:
            self.max_hours = max_hours
        try:
            validate_instance_count(instance_type, count)
            if self.max_hours <= 0:
                raise ValueError("The maximum run time must be more than 0 hours")
        except ValueError as exc:
            self.errors[INSTANCE_ERROR_KEY] = str(exc)
        else:
            self.errors.pop(INSTANCE_ERROR_KEY, None)
            self._sync_auto_batch()
        self._notify("instance")
        return self.errors.get(INSTANCE_ERROR_KEY)

    def instance_choices(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the instance picker."""
        if self.local:
            return [("This machine (local backend)", LOCAL_INSTANCE)]
        return [(instance_label(spec), name) for name, spec in CATALOG.items()]

    def allows_several_instances(self) -> bool:
        return self.instance_type != LOCAL_INSTANCE and get_instance(self.instance_type).has_gpu

    def cost(self) -> CostEstimate | None:
        """The on-demand (and spot) cost of running for ``max_hours``; None locally or when invalid."""
        if self.instance_type == LOCAL_INSTANCE or INSTANCE_ERROR_KEY in self.errors:
            return None
        return estimate_cost(self.instance_type, self.instance_count, self.max_hours, spot=self.spot)

    # --- the whole form -----------------------------------------------------------------------
    def parameters(self) -> TrainingParameters:
        """Every value validated together; HyperparameterError names each bad field (also kept in errors)."""
        try:
            params = TrainingParameters(self.raw)
        except HyperparameterError as exc:
            self.errors.update(exc.problems)
            self._notify("errors")
            raise
        return params

    def job_spec(self, dataset: str) -> JobSpec:
        """The job to start; raises ValueError (or HyperparameterError) saying what to fix."""
        if not dataset:
            raise ValueError("Choose a stored dataset to train on")
        if INSTANCE_ERROR_KEY in self.errors:
            raise ValueError(self.errors[INSTANCE_ERROR_KEY])
        field_errors = {k: v for k, v in self.errors.items() if k != INSTANCE_ERROR_KEY}
        if field_errors:
            raise HyperparameterError(field_errors)
        return JobSpec(dataset=dataset, hyperparameters=self.parameters().to_sagemaker(),
                       instance_type=self.instance_type, instance_count=self.instance_count,
                       spot=self.spot, max_runtime_hours=self.max_hours)

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write every parameter to a preset YAML; an existing file is kept unless ``overwrite``."""
        if not str(path).strip():
            raise ValueError("Enter a file name for the preset, e.g. solder-preset.yaml")
        return self.parameters().to_yaml(Path(str(path).strip()).expanduser(), overwrite=overwrite)

    def load(self, path: str | Path) -> None:
        """Fill every field from a preset YAML (missing keys take their defaults)."""
        params = TrainingParameters.from_yaml(Path(str(path).strip()).expanduser())
        self.raw = params.values
        self.errors = {k: v for k, v in self.errors.items() if k == INSTANCE_ERROR_KEY}
        self.batch_auto = False
        self._notify("loaded")

"""The training form: run settings, every hyperparameter, preset, instance and its cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import traitlets as tl

from amc_widgets.core.hyperparameters import HYPERPARAMETERS, HyperparameterError, ParamSpec, normalize_device
from amc_widgets.core.instances import (
    BATCH_PER_DEVICE,
    CATALOG,
    THIS_MACHINE,
    CostEstimate,
    InstanceType,
    auto_batch,
    check_storage,
    estimate_cost,
    get_instance,
    validate_instance_count,
)
from amc_widgets.core.jobs import JobSpec, stopping_condition
from amc_widgets.core.parameters import TrainingParameters, preset_names, preset_values
from amc_widgets.core.time_estimate import Settings, TimeEstimate, estimate

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
    """``ml.g4dn.xlarge - 4 vCPU, 1 x T4 (16 GiB), 16 GiB RAM, 125 GB NVMe, $0.74/h in us-east-1``
    (the built-in list price; the cost line below the picker gives the connected region's)."""
    gpu = f"{spec.gpus} x {spec.gpu_name} ({spec.gpu_memory_gib} GiB)" if spec.gpus else "no GPU"
    nvme = f", {spec.nvme_gb} GB NVMe" if spec.nvme_gb else ""
    return (f"{spec.name} - {spec.vcpus} vCPU, {gpu}, {spec.memory_gib} GiB RAM{nvme}, "
            f"${spec.price_per_hour:.2f}/h in us-east-1")


def _decode(spec: ParamSpec, raw: Any) -> Any:
    value = spec.decode(raw)
    return normalize_device(value) if spec.name == "device" else value


class ParametersModel(tl.HasTraits):
    """Raw field values, their problems, preset, instance choice; builds the JobSpec."""

    raw = tl.Dict(help="parameter -> its value as entered (kept even when invalid)")
    errors = tl.Dict(help="parameter (or INSTANCE_ERROR_KEY) -> what is wrong with it")
    preset = tl.Unicode(DEFAULT_PRESET)
    batch_auto = tl.Bool(True, help="batch follows the instance choice until the user types one")
    local = tl.Bool(True, help="the backend is this machine")
    instance_type = tl.Unicode(LOCAL_INSTANCE)
    instance_count = tl.Int(1)
    spot = tl.Bool(False)
    max_hours = tl.Float(2.0)
    price_of = tl.Any(None, allow_none=True, help="instance type -> Price in the connected region (None: built-in)")
    max_wait_text = tl.Unicode("", help="spot: most hours the job may take, waits included (empty: 2 x max_hours)")
    history = tl.List(help="the backend's jobs (JobDescription), for the local time estimate")

    def __init__(self, local: bool = True):
        super().__init__()
        self.raw = {name: spec.default for name, spec in HYPERPARAMETERS.items()}
        self.apply_preset(DEFAULT_PRESET)
        self.set_local(local)

    # --- fields -------------------------------------------------------------------------------
    def set_value(self, key: str, raw: Any) -> str | None:
        """Take a field's value as the user entered it; returns (and keeps) its problem, or None."""
        try:
            _decode(HYPERPARAMETERS[key], raw)
        except ValueError as exc:
            problem = str(exc)
        else:
            problem = None
        with self.hold_trait_notifications():
            self.raw = {**self.raw, key: raw}
            if key == "batch":
                self.batch_auto = False
            self._set_error(key, problem)
        return problem

    def value(self, key: str) -> Any:
        return self.raw[key]

    def _set_error(self, key: str, problem: str | None) -> None:
        errors = dict(self.errors)
        if problem:
            errors[key] = problem
        else:
            errors.pop(key, None)
        self.errors = errors

    def apply_preset(self, name: str) -> None:
        """Reset the learning, loss and augmentation values (and close_mosaic) to a preset."""
        values = preset_values(name)
        with self.hold_trait_notifications():
            self.raw = {**self.raw, **values}
            self.errors = {k: v for k, v in self.errors.items() if k not in values}
            self.preset = name

    @staticmethod
    def presets() -> list[str]:
        return preset_names()

    # --- batch and instance -------------------------------------------------------------------
    def set_batch_auto(self, on: bool) -> None:
        self.batch_auto = on
        self._sync_auto_batch()

    @tl.observe("batch_auto")
    def _batch_auto_changed(self, change: tl.Bunch) -> None:
        self._sync_auto_batch()

    def _sync_auto_batch(self) -> None:
        if self.batch_auto and INSTANCE_ERROR_KEY not in self.errors:
            with self.hold_trait_notifications():
                self.raw = {**self.raw, "batch": self.auto_batch()}
                self._set_error("batch", None)

    def auto_batch(self) -> int:
        """16 images per GPU (or per CPU machine), times the instances."""
        if self.instance_type == LOCAL_INSTANCE:
            return BATCH_PER_DEVICE
        return auto_batch(self.instance_type, self.instance_count)

    def set_local(self, local: bool) -> None:
        """The backend changed: 'this machine' locally, a SageMaker instance type otherwise."""
        with self.hold_trait_notifications():
            self.local = local
            self.set_instance(LOCAL_INSTANCE if local else DEFAULT_AWS_INSTANCE, 1, self.spot and not local)

    def set_instance(self, instance_type: str, count: int, spot: bool, max_hours: float | None = None) -> str | None:
        """Choose the instance; returns the problem with the choice, or None."""
        with self.hold_trait_notifications():
            self.instance_type, self.instance_count, self.spot = instance_type, count, spot
            if max_hours is not None:
                self.max_hours = max_hours
        self._check_instance()  # also when nothing changed, or when called with notifications held
        return self.errors.get(INSTANCE_ERROR_KEY)

    @tl.observe("instance_type", "instance_count", "max_hours", "spot", "max_wait_text")
    def _instance_changed(self, change: tl.Bunch) -> None:
        self._check_instance()

    def max_wait_hours(self) -> float | None:
        """The max wait field as hours (None: empty, or not spot); ValueError naming the field."""
        text = self.max_wait_text.strip()
        if not self.spot or not text:
            return None
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"max wait hours: must be a number of hours (got {text!r})") from None

    def _check_instance(self) -> None:
        """Keep the problem with the instance choice in ``errors``; a valid one sets the auto batch."""
        try:
            validate_instance_count(self.instance_type, self.instance_count)
            if self.max_hours <= 0:
                raise ValueError("The maximum run time must be more than 0 hours")
            if self.instance_type != LOCAL_INSTANCE:  # SageMaker's limits on run and wait times
                stopping_condition(JobSpec("", {}, spot=self.spot, max_runtime_hours=self.max_hours,
                                           max_wait_hours=self.max_wait_hours()))
        except ValueError as exc:
            self._set_error(INSTANCE_ERROR_KEY, str(exc))
        else:
            self._set_error(INSTANCE_ERROR_KEY, None)
            self._sync_auto_batch()

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
        price = self.price_of(self.instance_type) if self.price_of else None
        return estimate_cost(self.instance_type, self.instance_count, self.max_hours, spot=self.spot, price=price)

    def storage_note(self, dataset_bytes: int) -> str:
        """Where a dataset of ``dataset_bytes`` goes on the chosen SageMaker instance, or why it does not fit."""
        try:
            return "Storage: " + check_storage(self.instance_type, dataset_bytes)
        except ValueError as exc:
            return str(exc)

    def time_estimate(self, dataset: str, files_by_dataset: dict[str, int] | None = None) -> TimeEstimate | None:
        """How long these settings take on this machine, from ``history``; None on SageMaker, with an invalid
        model, image size or epochs, or without a finished local job to go by."""
        if not self.local or {"model", "imgsz", "epochs"} & set(self.errors):
            return None
        try:
            settings = Settings(str(self.raw["model"]), int(self.raw["imgsz"]), int(self.raw["epochs"]), dataset)
        except (TypeError, ValueError):
            return None
        return estimate(settings, self.history, files_by_dataset)

    # --- the whole form -----------------------------------------------------------------------
    def parameters(self) -> TrainingParameters:
        """Every value validated together; HyperparameterError names each bad field (also kept in errors)."""
        try:
            params = TrainingParameters(self.raw)
        except HyperparameterError as exc:
            self.errors = {**self.errors, **exc.problems}
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
                       spot=self.spot, max_runtime_hours=self.max_hours, max_wait_hours=self.max_wait_hours())

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write every parameter to a preset YAML; an existing file is kept unless ``overwrite``."""
        if not str(path).strip():
            raise ValueError("Enter a file name for the preset, e.g. solder-preset.yaml")
        return self.parameters().to_yaml(Path(str(path).strip()).expanduser(), overwrite=overwrite)

    def load(self, path: str | Path) -> None:
        """Fill every field from a preset YAML (missing keys take their defaults)."""
        params = TrainingParameters.from_yaml(Path(str(path).strip()).expanduser())
        with self.hold_trait_notifications():
            self.raw = dict(params.values)
            self.errors = {k: v for k, v in self.errors.items() if k == INSTANCE_ERROR_KEY}
            self.batch_auto = False

"""Training parameters as one validated, immutable object: presets, YAML files, SageMaker strings.

Built on the table in :mod:`amc_widgets.core.hyperparameters`, the single source of every key's
type, range and default; this module adds no parameter of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from amc_widgets.core.hyperparameters import (
    HYPERPARAMETERS,
    HyperparameterError,
    decode_hyperparameters,
    encode_hyperparameters,
)

# CreateTrainingJob documents a 256-character limit on each hyperparameter value.
SAGEMAKER_MAX_VALUE_LENGTH = 256

# Loss gains of ultralytics' anchor-free YOLOv5u head (its defaults). YOLOv5's hyp files carry
# box 0.05 / cls 0.3-0.5 / obj 0.7-1.0 for YOLOv5's own anchor-based loss, a different scale:
# copied here they would weaken the box loss 150-fold. Every preset keeps these gains.
_ULTRALYTICS_LOSS_GAINS = {"box": 7.5, "cls": 0.5, "dfl": 1.5}

# ultralytics/yolov5 data/hyps/hyp.scratch-low.yaml (learning and augmentation keys), plus the
# ultralytics-only augmentations YOLOv5 lacks (bgr, cutmix off; close_mosaic at its default 10).
_SCRATCH_LOW = {
    "lr0": 0.01, "lrf": 0.01, "momentum": 0.937, "weight_decay": 0.0005,
    "warmup_epochs": 3.0, "warmup_momentum": 0.8, "warmup_bias_lr": 0.1,
    **_ULTRALYTICS_LOSS_GAINS,
    "hsv_h": 0.015, "hsv_s": 0.7, "hsv_v": 0.4,
    "degrees": 0.0, "translate": 0.1, "scale": 0.5, "shear": 0.0, "perspective": 0.0,
    "flipud": 0.0, "fliplr": 0.5, "bgr": 0.0,
    "mosaic": 1.0, "mixup": 0.0, "cutmix": 0.0, "copy_paste": 0.0, "close_mosaic": 10,
}

PRESETS: dict[str, dict[str, Any]] = {
    "scratch-low": _SCRATCH_LOW,
    # hyp.scratch-med.yaml: longer learning-rate tail, stronger scale jitter, some mixup.
    "scratch-med": {**_SCRATCH_LOW, "lrf": 0.1, "scale": 0.9, "mixup": 0.1},
    # hyp.scratch-high.yaml: as med, plus copy-paste (which only acts on polygon labels).
    "scratch-high": {**_SCRATCH_LOW, "lrf": 0.1, "scale": 0.9, "mixup": 0.1, "copy_paste": 0.1},
    # hyp.no-augmentation.yaml's learning values with every augmentation off.
    "no-augmentation": {
        **_SCRATCH_LOW, "lrf": 0.1,
        "hsv_h": 0.0, "hsv_s": 0.0, "hsv_v": 0.0,
        "degrees": 0.0, "translate": 0.0, "scale": 0.0, "shear": 0.0, "perspective": 0.0,
        "flipud": 0.0, "fliplr": 0.0, "bgr": 0.0,
        "mosaic": 0.0, "mixup": 0.0, "cutmix": 0.0, "copy_paste": 0.0, "close_mosaic": 0,
    },
}


def preset_names() -> list[str]:
    """Names of the presets, in display order."""
    return list(PRESETS)


def preset_values(name: str) -> dict[str, Any]:
    """The learning and augmentation values a preset sets; ValueError naming the presets."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def _validated(raw: Mapping[Any, Any]) -> dict[str, Any]:
    """Every key of the table, typed and range-checked; HyperparameterError names each bad key."""
    problems: dict[str, str] = {}
    known: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in HYPERPARAMETERS:
            problems[str(key)] = "unknown parameter"
        elif value is None:
            problems[key] = "has no value"
        else:
            known[key] = value
    try:
        values = decode_hyperparameters(known)
    except HyperparameterError as exc:
        problems.update(exc.problems)
    if problems:
        raise HyperparameterError(problems)
    return values


class TrainingParameters:
    """Every training parameter, validated; immutable (changes return a new object)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None):
        """Missing keys take the table's defaults; values may be typed or SageMaker strings."""
        self._values = _validated(values or {})

    @classmethod
    def from_values(cls, **values: Any) -> TrainingParameters:
        """``TrainingParameters.from_values(epochs=30, model="yolov5n")``."""
        return cls(values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainingParameters:
        """Read a file written by :meth:`to_yaml` (or by hand); missing keys take defaults."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"Cannot read training parameters from {path}: {exc}") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a mapping of parameter names to values "
                             f"(found {type(data).__name__})")
        return cls(data)

    @property
    def values(self) -> dict[str, Any]:
        """A copy of every key and its typed value."""
        return dict(self._values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrainingParameters) and self._values == other._values

    def __repr__(self) -> str:
        return f"TrainingParameters({self.changed_from_defaults()!r})"

    def with_changes(self, **changes: Any) -> TrainingParameters:
        """A new object with these keys changed, validated like any other."""
        return TrainingParameters({**self._values, **changes})

    def apply_preset(self, name: str) -> TrainingParameters:
        """A new object with the preset's learning and augmentation keys; run keys untouched."""
        return self.with_changes(**preset_values(name))

    def changed_from_defaults(self) -> dict[str, Any]:
        """The keys whose values differ from the table's defaults."""
        return {key: value for key, value in self._values.items() if value != HYPERPARAMETERS[key].default}

    def to_sagemaker(self) -> dict[str, str]:
        """SageMaker's HyperParameters: every value a string; HyperparameterError if one is too long."""
        encoded = encode_hyperparameters(self._values)
        too_long = {key: f"is {len(text)} characters long; SageMaker accepts at most {SAGEMAKER_MAX_VALUE_LENGTH}"
                    for key, text in encoded.items() if len(text) > SAGEMAKER_MAX_VALUE_LENGTH}
        if too_long:
            raise HyperparameterError(too_long)
        return encoded

    def to_yaml(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write every key as plain YAML; an existing file is kept unless ``overwrite``."""
        path = Path(path)
        text = yaml.safe_dump(self._values, sort_keys=False)
        try:
            with open(path, "w" if overwrite else "x", encoding="utf-8") as handle:
                handle.write(text)
        except FileExistsError:
            raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it") from None
        return path

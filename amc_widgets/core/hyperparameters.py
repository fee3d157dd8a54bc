"""Every training parameter AMC accepts: type, range, default and meaning.

SageMaker hands a training container its hyperparameters as a JSON object whose values are all
strings (``{"epochs": "30"}``; the SageMaker Python SDK even JSON-encodes them a second time,
``{"model": "\\"yolov5s\\""}``).  :func:`decode_hyperparameters` turns such a mapping into typed,
range-checked values and names every bad key in one :class:`HyperparameterError`.  The same table
drives the core's parameter object, the CLI and the dashboard's editor.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from amc_widgets.core.errors import AmcError

MODEL_NAMES = ("yolov5n", "yolov5s", "yolov5m", "yolov5l", "yolov5x")
OPTIMIZERS = ("auto", "SGD", "MuSGD", "Adam", "Adamax", "AdamW", "NAdam", "RAdam", "RMSProp")

# Keys that SageMaker or its SDK may add on their own; they are not ours to validate.
_FOREIGN_PREFIXES = ("sagemaker_", "_tuning_", "_")


class HyperparameterError(AmcError, ValueError):
    """One or more hyperparameters are unknown or invalid; ``problems`` maps key -> message."""

    def __init__(self, problems: Mapping[str, str]):
        self.problems = dict(problems)
        lines = [f"{key}: {msg}" for key, msg in self.problems.items()]
        super().__init__("Invalid training parameters:\n" + "\n".join(lines))


@dataclass(frozen=True)
class ParamSpec:
    """Type, bounds and meaning of one hyperparameter."""

    name: str
    kind: str  # "int" | "float" | "bool" | "str" | "choice"
    default: Any
    group: str
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    multiple_of: int | None = None

    def decode(self, raw: Any) -> Any:
        """Decode one value (a string from SageMaker, or an already typed value); raise ValueError."""
        value = _unwrap_json_string(raw)
        if self.kind == "bool":
            result: Any = _to_bool(value)
        elif self.kind == "int":
            result = _to_int(value)
        elif self.kind == "float":
            result = _to_float(value)
        elif self.kind == "choice":
            text = str(value).strip()
            matches = [c for c in self.choices if c.lower() == text.lower()]
            if not matches:
                raise ValueError(f"must be one of {', '.join(self.choices)} (got {text!r})")
            result = matches[0]
        else:
            result = str(value).strip()
        if self.kind in ("int", "float"):
            if self.low is not None and result < self.low:
                raise ValueError(f"must be >= {_fmt(self.low)} (got {_fmt(result)})")
            if self.high is not None and result > self.high:
                raise ValueError(f"must be <= {_fmt(self.high)} (got {_fmt(result)})")
            if self.multiple_of and result % self.multiple_of:
                raise ValueError(f"must be a multiple of {self.multiple_of} (got {result})")
        return result


def _fmt(number: float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


def _unwrap_json_string(raw: Any) -> Any:
    """Undo the SageMaker SDK's JSON encoding of string values (``'"yolov5s"'`` -> ``'yolov5s'``)."""
    if isinstance(raw, str) and len(raw) >= 2 and raw[0] == raw[-1] == '"':
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on", "y", "t"):
        return True
    if text in ("0", "false", "no", "off", "n", "f"):
        return False
    raise ValueError(f"must be true or false (got {value!r})")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number (got {value!r})")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"must be a whole number (got {text!r})") from None
    if not number.is_integer():
        raise ValueError(f"must be a whole number (got {text!r})")
    return int(number)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"must be a number (got {value!r})")
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError(f"must be a number (got {str(value).strip()!r})") from None
    if not math.isfinite(number):
        raise ValueError(f"must be a finite number (got {value!r})")
    return number


def _p(name, kind, default, group, help, **kw) -> ParamSpec:
    return ParamSpec(name=name, kind=kind, default=default, group=group, help=help, **kw)


_SPECS = [
    # --- run: the seed app's main form ---
    _p("model", "choice", "yolov5s", "run", "YOLOv5 size, n (fastest) to x (most accurate)", choices=MODEL_NAMES),
    _p("weights", "str", "", "run", "file in the 'weights' channel to start from; empty = from scratch"),
    _p("weights_source", "str", "", "run", "where the weights came from, for the model card (set by amc)"),
    _p("imgsz", "int", 640, "run", "training image size in pixels", low=32, high=4096, multiple_of=32),
    _p("epochs", "int", 100, "run", "passes over the training images", low=1, high=10000),
    _p("patience", "int", 100, "run", "stop after this many epochs without improvement (0 = never)", low=0, high=10000),
    _p("batch", "int", 16, "run", "images per step over all GPUs and instances; -1 = auto", low=-1, high=4096),
    _p("workers", "int", 8, "run", "data-loading processes per GPU", low=0, high=64),
    _p("optimizer", "choice", "auto", "run", "auto picks SGD or AdamW by the length of the run", choices=OPTIMIZERS),
    _p("device", "str", "auto", "run", "'auto' (every GPU, else CPU), 'cpu', or GPU ids like '0' or '0,1'"),
    _p("seed", "int", 0, "run", "random seed", low=0, high=2**31 - 1),
    _p("deterministic", "bool", True, "run", "reproducible (slower) kernels"),
    _p("cos_lr", "bool", False, "run", "cosine learning-rate schedule"),
    _p("single_cls", "bool", False, "run", "train every class as one"),
    _p("rect", "bool", False, "run", "rectangular batches"),
    _p("amp", "bool", True, "run", "mixed precision on GPU"),
    _p("fraction", "float", 1.0, "run", "fraction of the training images to use", low=0.01, high=1.0),
    _p("freeze", "int", 0, "run", "freeze the first N layers", low=0, high=24),
    _p("multi_scale", "float", 0.0, "run", "multi-scale range as a fraction of imgsz", low=0.0, high=0.5),
    _p("cache", "choice", "false", "run", "cache images in 'ram' or on 'disk'", choices=("false", "ram", "disk")),
    _p("close_mosaic", "int", 10, "run", "turn mosaic off for the last N epochs", low=0, high=10000),
    _p("save_period", "int", -1, "run", "also keep a checkpoint every N epochs (-1 = off)", low=-1, high=10000),
    _p("plots", "bool", True, "run", "save training plots"),
    # --- learning ---
    _p("lr0", "float", 0.01, "learning", "initial learning rate", low=1e-6, high=1.0),
    _p("lrf", "float", 0.01, "learning", "final learning rate as a fraction of lr0", low=1e-4, high=1.0),
    _p("momentum", "float", 0.937, "learning", "SGD momentum / Adam beta1", low=0.0, high=0.999),
    _p("weight_decay", "float", 0.0005, "learning", "weight decay", low=0.0, high=0.1),
    _p("warmup_epochs", "float", 3.0, "learning", "warm-up epochs", low=0.0, high=100.0),
    _p("warmup_momentum", "float", 0.8, "learning", "initial warm-up momentum", low=0.0, high=0.999),
    _p("warmup_bias_lr", "float", 0.1, "learning", "initial warm-up bias learning rate", low=0.0, high=1.0),
    _p("nbs", "int", 64, "learning", "nominal batch size for gradient accumulation", low=1, high=1024),
    # --- loss gains ---
    _p("box", "float", 7.5, "loss", "box loss gain", low=0.0, high=100.0),
    _p("cls", "float", 0.5, "loss", "class loss gain", low=0.0, high=100.0),
    _p("dfl", "float", 1.5, "loss", "distribution focal loss gain", low=0.0, high=100.0),
    _p("cls_pw", "float", 0.0, "loss", "class-weight power against imbalance (0 = off)", low=0.0, high=1.0),
    # --- augmentation ---
    _p("hsv_h", "float", 0.015, "augmentation", "hue jitter (fraction)", low=0.0, high=1.0),
    _p("hsv_s", "float", 0.7, "augmentation", "saturation jitter (fraction)", low=0.0, high=1.0),
    _p("hsv_v", "float", 0.4, "augmentation", "brightness jitter (fraction)", low=0.0, high=1.0),
    _p("degrees", "float", 0.0, "augmentation", "rotation (+/- degrees)", low=0.0, high=180.0),
    _p("translate", "float", 0.1, "augmentation", "translation (+/- fraction)", low=0.0, high=0.9),
    _p("scale", "float", 0.5, "augmentation", "scale gain (+/-)", low=0.0, high=0.95),
    _p("shear", "float", 0.0, "augmentation", "shear (+/- degrees)", low=0.0, high=90.0),
    _p("perspective", "float", 0.0, "augmentation", "perspective (fraction, 0-0.001)", low=0.0, high=0.001),
    _p("flipud", "float", 0.0, "augmentation", "vertical flip probability", low=0.0, high=1.0),
    _p("fliplr", "float", 0.5, "augmentation", "horizontal flip probability", low=0.0, high=1.0),
    _p("bgr", "float", 0.0, "augmentation", "RGB/BGR swap probability", low=0.0, high=1.0),
    _p("mosaic", "float", 1.0, "augmentation", "mosaic probability", low=0.0, high=1.0),
    _p("mixup", "float", 0.0, "augmentation", "mixup probability", low=0.0, high=1.0),
    _p("cutmix", "float", 0.0, "augmentation", "cutmix probability", low=0.0, high=1.0),
    _p("copy_paste", "float", 0.0, "augmentation", "copy-paste probability", low=0.0, high=1.0),
]

HYPERPARAMETERS: dict[str, ParamSpec] = {spec.name: spec for spec in _SPECS}

# What a tuning job searches when the user names a parameter without a range: (low, high, scaling)
# for a number, the values for a choice.  Only these parameters are offered for tuning.
TUNING_DEFAULTS: dict[str, tuple] = {
    "model": ("yolov5n", "yolov5s", "yolov5m"),
    "imgsz": ("320", "416", "512", "640"),
    "optimizer": ("SGD", "AdamW", "Adam"),
    "lr0": (1e-4, 1e-1, "Logarithmic"),
    "lrf": (1e-3, 0.5, "Logarithmic"),
    "momentum": (0.6, 0.98, "Linear"),
    "weight_decay": (1e-5, 1e-2, "Logarithmic"),
    "warmup_epochs": (0.0, 5.0, "Linear"),
    "warmup_momentum": (0.0, 0.95, "Linear"),
    "box": (1.0, 20.0, "Linear"),
    "cls": (0.2, 4.0, "Linear"),
    "dfl": (0.4, 6.0, "Linear"),
    "hsv_h": (0.0, 0.1, "Linear"),
    "hsv_s": (0.0, 0.9, "Linear"),
    "hsv_v": (0.0, 0.9, "Linear"),
    "degrees": (0.0, 45.0, "Linear"),
    "translate": (0.0, 0.5, "Linear"),
    "scale": (0.0, 0.9, "Linear"),
    "shear": (0.0, 10.0, "Linear"),
    "flipud": (0.0, 0.5, "Linear"),
    "fliplr": (0.0, 1.0, "Linear"),
    "mosaic": (0.0, 1.0, "Linear"),
    "mixup": (0.0, 0.5, "Linear"),
    "copy_paste": (0.0, 0.5, "Linear"),
}


def defaults() -> dict[str, Any]:
    """Every parameter at its default value."""
    return {name: spec.default for name, spec in HYPERPARAMETERS.items()}


def is_foreign_key(key: str) -> bool:
    """True for keys that SageMaker itself adds (``sagemaker_*``, ``_tuning_objective_metric``)."""
    return key.startswith(_FOREIGN_PREFIXES)


def decode_hyperparameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Decode and validate a hyperparameters mapping; missing keys take their defaults.

    Raises :class:`HyperparameterError` naming every unknown or invalid key.
    """
    values = defaults()
    problems: dict[str, str] = {}
    for key, value in raw.items():
        if is_foreign_key(key):
            continue
        spec = HYPERPARAMETERS.get(key)
        if spec is None:
            problems[key] = "unknown parameter"
            continue
        try:
            values[key] = spec.decode(value)
        except ValueError as exc:
            problems[key] = str(exc)
    if "device" not in problems:
        try:
            values["device"] = normalize_device(values["device"])
        except ValueError as exc:
            problems["device"] = str(exc)
    if problems:
        raise HyperparameterError(problems)
    return values


def normalize_device(text: str) -> str:
    """'' / 'auto' -> 'auto', 'cpu' -> 'cpu', '0, 1' -> '0,1'; anything else is an error."""
    cleaned = text.strip().lower().replace(" ", "")
    if cleaned in ("", "auto"):
        return "auto"
    if cleaned == "cpu":
        return "cpu"
    ids = cleaned.split(",")
    if all(part.isdigit() for part in ids) and len(set(ids)) == len(ids):
        return ",".join(ids)
    raise ValueError(f"must be 'auto', 'cpu' or GPU ids like '0' or '0,1' (got {text!r})")


def encode_hyperparameters(values: Mapping[str, Any]) -> dict[str, str]:
    """The SageMaker form: every value a string (what ``decode_hyperparameters`` reads back)."""
    encoded = {}
    for key, value in values.items():
        encoded[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return encoded

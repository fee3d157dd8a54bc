"""The one structured metrics line the training container prints per epoch, and its readers.

A line looks like::

    [amc-metrics] epoch=3 epochs=30 train_box_loss=1.2345 ... mAP50=0.41 mAP50-95=0.22 lr=0.0091

The same format feeds the dashboard's charts (:func:`parse_metrics`), SageMaker's
MetricDefinitions (:func:`metric_definitions`) and hyperparameter-tuning objectives.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Mapping

import pandas as pd

MARKER = "[amc-metrics]"

# Column order of a metrics line; "epoch" and "epochs" are integers, the rest floats.
METRIC_NAMES = (
    "epoch",
    "epochs",
    "train_box_loss",
    "train_cls_loss",
    "train_dfl_loss",
    "val_box_loss",
    "val_cls_loss",
    "val_dfl_loss",
    "precision",
    "recall",
    "mAP50",
    "mAP50-95",
    "lr",
    "epoch_seconds",
)
LOSS_NAMES = METRIC_NAMES[2:8]
QUALITY_NAMES = ("precision", "recall", "mAP50", "mAP50-95")

_NUMBER = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"  # no nan: SageMaker needs a number


def format_metrics_line(values: Mapping[str, float]) -> str:
    """One metrics line; missing or non-finite values are written as ``nan``."""
    parts = [MARKER]
    for name in METRIC_NAMES:
        value = values.get(name, math.nan)
        if name in ("epoch", "epochs"):
            parts.append(f"{name}={int(value)}")
        else:
            number = float(value)
            parts.append(f"{name}={number:.6g}" if math.isfinite(number) else f"{name}=nan")
    return " ".join(parts)


def metric_definitions() -> list[dict[str, str]]:
    """SageMaker ``AlgorithmSpecification.MetricDefinitions`` for the metrics line.

    Each regex anchors on the marker and a space before the name, so ``mAP50`` never matches
    inside ``mAP50-95``.
    """
    return [
        {"Name": name, "Regex": rf"{re.escape(MARKER)}.* {re.escape(name)}=({_NUMBER})"}
        for name in METRIC_NAMES
        if name != "epochs"
    ]


def parse_metrics(lines: Iterable[str]) -> pd.DataFrame:
    """Metrics lines (found anywhere in a log, with any prefix) -> one row per epoch.

    Other lines are ignored.  When an epoch appears twice (a spot instance resumed and
    repeated it), the later line wins.  Columns follow :data:`METRIC_NAMES`.
    """
    columns: dict[str, list[float]] = {name: [] for name in METRIC_NAMES}
    for line in lines:
        start = line.find(MARKER)
        if start < 0:
            continue
        fields = dict(
            field.split("=", 1) for field in line[start + len(MARKER) :].split() if "=" in field
        )
        try:
            row = {name: float(fields[name]) for name in METRIC_NAMES}
        except (KeyError, ValueError):
            continue  # a truncated or foreign line
        for name, value in row.items():
            columns[name].append(value)
    frame = pd.DataFrame(columns, columns=list(METRIC_NAMES))
    frame = frame.astype({"epoch": "int64", "epochs": "int64"})
    if frame["epoch"].duplicated().any():
        frame = frame.drop_duplicates("epoch", keep="last").sort_values("epoch")
    return frame.reset_index(drop=True)

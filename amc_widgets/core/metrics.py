"""The one structured metrics line the training container prints per epoch, and its readers.

A line looks like::

    [amc-metrics] epoch=3 epochs=30 train_box_loss=1.2345 ... mAP50=0.41 mAP50-95=0.22 lr=0.0091

The same format feeds the dashboard's charts (:func:`parse_metrics`), SageMaker's
MetricDefinitions (:func:`metric_definitions`) and hyperparameter-tuning objectives.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas loads with the first metrics read, not with the page
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
# What follows the marker on a metrics line (blanks around it left out), found by one regex over the
# joined log rather than a Python loop over its lines.
_PAYLOAD = re.compile(rf"{re.escape(MARKER)}[^\S\n]*(epoch=[^\n]*\S)")


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

    Other lines, and metrics lines cut short, are ignored.  When an epoch appears twice (a spot
    instance resumed and repeated it), the later line wins.  Columns follow :data:`METRIC_NAMES`.
    The numbers are parsed by pandas' C reader: 100k lines take under twice its time for a CSV of
    the same numbers.
    """
    import pandas as pd

    payloads = [p for p in _PAYLOAD.findall("\n".join(lines)) if p.count("=") == len(METRIC_NAMES)]
    if not payloads:
        return pd.DataFrame({name: pd.Series(dtype="int64" if name in ("epoch", "epochs") else "float64")
                             for name in METRIC_NAMES})
    # "epoch=1 epochs=30 ..." -> "epoch 1 epochs 30 ...": names in even columns, numbers in odd ones
    text = "\n".join(payloads).replace("=", " ").encode()  # the reader takes bytes faster than text
    frame = pd.read_csv(io.BytesIO(text), sep=" ", header=None, usecols=range(1, 2 * len(METRIC_NAMES), 2),
                        on_bad_lines="skip", engine="c")
    frame.columns = list(METRIC_NAMES)
    frame = frame.dropna(subset=["epoch", "epochs"]).astype({"epoch": "int64", "epochs": "int64"})
    if frame["epoch"].duplicated().any():
        frame = frame.drop_duplicates("epoch", keep="last").sort_values("epoch")
    return frame.reset_index(drop=True)


def final_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """The last finite value of each metric (SageMaker's FinalMetricDataList keeps the same)."""
    final = {}
    for name in METRIC_NAMES:
        if name != "epochs" and name in frame:
            values = frame[name].dropna()
            if not values.empty:
                final[name] = float(values.iloc[-1])
    return final


def append_metrics(frame: pd.DataFrame, lines: Iterable[str]) -> pd.DataFrame:
    """``frame`` (from :func:`parse_metrics`) with the epochs of new ``lines`` added, a repeated epoch
    replaced (``frame`` itself when they hold none): a log read piece by piece gives what
    :func:`parse_metrics` gives for the whole."""
    import pandas as pd

    new = parse_metrics(lines)
    if new.empty:
        return frame
    if frame.empty:
        return new
    both = pd.concat([frame, new], ignore_index=True)
    return both.drop_duplicates("epoch", keep="last").sort_values("epoch").reset_index(drop=True)

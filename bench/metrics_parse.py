"""Metrics parsing speed: 100k log lines -> DataFrame, beside pandas' read_csv of the same numbers.

By default every line is a metrics line (the worst case); ``--every 10`` mixes in the ordinary
lines a training prints, as a real log does.  Target: parse_metrics <= 0.3 s for 100k lines, and
<= 2x read_csv.

    .venv/bin/python bench/metrics_parse.py [--lines 100000] [--every 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from amc_widgets.core.metrics import METRIC_NAMES, format_metrics_line, parse_metrics  # noqa: E402

NOISE = "      3/100      1.2G      1.234      2.345      1.456         42        640: 100% 25/25 3.1it/s 8.0s"


def make_inputs(lines: int, every: int) -> tuple[list[str], str, int]:
    """The log lines, a CSV of exactly the numbers its metrics lines carry, and their count."""
    log, rows = [], []
    for i in range(lines):
        if i % every == every - 1:
            epoch = len(rows) + 1
            values = {name: (epoch * 0.001 + k) for k, name in enumerate(METRIC_NAMES)}
            values.update(epoch=epoch, epochs=lines // every)
            log.append(f"2026-11-25T10:00:00Z algo-1 {format_metrics_line(values)}")
            rows.append(values)
        else:
            log.append(NOISE)
    csv = pd.DataFrame(rows, columns=list(METRIC_NAMES)).to_csv(index=False)
    return log, csv, len(rows)


def medians(repeats: int, *works) -> list[float]:
    """Each work's median time, the works run in turn so that a busy machine weighs on all alike."""
    times = [[] for _ in works]
    for _ in range(repeats):
        for spent, work in zip(times, works):
            start = time.perf_counter()
            work()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=1, help="one metrics line every N lines")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    log, csv, epochs = make_inputs(args.lines, args.every)
    frame = parse_metrics(log)
    assert len(frame) == epochs and frame["epoch"].tolist() == list(range(1, epochs + 1))
    ours, peer = medians(args.repeats, lambda: parse_metrics(log), lambda: pd.read_csv(io.StringIO(csv)))
    print(f"{args.lines} log lines, {epochs} metrics lines, median of {args.repeats}")
    print(f"{'parse_metrics (log lines)':<32}{ours:8.3f} s   target <= 0.3 s")
    print(f"{'pandas.read_csv (same numbers)':<32}{peer:8.3f} s")
    print(f"ratio parse_metrics/read_csv: {ours / peer:.2f}   target <= 2")


if __name__ == "__main__":
    main()

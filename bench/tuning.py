"""Scheduling overhead of the local tuner: a tuning job of N trials at parallel P, beside the same
trials (the values the tuner picked) started as N plain jobs on a queue of P slots.

Both run the stand-in container (tests/fake_container.py: metrics lines, no training), so what
differs is the tuner: its start (Optuna, the SQLite study), asking and telling, and starting each
trial when a slot frees instead of having it wait in the queue.  Each repeat runs the tuning job,
then its trials as plain jobs; medians of
``--repeats``.  Target: tuning / plain <= 1.05.

    .venv/bin/python bench/tuning.py [--trials 8] [--parallel 2] [--epochs 5] [--epoch-seconds 1.5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from amc_widgets.backends.local import LocalBackend  # noqa: E402
from amc_widgets.core.demo_dataset import make_demo_dataset  # noqa: E402
from amc_widgets.core.jobs import COMPLETED, JobSpec  # noqa: E402
from amc_widgets.core.tuning import TuningSpec, parse_range  # noqa: E402

FAKE = [sys.executable, str(REPO / "tests" / "fake_container.py")]
POLL_SECONDS = 0.1


def backend(home: Path, dataset: Path, parallel: int) -> LocalBackend:
    local = LocalBackend(home=home, user="bench", max_concurrent_jobs=parallel, container_command=FAKE)
    local.store_dataset(dataset, name="solder")
    return local


def run_tuning(local: LocalBackend, trials: int, parallel: int, epochs: int) -> tuple[float, list[dict]]:
    """Seconds from start_tuning_job to its end; the tuned values of its trials."""
    spec = TuningSpec(dataset="solder", hyperparameters={"model": "yolov5n", "epochs": str(epochs)},
                      ranges=[parse_range("mosaic=0:1"), parse_range("lr0=1e-4:1e-1:log")], strategy="Random",
                      max_jobs=trials, max_parallel=parallel)
    start = time.perf_counter()
    name = local.start_tuning_job(spec).name
    while not (tuning := local.describe_tuning_job(name)).is_terminal:
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - start
    assert tuning.status == COMPLETED and len(tuning.children) == trials, tuning
    return seconds, [child.tuned for child in tuning.children]


def run_plain(local: LocalBackend, picks: list[dict], epochs: int) -> float:
    """Seconds from starting the same trials as plain jobs (all queued at once) to the last one's end."""
    start = time.perf_counter()
    names = [local.start_job(JobSpec(dataset="solder", hyperparameters={"model": "yolov5n", "epochs": str(epochs),
                                                                          **tuned})).name for tuned in picks]
    while not all((job := local.describe_job(name)).is_terminal for name in names):
        time.sleep(POLL_SECONDS)
    seconds = time.perf_counter() - start
    assert all(local.describe_job(name).status == COMPLETED for name in names), job
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--epoch-seconds", type=float, default=1.5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(PYTHONPATH=str(REPO), FAKE_EPOCH_SECONDS=str(args.epoch_seconds))
    tuned_times, plain_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_demo_dataset(root / "dataset", train=8, val=4, size=64, seed=1)
        for repeat in range(args.repeats):
            local = backend(root / f"tuning-{repeat}", root / "dataset", args.parallel)
            seconds, picks = run_tuning(local, args.trials, args.parallel, args.epochs)
            tuned_times.append(seconds)
            plain_times.append(run_plain(backend(root / f"plain-{repeat}", root / "dataset", args.parallel),
                                         picks, args.epochs))
            print(f"run {repeat + 1}: tuning {tuned_times[-1]:.2f} s, plain jobs {plain_times[-1]:.2f} s", flush=True)
    tuned, plain = statistics.median(tuned_times), statistics.median(plain_times)
    print(f"{args.trials} trials at parallel {args.parallel}, {args.epochs} epochs of {args.epoch_seconds:g} s, "
          f"median of {args.repeats}:")
    print(f"  local tuner  {tuned:.2f} s")
    print(f"  plain jobs   {plain:.2f} s")
    print(f"  ratio        {tuned / plain:.3f}  (target <= 1.05)")


if __name__ == "__main__":
    main()

"""Finished local jobs made in a blink, without training: what a workspace holds after weeks of use.

Used by the dashboard's browser test and bench/dashboard.py ("page open" with many finished jobs).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from amc_widgets.backends.local_jobs import JobFiles
from amc_widgets.core.container_contract import MLPaths
from amc_widgets.core.jobs import COMPLETED, FAILED, STOPPED, JobSpec
from amc_widgets.core.metrics import format_metrics_line

DAY = 86_400.0
CLASSES = ("good", "insufficient", "bridge")  # the demo dataset's


def make_finished_jobs(home: Path, user: str, count: int, dataset: str = "demo-solder",
                       now: float = 1_790_000_000.0, seed: int = 0) -> list[str]:
    """``count`` ended jobs of ``user`` under ``home`` (one every few hours back from ``now``), each with
    a log of metrics lines and the state the job runner writes when a job ends. Returns their names."""
    rng = random.Random(seed)
    names = []
    for i in range(count):
        created = now - (count - i) * DAY / 6
        epochs = rng.randint(5, 40)
        model = rng.choice(["yolov5n", "yolov5s", "yolov5m"])
        name = f"amc-{model}-{dataset}-{i:04d}"
        job = JobFiles(home / "jobs" / name, clock=lambda created=created: created)
        job.create(JobSpec(dataset=dataset, hyperparameters={"model": model, "epochs": str(epochs)}, name=name),
                   {"user": user})
        status = rng.choices([COMPLETED, STOPPED, FAILED], weights=[8, 1, 1])[0]
        done = epochs if status == COMPLETED else rng.randint(0, epochs - 1)
        best = rng.uniform(0.2, 0.8)
        with open(job.log, "w", encoding="utf-8") as log:
            for epoch in range(1, done + 1):
                progress = epoch / epochs
                log.write(format_metrics_line({
                    "epoch": epoch, "epochs": epochs,
                    "train_box_loss": 2 - progress, "train_cls_loss": 3 - 2 * progress,
                    "train_dfl_loss": 1.5 - progress / 2, "val_box_loss": 2.1 - progress, "val_cls_loss": 3 - progress,
                    "val_dfl_loss": 1.6 - progress / 2, "precision": best * progress, "recall": best * progress,
                    "mAP50": best * progress, "mAP50-95": best * progress * 0.6, "lr": 0.01,
                    "epoch_seconds": 3.0}) + "\n")
        if done:  # a model, and its card's per-class results, as the container leaves them
            model_dir = MLPaths(job.ml_root).model_dir
            model_dir.mkdir(parents=True)
            per_class = [{"class": c, "mAP50-95": round(best * 0.6 * rng.uniform(0.5, 1.2), 3)} for c in CLASSES]
            (model_dir / "model_card.json").write_text(json.dumps({"validation": {"per_class": per_class}}))
        ended = created + 30 + done * 3
        job.clock = lambda ended=ended: ended
        job.end(status, "Training job completed" if status == COMPLETED else "Training job failed",
                failure_reason="Out of memory (a stand-in failure)" if status == FAILED else "",
                billable_seconds=int(done * 3))
        names.append(name)
    return names

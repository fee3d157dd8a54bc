"""How long a local training job will take, from the job history of this machine: the seconds an epoch
took in a finished local job, scaled by the work an epoch does (model size, image size, dataset size)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from amc_widgets.core.hyperparameters import MODEL_NAMES
from amc_widgets.core.instances import THIS_MACHINE
from amc_widgets.core.jobs import JobDescription

# GFLOPs of one 640 px forward pass (ultralytics' YOLOv5u table): an epoch's work grows with them
MODEL_GFLOPS = {"yolov5n": 7.7, "yolov5s": 24.0, "yolov5m": 64.2, "yolov5l": 135.0, "yolov5x": 246.4}
LONG_SECONDS = 30 * 60  # longer than this on this machine: smaller settings are suggested
SMALLER_SIZES = (640, 512, 416, 320, 256, 160)


@dataclass(frozen=True)
class Settings:
    """What decides an epoch's work: model, image size, and the dataset's files (0: not known)."""

    model: str
    imgsz: int
    epochs: int
    dataset: str = ""
    files: int = 0

    def work(self) -> float:
        """Relative work of one epoch, without the dataset's size."""
        return MODEL_GFLOPS.get(self.model, MODEL_GFLOPS["yolov5s"]) * (self.imgsz / 640) ** 2


@dataclass(frozen=True)
class Reference:
    """A finished local job and the seconds one of its epochs took."""

    job: str
    settings: Settings
    epoch_seconds: float


@dataclass(frozen=True)
class TimeEstimate:
    """The time ``settings`` take, and the job it was scaled from."""

    settings: Settings
    seconds: float
    reference: Reference
    smaller: Settings | None = None  # settings that fit LONG_SECONDS, when these do not
    smaller_seconds: float = 0.0

    @property
    def long(self) -> bool:
        return self.seconds > LONG_SECONDS

    def describe(self) -> str:
        ref = self.reference
        about = "about " if self.seconds >= 60 else ""
        return (f"{about}{duration_words(self.seconds)} on this machine (at most: patience may stop it sooner), "
                f"from job {ref.job}: {ref.epoch_seconds:.1f} s an epoch with {ref.settings.model} at "
                f"{ref.settings.imgsz} px")

    def suggestion(self) -> str:
        """Smaller settings that take under LONG_SECONDS, or '' when these are short enough."""
        if not self.long:
            return ""
        if self.smaller is None:
            epochs = max(1, int(LONG_SECONDS / self.seconds * self.settings.epochs))
            return (f"That is long for this machine: about {epochs} epochs fit in "
                    f"{duration_words(LONG_SECONDS)}; or train on a SageMaker GPU.")
        s = self.smaller
        return (f"That is long for this machine: {s.model} at {s.imgsz} px would take about "
                f"{duration_words(self.smaller_seconds)}; or train on a SageMaker GPU.")


def duration_words(seconds: float) -> str:
    """``5400`` -> ``1 h 30 min``; under a minute: ``under a minute``."""
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def references(history: Iterable[JobDescription]) -> list[Reference]:
    """Finished local jobs that measured their epochs, newest first."""
    found = []
    for job in sorted(history, key=lambda j: j.created, reverse=True):
        seconds = job.final_metric("epoch_seconds")
        if job.instance_type != THIS_MACHINE or seconds is None or not math.isfinite(seconds) or seconds <= 0:
            continue
        try:
            imgsz = int(job.hyperparameters.get("imgsz", "640").strip('"'))
        except ValueError:
            continue
        model = job.hyperparameters.get("model", "yolov5s").strip('"')
        found.append(Reference(job.name, Settings(model, imgsz, 0, job.dataset), seconds))
    return found


def estimate(settings: Settings, history: Iterable[JobDescription],
             files_by_dataset: Mapping[str, int] | None = None) -> TimeEstimate | None:
    """The time ``settings`` take here, from the newest finished local job (one on the same dataset
    first); None without one. Another dataset is scaled by its number of files when both are known."""
    found = references(history)
    if not found:
        return None
    ref = next((r for r in found if r.settings.dataset == settings.dataset), found[0])
    files = files_by_dataset or {}
    scale = 1.0
    if ref.settings.dataset != settings.dataset and files.get(ref.settings.dataset) and files.get(settings.dataset):
        scale = files[settings.dataset] / files[ref.settings.dataset]
    per_work = ref.epoch_seconds / ref.settings.work() * scale

    def seconds(candidate: Settings) -> float:
        return per_work * candidate.work() * candidate.epochs

    total = seconds(settings)
    if total <= LONG_SECONDS:
        return TimeEstimate(settings, total, ref)
    models = MODEL_NAMES[: MODEL_NAMES.index(settings.model) + 1] if settings.model in MODEL_NAMES else MODEL_NAMES
    candidates = [Settings(m, size, settings.epochs, settings.dataset) for m in models
                  for size in sorted({settings.imgsz, *SMALLER_SIZES}) if size <= settings.imgsz]
    fitting = [c for c in candidates if seconds(c) <= LONG_SECONDS]
    smaller = max(fitting, key=seconds, default=None)  # the least change that fits
    return TimeEstimate(settings, total, ref, smaller, seconds(smaller) if smaller else 0.0)

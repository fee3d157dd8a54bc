"""Turn a weights choice into a job's ``weights`` channel: fetch the file (release asset, the
user's ``.pt``, a previous job's ``best.pt``), check it against the model and the dataset, and
store it once in the user's space, all before anything is billed.  Works with either backend."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amc_widgets.core.jobs import COMPLETED, STOPPED
from amc_widgets.core.weights import COCO, FILE, JOB, SCRATCH, WeightsCache, WeightsChoice, WeightsError, coco_asset
from amc_widgets.core.weights_check import check_weights


@dataclass(frozen=True)
class StartWeights:
    """The hyperparameters that give a job its weights, and what that means, in a sentence."""

    hyperparameters: dict[str, str]
    note: str


@dataclass(frozen=True)
class PreviousJob:
    """A finished job whose best.pt can be started from."""

    name: str
    map50_95: float  # its last epoch's, from the job's summary; NaN when unknown

    @property
    def label(self) -> str:
        score = "mAP50-95 ?" if math.isnan(self.map50_95) else f"mAP50-95 {self.map50_95:.3f}"
        return f"{self.name} ({score})"


def previous_jobs(backend) -> list[PreviousJob]:
    """The user's completed or stopped jobs with a model, newest first, with their final mAP50-95 (from
    the summaries a listing gives: no job's log is read)."""
    with_outputs = {output.job_name for output in backend.list_outputs()}
    jobs = []
    for job in backend.list_jobs():
        if job.status in (COMPLETED, STOPPED) and job.name in with_outputs:
            final = job.final_metric("mAP50-95")
            jobs.append(PreviousJob(job.name, math.nan if final is None else final))
    return jobs


def prepare_weights(backend, choice: WeightsChoice, model: str, dataset: str, cache: WeightsCache,
                    progress: Callable[[int, int], None] | None = None) -> StartWeights:
    """Fetch, check and store the weights of ``choice`` for a ``model`` job on ``dataset``."""
    if choice.kind == SCRATCH:
        return StartWeights({"weights": "", "weights_source": SCRATCH}, "Training from scratch.")
    with tempfile.TemporaryDirectory(prefix="amc-weights-") as work:
        if choice.kind == COCO:
            path, source = cache.fetch(coco_asset(model), progress), f"coco:{coco_asset(model)}"
        elif choice.kind == FILE:
            path, source = Path(choice.value).expanduser(), f"file:{Path(choice.value).name[:100]}"
        elif choice.kind == JOB:
            path, source = _job_best_pt(backend, choice.value, Path(work)), f"job:{choice.value}"
        else:
            raise WeightsError(f"weights: unknown choice '{choice.kind}'")
        check = check_weights(path, model, backend.dataset_class_names(dataset))
        stored = backend.store_weights(path, check.sha256)
    return StartWeights({"weights": stored, "weights_source": f"{source} sha256:{check.sha256}"},
                        f"Starting from {source}. {check.note}")


def _job_best_pt(backend, name: str, work: Path) -> Path:
    job = backend.describe_job(name)
    if job.status not in (COMPLETED, STOPPED):
        raise WeightsError(f"weights: job '{name}' is {job.status}; start from a completed or stopped job")
    best = backend.download_outputs(name, work).folder / "model" / "best.pt"
    if not best.is_file():
        raise WeightsError(f"weights: job '{name}' saved no best.pt")
    return best

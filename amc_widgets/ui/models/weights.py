"""The Train tab's "Start from" choice: COCO-pretrained, from scratch, a .pt file or a previous job
(listed with its mAP50-95), turned into the job's weights just before it starts."""

from __future__ import annotations

from collections.abc import Callable

import traitlets as tl

from amc_widgets.backends.base import Backend
from amc_widgets.backends.start_weights import prepare_weights, previous_jobs
from amc_widgets.core.weights import COCO, FILE, JOB, SCRATCH, WeightsCache, WeightsChoice, WeightsError, coco_asset
from amc_widgets.ui.models import Transfer

KINDS = (COCO, SCRATCH, FILE, JOB)
KIND_LABELS = {COCO: "COCO-pretrained", SCRATCH: "From scratch", FILE: "A .pt file", JOB: "A previous job"}


class WeightsModel(tl.HasTraits):
    """What to start from; ``jobs`` holds (label, name) of the user's finished jobs."""

    kind = tl.Enum(KINDS, default_value=COCO)
    path = tl.Unicode("", help="the .pt file for kind 'file'")
    job = tl.Unicode(None, allow_none=True, help="the previous job for kind 'job' (None: none chosen)")
    jobs = tl.List(help="(label, job name) of finished jobs with a model, newest first")
    note = tl.Unicode("", help="what the last start did with its weights")

    def __init__(self, backend: Callable[[], Backend], cache: Callable[[], WeightsCache]):
        super().__init__()
        self._backend, self._cache = backend, cache
        self.download = Transfer()

    def refresh(self, model: str) -> None:
        """List the previous jobs; COCO-pretrained is the default when its file is on this machine."""
        self.jobs = [(job.label, job.name) for job in previous_jobs(self._backend())]
        if self.kind in (COCO, SCRATCH):
            self.kind = COCO if self._cache().cached(coco_asset(model)) else SCRATCH
        if self.job not in {name for _label, name in self.jobs}:
            self.job = self.jobs[0][1] if self.jobs else None

    def choice(self) -> WeightsChoice:
        if self.kind == FILE:
            if not self.path.strip():
                raise WeightsError("Enter the path of the .pt file to start from")
            return WeightsChoice.parse(self.path)
        if self.kind == JOB:
            if not self.job:
                raise WeightsError("No finished job to start from yet: choose another starting point")
            return WeightsChoice(JOB, self.job)
        return WeightsChoice(self.kind)

    def prepare(self, model: str, dataset: str) -> dict[str, str]:
        """Fetch (with progress), check and store the weights; the job's hyperparameters for them."""
        self.download.start()
        try:
            start = prepare_weights(self._backend(), self.choice(), model, dataset, self._cache(),
                                    self.download.progress)
        finally:
            self.download.running = False
        self.note = start.note
        return start.hyperparameters


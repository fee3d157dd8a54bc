"""Job cards: each job's status, bounded log, metrics and download; the board that polls them."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import traitlets as tl

from amc_widgets.backends.base import Backend, DownloadResult, RunsJobsHere, download_or_reuse
from amc_widgets.core.errors import user_message
from amc_widgets.core.instances import THIS_MACHINE
from amc_widgets.core.jobs import COMPLETED, IN_PROGRESS, STOPPED, JobDescription, JobSpec
from amc_widgets.core.metrics import append_metrics, parse_metrics
from amc_widgets.core.text import clean_log_line, human_duration
from amc_widgets.core.weights import describe_source
from amc_widgets.ui.models import Transfer

if TYPE_CHECKING:  # pandas loads when a table is first made, numpy with a job's results: not with the page
    import pandas as pd

    from amc_widgets.ui.models.results import ResultsModel

MAX_LOG_LINES = 400
# (fastest, slowest) seconds between polls of a running job: fastest while its log grows, slowing
# down by BACKOFF per quiet poll. CloudWatch and DescribeTrainingJob are rate-limited, hence remote.
LOCAL_POLL_SECONDS = (0.5, 2.0)
REMOTE_POLL_SECONDS = (5.0, 20.0)
# slowest while the log watcher wakes a local card as its job writes: the polls only back it up (a
# runner that died without a word, the duration shown)
WATCHED_SLOWEST_SECONDS = 10.0
BACKOFF = 1.5
ERROR_RETRY_SECONDS = 10.0


@dataclass
class Change:
    """What one poll changed, so views redraw only that."""

    status: bool = False
    log: bool = False
    metrics: bool = False

    def __bool__(self) -> bool:
        return self.status or self.log or self.metrics


class DownloadState(Transfer):
    """Downloading a job's outputs: progress, then where they are and a preview, or the error."""

    result = tl.Instance(DownloadResult, allow_none=True)
    preview = tl.Instance(Path, allow_none=True, help="the model's boxes drawn on a validation image")
    preview_note = tl.Unicode("")

    def clear(self) -> None:
        with self.hold_trait_notifications():
            super().clear()
            self.result = self.preview = None
            self.preview_note = ""


@dataclass
class JobCard:
    """One training job as its card shows it; updated only by :meth:`poll`."""

    name: str
    description: JobDescription | None = None
    poll_seconds: tuple[float, float] = LOCAL_POLL_SECONDS
    wall_clock: Callable[[], float] = time.time
    log: deque = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))
    log_lines_total: int = 0
    cursor: Any = None
    log_finished: bool = False
    metrics: pd.DataFrame = field(default_factory=lambda: parse_metrics([]))
    next_poll: float = 0.0
    error: str = ""
    download: DownloadState = field(default_factory=DownloadState)
    interval: float = 0.0
    woken: bool = False  # its job wrote: poll it now, whatever next_poll says
    results: ResultsModel | None = None  # made when the Results view is first opened, never at page load

    @property
    def settled(self) -> bool:
        """Ended and fully read: never polled again."""
        return self.description is not None and self.description.is_terminal and self.log_finished

    def poll(self, backend: Backend, now: float, watched: bool = False) -> Change:
        """Read status and new log lines, and metrics from those lines (what a poll costs does not grow
        with the log); schedule the next poll (later when ``watched``: its job's writes wake it)."""
        change = Change()
        self.woken = False  # before reading: what is written from here on wakes it again
        try:
            description = backend.describe_job(self.name)
            change.status = True  # the duration moves while it runs
            self.description = description
            chunk = backend.read_logs(self.name, self.cursor)
            self.cursor, self.log_finished = chunk.cursor, chunk.finished
            if chunk.lines:
                self.log.extend(clean_log_line(line) for line in chunk.lines)
                self.log_lines_total += len(chunk.lines)
                change.log = True
            metrics = append_metrics(self.metrics, chunk.lines)
            if metrics is not self.metrics:
                self.metrics, change.metrics = metrics, True
            self.error = ""
            fastest, slowest = self.poll_seconds
            slowest = max(slowest, WATCHED_SLOWEST_SECONDS) if watched else slowest
            self.interval = fastest if change.log or not self.interval else min(slowest, self.interval * BACKOFF)
            self.next_poll = now if chunk.more else now + self.interval
        except Exception as exc:  # noqa: BLE001 - shown on the card; the poller goes on
            self.error = "Could not refresh: " + user_message(exc)
            change.status = True
            self.next_poll = now + ERROR_RETRY_SECONDS
        return change

    def header(self) -> dict[str, str]:
        """Label -> value rows for the card's header."""
        job = self.description
        if job is None:
            return {"Status": "Starting"}
        instance = ("this machine" if job.instance_type == THIS_MACHINE
                    else f"{job.instance_count} x {job.instance_type}")
        billable = human_duration(job.billable_seconds) if job.billable_seconds is not None else "-"
        return {
            "Instance": instance + (" (spot)" if job.spot else ""),
            "Dataset": job.dataset,
            "Weights": describe_source(job.hyperparameters),
            "Status": job.status,
            "Step": job.secondary_status,
            "Duration": human_duration(job.duration(self.wall_clock())),
            "Billable": billable,
            "Epoch": self.epoch_text(),
        }

    def epoch_text(self) -> str:
        if self.metrics.empty:
            return "-"
        last = self.metrics.iloc[-1]
        return f"{int(last['epoch'])} / {int(last['epochs'])}"

    @property
    def status(self) -> str:
        return self.description.status if self.description else IN_PROGRESS

    @property
    def has_results(self) -> bool:
        """Completed or stopped: the job saved a model whose results can be shown."""
        return self.status in (COMPLETED, STOPPED)

    @property
    def failure_reason(self) -> str:
        return self.description.failure_reason if self.description else ""


class JobBoard:
    """Every card on the page, newest first; thread-safe for the one poller and the UI thread."""

    def __init__(self, backend: Callable[[], Backend], clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, poll_seconds: tuple[float, float] | None = None):
        self._backend = backend
        self.clock = clock
        self.wall_clock = wall_clock
        self._poll_seconds = poll_seconds
        self._cards: dict[str, JobCard] = {}
        self._metrics: dict[str, pd.DataFrame] = {}  # finished jobs compared without a card
        self._lock = threading.Lock()
        self.wakeup = threading.Event()  # set when a card needs a poll sooner than planned
        self.watching = False  # the log watcher wakes the cards whose jobs write (set by the poller)

    @property
    def poll_seconds(self) -> tuple[float, float]:
        if self._poll_seconds is not None:
            return self._poll_seconds
        return LOCAL_POLL_SECONDS if isinstance(self._backend(), RunsJobsHere) else REMOTE_POLL_SECONDS

    def cards(self) -> list[JobCard]:
        with self._lock:
            return sorted(self._cards.values(), key=lambda c: c.description.created if c.description else 0,
                          reverse=True)

    def card(self, name: str) -> JobCard:
        with self._lock:
            return self._cards[name]

    def _add(self, description: JobDescription) -> JobCard:
        card = JobCard(description.name, description, poll_seconds=self.poll_seconds, wall_clock=self.wall_clock)
        with self._lock:
            self._cards[card.name] = card
        self.wakeup.set()
        return card

    def start(self, spec: JobSpec) -> JobCard:
        """Start a job on the backend and add its card (it is polled at once)."""
        return self._add(self._backend().start_job(spec))

    def restore(self) -> tuple[list[JobCard], list[JobDescription]]:
        """After a reload, or for jobs started elsewhere: cards for the jobs in progress not on the page
        yet, and every finished job (for the table: their summaries, nothing of theirs is read). A tuning
        job's children are left to its tuning card, which opens them on demand."""
        with self._lock:
            known = set(self._cards)
        jobs = [job for job in self._backend().list_jobs() if not job.tuning_job]
        cards = [self._add(job) for job in reversed(jobs) if not job.is_terminal and job.name not in known]
        return cards, [job for job in jobs if job.is_terminal]

    def open(self, description: JobDescription) -> JobCard:
        """A card for a finished job, on demand: its log and metrics are read once, here and now, so its
        view is drawn whole from the start (the poller leaves a settled card alone)."""
        with self._lock:
            card = self._cards.get(description.name)
        if card is not None:
            return card
        card = JobCard(description.name, description, poll_seconds=self.poll_seconds, wall_clock=self.wall_clock)
        card.poll(self._backend(), self.clock())
        with self._lock:
            return self._cards.setdefault(card.name, card)

    def open_by_name(self, name: str) -> JobCard:
        """A card for any job of this user, running or not (a tuning job's child), on demand."""
        with self._lock:
            card = self._cards.get(name)
        if card is None:
            card = self.open(self._backend().describe_job(name))
            self.wakeup.set()  # a running one is polled from now on
        return card

    def remove(self, name: str) -> None:
        """The card is closed: forget it (and its log) until it is opened again."""
        with self._lock:
            self._cards.pop(name, None)

    def metrics_of(self, name: str) -> pd.DataFrame:
        """A job's metrics per epoch: its card's, or read once for a finished job without a card."""
        with self._lock:
            card = self._cards.get(name)
        if card is not None and (not card.metrics.empty or not card.settled):
            return card.metrics
        if name not in self._metrics:
            self._metrics[name] = self._backend().read_metrics(name)
        return self._metrics[name]

    def clear(self) -> None:
        with self._lock:
            self._cards.clear()
            self._metrics.clear()

    def stop(self, name: str) -> None:
        card = self.card(name)
        card.description = self._backend().stop_job(name)
        card.next_poll, card.interval = 0.0, 0.0
        self.wakeup.set()

    def due(self, now: float) -> list[JobCard]:
        return [card for card in self.cards() if not card.settled and (card.woken or card.next_poll <= now)]

    def seconds_to_next_poll(self, now: float) -> float | None:
        """None when every card is settled: nothing to do until a job is added."""
        pending = [now if card.woken else card.next_poll for card in self.cards() if not card.settled]
        return max(0.0, min(pending) - now) if pending else None

    def watched(self) -> frozenset[str]:
        """The jobs whose writing should wake their cards: those not settled."""
        return frozenset(card.name for card in self.cards() if not card.settled)

    def backend(self) -> Backend:
        """The backend the cards are polled on (the connection's: it raises when there is none)."""
        return self._backend()

    def wake(self, names: set[str]) -> None:
        """These jobs wrote: their cards are polled at once."""
        with self._lock:
            cards = [self._cards[name] for name in names if name in self._cards]
        for card in cards:
            card.woken = True
        if cards:
            self.wakeup.set()

    def poll_due(self) -> list[tuple[JobCard, Change]]:
        """Poll every card that is due; returns the ones that changed. Needs a backend only when
        some card is due (after Close the board is empty and the poller idles quietly)."""
        due = self.due(self.clock())
        if not due:
            return []
        backend = self._backend()
        changed = []
        for card in due:
            change = card.poll(backend, self.clock(), watched=self.watching)
            if change:
                changed.append((card, change))
        return changed

    def download(self, name: str, dest: Path, validation_image: Path | None) -> DownloadResult | None:
        """Download a job's outputs into ``dest``, then draw the model's boxes on ``validation_image``.
        Runs in the caller's thread; progress, outcome and errors are kept in the card's ``download``."""
        state = self.card(name).download
        state.start()
        try:
            result = download_or_reuse(self._backend(), name, dest, state.progress)
            with state.hold_trait_notifications():
                state.result, state.fraction = result, 1.0
            if state.result.onnx is None:
                state.preview_note = "The outputs hold no ONNX model (the job ended before exporting one)."
            elif validation_image is None:
                state.preview_note = "No validation image of this dataset on this machine for a preview."
            else:
                from amc_widgets.core.onnx_model import predict_image

                drawn, detections = predict_image(state.result.onnx, validation_image)
                preview = state.result.folder / "preview.png"
                drawn.save(preview)
                with state.hold_trait_notifications():
                    state.preview = preview
                    state.preview_note = (f"{len(detections)} object(s) found on {validation_image.name} "
                                          "(confidence >= 0.25)")
        except Exception as exc:  # noqa: BLE001 - shown on the card
            state.error = "Download failed: " + user_message(exc)
        finally:
            state.running = False
        return state.result


    def results(self, name: str) -> ResultsModel:
        """The card's results model, made on first use."""
        from amc_widgets.ui.models.results import ResultsModel

        card = self.card(name)
        if card.results is None:
            card.results = ResultsModel()
        return card.results

    def load_results(self, name: str, dest: Path, validation_image: Path | None) -> ResultsModel:
        """Download the job's outputs (unless the card has them) and load its results model; runs in
        the caller's thread, and the model keeps the outcome."""
        card, model = self.card(name), self.results(name)
        model.start()
        result = card.download.result or self.download(name, dest, validation_image)
        if result is None:
            model.fail(card.download.error or "The job's outputs could not be downloaded")
        else:
            model.load(result.folder)
        return model


def compare_series(metrics: dict[str, pd.DataFrame], metric: str) -> dict[str, tuple[list[int], list[float]]]:
    """Job name -> (epochs, values) of one metric, for the jobs that have reached an epoch."""
    series = {}
    for name, frame in metrics.items():
        if not frame.empty and metric in frame:
            series[name] = (frame["epoch"].astype(int).tolist(), frame[metric].astype(float).tolist())
    return series

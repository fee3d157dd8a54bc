"""The one background thread that refreshes every job card (and every other board's cards, e.g. tuning
jobs), and the one that wakes it when a job writes (where the backend can watch its files)."""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from amc_widgets.backends.base import WatchesLogs
from amc_widgets.ui.models.jobs import Change, JobBoard, JobCard

ChangeHandler = Callable[[JobCard, Change], None]
WATCH_TIMEOUT_S = 1.0  # how soon the watcher follows cards added or settled
WATCH_RETRY_S = 10.0  # after watching failed, polling alone until it is tried again


class Board(Protocol):
    """What the poller needs of a board besides the job board: cards due, and when the next one is."""

    clock: Callable[[], float]

    def poll_due(self) -> list[tuple[Any, Any]]: ...

    def seconds_to_next_poll(self, now: float) -> float | None: ...


class Poller:
    """Polls the cards that are due, hands changes to ``on_change``, then sleeps until the next one
    is due; with every card settled it sleeps until ``board.wakeup`` is set (a job added or stopped).
    ``others`` are more boards, each with its handler; they share ``board.wakeup``."""

    def __init__(self, board: JobBoard, on_change: ChangeHandler, on_error: Callable[[Exception], None] | None = None,
                 others: Sequence[tuple[Board, Callable[[Any, Any], None]]] = (),
                 watch_timeout: float = WATCH_TIMEOUT_S, watch_retry: float = WATCH_RETRY_S):
        self.board = board
        self.on_change = on_change
        self.on_error = on_error
        self.others = list(others)
        self.watch_timeout = watch_timeout
        self.watch_retry = watch_retry
        self.watch_failures = 0
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._watcher: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="amc-dashboard-poller", daemon=True)
            self._thread.start()
            self._watcher = threading.Thread(target=self._watch, name="amc-dashboard-log-watcher", daemon=True)
            self._watcher.start()
            # a kernel shutting down (its page closed or culled) ends the thread between two polls, well
            # within the 5 s jupyter_client waits before killing it
            atexit.register(self.stop, timeout=2.0)

    def stop(self, timeout: float = 5.0) -> None:
        """Ends the threads after the poll in progress, if any (waiting up to ``timeout`` s for it)."""
        atexit.unregister(self.stop)
        self._stopped.set()
        self.board.wakeup.set()
        for thread in (self._thread, self._watcher):
            if thread is not None:
                thread.join(timeout=timeout)

    def run_once(self) -> float | None:
        """One round: poll due cards, report changes; returns seconds until the next round (None: idle)."""
        waits = []
        for board, on_change in [(self.board, self.on_change), *self.others]:
            for card, change in board.poll_due():
                on_change(card, change)
            wait = board.seconds_to_next_poll(board.clock())
            if wait is not None:
                waits.append(wait)
        return min(waits) if waits else None

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                wait = self.run_once()
            except Exception as exc:  # noqa: BLE001 - a view error must not end live updates
                if self._stopped.is_set():  # the kernel is going: there is no page left to tell
                    break
                if self.on_error:
                    self.on_error(exc)
                wait = 1.0
            self.board.wakeup.wait(wait)
            self.board.wakeup.clear()

    def _watch(self) -> None:
        """Wakes the cards whose jobs write, while the backend can watch their files; the polls go on
        as planned beside it, and alone when watching fails (until it is tried again)."""
        while not self._stopped.is_set():
            names = self.board.watched()
            try:
                backend = self.board.backend() if names else None
                if not isinstance(backend, WatchesLogs):
                    self.board.watching = False
                    self._stopped.wait(self.watch_timeout)
                    continue
                self.board.watching = False
                with contextlib.closing(backend.watch_logs(names, self._stopped, self.watch_timeout)) as changes:
                    for changed in changes:
                        if not self.board.watching:  # in place now: what was written before it, read too
                            self.board.watching, changed = True, names
                        self.board.wake(changed)
                        if self.board.watched() != names:
                            break
            except Exception:  # noqa: BLE001 - e.g. the system's limit of watches reached: polls suffice
                self.board.watching = False
                self.watch_failures += 1
                self._stopped.wait(self.watch_retry)

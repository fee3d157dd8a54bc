"""The job board, its cards and the poller, headless: a fake backend and a clock the test moves."""

from __future__ import annotations

import sys
import threading
import time

import pytest
from PIL import Image

from amc_widgets.backends.base import WatchesLogs
from amc_widgets.backends.local import LocalBackend
from amc_widgets.core.jobs import COMPLETED, IN_PROGRESS, STOPPING, JobNotFoundError
from amc_widgets.core.metrics import format_metrics_line, parse_metrics
from amc_widgets.ui.models.connection import ConnectionModel
from amc_widgets.ui.models.jobs import (
    BACKOFF,
    ERROR_RETRY_SECONDS,
    LOCAL_POLL_SECONDS,
    MAX_LOG_LINES,
    REMOTE_POLL_SECONDS,
    WATCHED_SLOWEST_SECONDS,
    Change,
    JobBoard,
    compare_series,
)
from amc_widgets.ui.poller import Poller
from tests.conftest import wait_until
from tests.dashboard_fakes import SPEC, Clock, FakeBackend, assert_imports_no_widgets
from tests.onnx_fakes import tiny_detector


@pytest.fixture()
def fake() -> FakeBackend:
    return FakeBackend()


@pytest.fixture()
def clock() -> Clock:
    return Clock(100.0)


@pytest.fixture()
def board(fake, clock) -> JobBoard:
    return JobBoard(lambda: fake, clock=clock, wall_clock=lambda: 1000.0)


# --- job cards and board ----------------------------------------------------------------------

def test_running_job_polls_fast_while_log_grows_and_backs_off_when_quiet(board, fake, clock):
    """Fastest after new lines, x BACKOFF per quiet poll up to the slowest, never polled early."""
    card = board.start(SPEC)
    assert card.poll_seconds == LOCAL_POLL_SECONDS
    fastest, slowest = LOCAL_POLL_SECONDS
    fake.logs[card.name].append("epoch 1 starting")
    intervals = []
    for _ in range(8):
        assert board.due(clock.now) == [card]
        board.poll_due()
        intervals.append(card.next_poll - clock.now)
        assert board.due(card.next_poll - 0.01) == []
        assert board.poll_due() == []  # nothing due yet: the backend is left alone
        clock.now = card.next_poll
    assert fake.calls["describe"] == 8
    assert intervals[0] == fastest
    assert intervals[1] == pytest.approx(fastest * BACKOFF)
    assert all(later >= earlier for earlier, later in zip(intervals, intervals[1:]))
    assert max(intervals) == slowest == intervals[-1]
    fake.logs[card.name].append("epoch 2 starting")
    board.poll_due()
    assert card.next_poll - clock.now == fastest


def test_remote_backend_polls_more_gently(clock):
    """A SageMaker-like backend gets the remote intervals (CloudWatch is rate-limited)."""
    remote = FakeBackend(name="sagemaker")
    board = JobBoard(lambda: remote, clock=clock)
    card = board.start(SPEC)
    board.poll_due()
    assert card.poll_seconds == REMOTE_POLL_SECONDS
    assert card.next_poll - clock.now == REMOTE_POLL_SECONDS[0]


def test_settled_job_is_never_polled_again(board, fake, clock):
    """Terminal but log still arriving: polled; terminal and log finished: never again."""
    card = board.start(SPEC)
    fake.logs[card.name].append("last line")
    fake.finish(card.name)
    fake.hold_log = True
    board.poll_due()
    assert not card.settled and board.seconds_to_next_poll(clock.now) is not None
    fake.hold_log = False
    clock.now = card.next_poll
    board.poll_due()
    assert card.settled and card.status == COMPLETED
    assert board.seconds_to_next_poll(clock.now) is None
    calls = dict(fake.calls)
    clock.now += 3600
    assert board.due(clock.now) == [] and board.poll_due() == []
    assert dict(fake.calls) == calls


def test_seconds_to_next_poll_is_the_soonest_card_and_never_negative(board, fake, clock):
    first, second = board.start(SPEC), board.start(SPEC)
    board.poll_due()
    first.next_poll, second.next_poll = clock.now + 3.0, clock.now + 1.5
    assert board.seconds_to_next_poll(clock.now) == pytest.approx(1.5)
    assert board.seconds_to_next_poll(clock.now + 10) == 0.0


def test_stop_wakes_the_poller_and_makes_the_card_due_at_once(board, fake, clock):
    card = board.start(SPEC)
    for _ in range(5):  # quiet polls: the interval has grown
        board.poll_due()
        clock.now = card.next_poll
    clock.now -= 0.1
    assert board.due(clock.now) == []
    board.wakeup.clear()
    board.stop(card.name)
    assert card.status == STOPPING and fake.jobs[card.name].status == STOPPING
    assert board.wakeup.is_set()
    assert board.due(clock.now) == [card]
    board.poll_due()
    assert card.next_poll - clock.now == LOCAL_POLL_SECONDS[0]


def test_log_lines_are_cleaned_and_bounded_while_all_are_counted(board, fake):
    card = board.start(SPEC)
    extra = 25
    lines = [f"\x1b[32mline {i}\x1b[0m" for i in range(MAX_LOG_LINES + extra)]
    lines[-1] = "\x1b[2Kprogress  10%\rprogress  60%\rprogress 100%"
    fake.logs[card.name].extend(lines)
    (_, change), = board.poll_due()
    assert change.log
    assert len(card.log) == MAX_LOG_LINES
    assert card.log_lines_total == MAX_LOG_LINES + extra
    assert card.log[0] == f"line {extra}"
    assert card.log[-1] == "progress 100%"
    assert not any("\x1b" in line or "\r" in line for line in card.log)
    fake.logs[card.name].append("one more")
    board.card(card.name).next_poll = 0
    board.poll_due()
    assert card.log_lines_total == MAX_LOG_LINES + extra + 1 and card.log[-1] == "one more"


def test_metrics_come_from_the_lines_read_without_reading_the_log_again(board, fake):
    """A metrics line updates the charts from the lines the poll read: backend.read_metrics (the whole
    log of every host) is never called, and an epoch repeated after a spot restart replaces the first."""
    card = board.start(SPEC)
    fake.logs[card.name].append("loading dataset")
    (_, change), = board.poll_due()
    assert not change.metrics and card.epoch_text() == "-"
    fake.logs[card.name].append("12:00:01 " + format_metrics_line({"epoch": 1, "epochs": 3, "mAP50": 0.5}))
    card.next_poll = 0
    (_, change), = board.poll_due()
    assert change.metrics and card.metrics["mAP50"].tolist() == [0.5] and card.epoch_text() == "1 / 3"
    fake.logs[card.name].append("validating")
    card.next_poll = 0
    (_, change), = board.poll_due()
    assert change.log and not change.metrics
    repeated = ((2, 0.6), (2, 0.7))  # epoch 2 again: a spot instance restarted and repeated it
    fake.logs[card.name] += [format_metrics_line({"epoch": e, "epochs": 3, "mAP50": v}) for e, v in repeated]
    card.next_poll = 0
    board.poll_due()
    assert card.metrics["epoch"].tolist() == [1, 2] and card.metrics["mAP50"].tolist() == [0.5, 0.7]
    assert card.metrics.equals(parse_metrics(fake.logs[card.name]))
    assert fake.calls["metrics"] == 0


def test_a_bounded_read_with_more_waiting_is_continued_at_once(board, fake, clock):
    """A backend that reads a long log in pieces (LogChunk.more) gets the next poll at once."""
    card = board.start(SPEC)
    fake.logs[card.name].extend(f"line {i}" for i in range(25))
    fake.page_lines = 10
    board.poll_due()
    assert card.log_lines_total == 10 and card.next_poll == clock.now
    board.poll_due()
    board.poll_due()
    assert card.log_lines_total == 25 and card.next_poll > clock.now


def test_backend_error_shows_on_the_card_and_is_retried_later(board, fake, clock):
    """The poller keeps going; the card says what failed and retries after ERROR_RETRY_SECONDS."""
    card = board.start(SPEC)
    seen = []
    poller = Poller(board, on_change=lambda c, ch: seen.append((c.name, ch.status)))
    fake.fail = RuntimeError("ThrottlingException: rate exceeded")
    assert poller.run_once() == pytest.approx(ERROR_RETRY_SECONDS)
    assert "rate exceeded" in card.error and seen == [(card.name, True)]
    assert board.due(clock.now + ERROR_RETRY_SECONDS - 0.1) == []
    fake.fail = None
    clock.now += ERROR_RETRY_SECONDS
    poller.run_once()
    assert card.error == "" and card.status == IN_PROGRESS


def test_log_error_loses_no_lines(board, fake, clock):
    """A failed log read does not move the cursor: the lines come once, after the retry."""
    card = board.start(SPEC)
    fake.logs[card.name].extend(["a", "b"])
    fake.log_fail = OSError("connection reset")
    board.poll_due()
    assert "connection reset" in card.error and list(card.log) == []
    fake.log_fail = None
    clock.now = card.next_poll
    board.poll_due()
    clock.now = card.next_poll
    board.poll_due()
    assert list(card.log) == ["a", "b"] and card.log_lines_total == 2


def test_restore_cards_only_running_jobs_not_on_the_board_and_lists_finished_ones(board, fake):
    mine = board.start(SPEC)
    fake.add_job("elsewhere-old", created=0.5)
    fake.add_job("elsewhere-new", created=50.0)
    fake.add_job("done", created=40.0, status=COMPLETED)
    restored, finished = board.restore()
    assert sorted(card.name for card in restored) == ["elsewhere-new", "elsewhere-old"]
    assert [job.name for job in finished] == ["done"]
    assert board.card(mine.name) is mine
    assert [card.name for card in board.cards()] == ["elsewhere-new", mine.name, "elsewhere-old"]
    assert board.restore()[0] == []
    assert fake.calls["logs"] == 0 and fake.calls["metrics"] == 0  # listing reads no log


def test_a_finished_job_opened_on_demand_reads_its_log_once_and_is_forgotten_when_closed(board, fake, clock):
    fake.add_job("done", created=1.0, status=COMPLETED)
    fake.logs["done"] += [format_metrics_line({"epoch": 1, "epochs": 1, "mAP50": 0.5}), "bye"]
    (_, (done,)) = board.restore()
    card = board.open(done)
    assert board.open(done) is card  # opened twice: one card
    board.poll_due()
    assert card.settled and list(card.log)[-1] == "bye" and card.epoch_text() == "1 / 1"
    clock.now += 3600
    assert board.poll_due() == [] and fake.calls["logs"] == 1  # settled: never read again
    board.remove("done")
    assert board.cards() == []
    before = fake.calls["metrics"]
    assert board.metrics_of("done")["mAP50"].tolist() == [0.5]  # compared without a card: read once, kept
    board.metrics_of("done")
    assert fake.calls["metrics"] == before + 1


def test_card_header_describes_the_job(board, fake):
    fake.add_job("remote", created=1000.0 - 3725, instance_type="ml.g4dn.12xlarge", instance_count=2, spot=True)
    (card,), _finished = board.restore()
    header = card.header()
    assert header["Instance"] == "2 x ml.g4dn.12xlarge (spot)"
    assert header["Duration"] == "1:02:05"  # wall clock 1000, created 3725 s before
    assert header["Status"] == IN_PROGRESS and header["Billable"] == "-" and header["Epoch"] == "-"
    assert header["Weights"] == "from scratch"
    fake.jobs["remote"].hyperparameters = {"weights": "best-0123456789ab.pt",
                                           "weights_source": f"job:amc-earlier sha256:{'0123456789ab' * 5}abcd"}
    card.description = fake.describe_job("remote")
    assert card.header()["Weights"] == "job amc-earlier (sha256 0123456789ab)"


def test_download_error_stays_on_the_card(board, fake, tmp_path):
    card = board.start(SPEC)
    fake.download_error = JobNotFoundError(f"Training job '{card.name}' has no outputs (yet)")
    states = []
    card.download.observe(lambda change: states.append(change.new), "running")
    result = board.download(card.name, tmp_path, None)
    assert result is None
    assert card.download.error.startswith("Download failed") and "no outputs" in card.download.error
    assert states[0] is True and states[-1] is False and not card.download.running


def test_download_draws_a_preview_then_reuses_the_complete_download(board, fake, tmp_path):
    card = board.start(SPEC)
    model = tiny_detector(tmp_path / "tiny.onnx", [[32, 32, 20, 10, 0.1, 0.9]])
    fake.onnx_bytes = model.read_bytes()
    image = tmp_path / "val.png"
    Image.new("RGB", (64, 64), (40, 40, 40)).save(image)
    fractions = []
    card.download.observe(lambda change: fractions.append(change.new), "fraction")
    first = board.download(card.name, tmp_path / "dl", image)
    assert card.download.error == "" and first.onnx == tmp_path / "dl" / card.name / "model" / "best.onnx"
    assert 0.5 in fractions and fractions[-1] == 1.0
    assert card.download.preview.is_file() and "1 object(s)" in card.download.preview_note
    again = board.download(card.name, tmp_path / "dl", None)  # backend: FileExistsError
    assert card.download.error == "" and card.download.fraction == 1.0
    assert again.folder == first.folder and again.onnx == first.onnx and first.onnx in again.files
    assert "No validation image" in card.download.preview_note


def test_download_over_an_incomplete_earlier_one_is_an_error(board, fake, tmp_path):
    card = board.start(SPEC)
    (tmp_path / card.name).mkdir()
    (tmp_path / card.name / "partial.tmp").write_bytes(b"x")
    assert board.download(card.name, tmp_path, None) is None
    assert "already exists" in card.download.error


def test_download_without_onnx_explains_why_there_is_no_preview(board, fake, tmp_path):
    card = board.start(SPEC)
    result = board.download(card.name, tmp_path, tmp_path / "unused.png")
    assert result.onnx is None and card.download.preview is None
    assert "no ONNX model" in card.download.preview_note and card.download.error == ""


def test_the_card_shows_its_download_as_it_goes(board, fake, tmp_path):

    card = board.start(SPEC)
    fake.finish(card.name)
    board.poll_due()
    view = card_view(card)
    assert view.progress.layout.display == "none" and not view.download_button.disabled
    seen = []
    card.download.observe(lambda change: seen.append((view.progress.value, view.download_button.disabled)),
                          "fraction")
    board.download(card.name, tmp_path, None)
    assert (0.5, True) in seen  # half way: the bar moves, the button waits
    assert view.progress.value == 1.0 and view.progress.layout.display == "flex" and not view.download_button.disabled
    assert "Downloaded to" in view.download_info.value and "no ONNX model" in view.download_info.value


def test_results_are_made_on_demand_and_loaded_from_the_download(board, fake, tmp_path):
    from tests.results_fakes import write_downloaded

    card = board.start(SPEC)
    opened = []
    view = card_view(card, on_results=opened.append)
    board.poll_due()
    view.update(Change(status=True))
    assert card.results is None and view.results_button.disabled  # running: nothing to show, nothing built
    fake.finish(card.name)
    card.poll(fake, 0.0)
    view.update(Change(status=True))
    assert not view.results_button.disabled
    view.results_button.click()
    assert opened == [card.name] and card.results is None

    write_downloaded(tmp_path / card.name)  # a complete earlier download is reused
    model = board.load_results(card.name, tmp_path, None)
    assert model is card.results and model.state == "ready" and model.names == ["good", "bridge"]
    assert view.toggle_results(model) and view.results.widget in view.widget.children
    assert view.results.table.value.count("<tr>") == 4  # header, all, good, bridge
    assert not view.toggle_results(model) and view.results.widget.layout.display == "none"


def test_the_loss_chart_turns_logarithmic_when_one_loss_is_tenfold_the_others(board, fake):

    card = board.start(SPEC)
    view = card_view(card)
    losses = {"train_box_loss": 2.0, "train_cls_loss": 2.5, "train_dfl_loss": 1.5, "val_box_loss": 2.1,
              "val_cls_loss": 2.6, "val_dfl_loss": 1.6}
    fake.logs[card.name].append(format_metrics_line({"epoch": 1, "epochs": 3, **losses}))
    board.poll_due()
    view.update(Change(metrics=True))
    assert view.chart.layout.yaxis.type == "linear" and list(view.chart.data[0].y) == [2.0]
    fake.logs[card.name].append(format_metrics_line({"epoch": 2, "epochs": 3, **losses, "val_cls_loss": 40.0}))
    card.next_poll = 0
    board.poll_due()
    view.update(Change(metrics=True))
    assert view.chart.layout.yaxis.type == "log" and view.chart.layout.yaxis2.type != "log"


def test_results_of_a_job_without_outputs_say_why(board, fake, tmp_path):
    card = board.start(SPEC)
    fake.download_error = JobNotFoundError(f"Training job '{card.name}' has no outputs (yet)")
    model = board.load_results(card.name, tmp_path, None)
    assert model.state == "error" and "no outputs" in model.error


def test_compare_series_takes_jobs_that_reached_an_epoch(board, fake):
    with_metrics, without = board.start(SPEC), board.start(SPEC)
    fake.logs[with_metrics.name] += [format_metrics_line({"epoch": e, "epochs": 2, "mAP50": e / 4}) for e in (1, 2)]
    board.poll_due()
    before = fake.calls["metrics"]
    metrics = {card.name: board.metrics_of(card.name) for card in (with_metrics, without)}
    assert compare_series(metrics, "mAP50") == {with_metrics.name: ([1, 2], [0.25, 0.5])}
    assert fake.calls["metrics"] == before  # running jobs' metrics come from their cards


# --- poller -----------------------------------------------------------------------------------

def test_run_once_hands_each_change_to_on_change_once(board, fake, clock):
    cards = [board.start(SPEC), board.start(SPEC)]
    for card in cards:
        fake.logs[card.name].append("hello")
    seen = []
    poller = Poller(board, on_change=lambda card, change: seen.append((card.name, change.log)))
    assert poller.run_once() == LOCAL_POLL_SECONDS[0]
    assert sorted(seen) == sorted((card.name, True) for card in cards)
    seen.clear()
    assert poller.run_once() == LOCAL_POLL_SECONDS[0] and seen == []  # nothing due at the same instant


def test_idle_poller_thread_stops_promptly(fake):
    """With no card the threads sleep (on wakeup, on the stop event); stop() must still end them at once."""
    poller = Poller(JobBoard(lambda: fake), on_change=lambda *_: None)
    poller.start()
    time.sleep(0.05)
    started = time.monotonic()
    poller.stop()
    assert time.monotonic() - started < 1.0
    assert not poller._thread.is_alive() and not poller._watcher.is_alive()


def test_poller_thread_delivers_changes_then_stops(fake):
    board = JobBoard(lambda: fake)
    changed = threading.Event()
    poller = Poller(board, on_change=lambda card, change: change.log and changed.set())
    poller.start()
    try:
        card = board.start(SPEC)  # wakes the idle poller
        fake.logs[card.name].append("first line")
        assert changed.wait(2.0)
        assert list(card.log) == ["first line"]
    finally:
        started = time.monotonic()
        poller.stop()
    assert time.monotonic() - started < 1.0 and not poller._thread.is_alive()


def test_idle_poller_without_a_connection_is_quiet(tmp_path):
    """As the dashboard wires it: after Close the board is cleared and the poller should just idle,
    never asking for the (gone) backend."""
    connection = ConnectionModel(local_factory=lambda: LocalBackend(home=tmp_path, user="ana"))
    asked = []

    def backend():
        asked.append(True)
        return connection.require_backend()

    board = JobBoard(backend, clock=Clock())
    connection.connect()
    connection.close()
    board.clear()
    errors = []
    poller = Poller(board, on_change=lambda *_: None, on_error=errors.append)
    poller.start()  # the thread, as the dashboard runs it: its errors go to on_error, not to the test
    try:
        for _ in range(3):
            board.wakeup.set()
            time.sleep(0.1)
    finally:
        poller.stop()
    assert errors == [] and asked == []


# --- waking cards when their jobs write --------------------------------------------------------

def test_a_woken_card_is_due_at_once_and_its_poll_puts_it_to_sleep(board, fake, clock):
    card = board.start(SPEC)
    board.poll_due()
    assert board.due(clock.now) == [] and board.seconds_to_next_poll(clock.now) == LOCAL_POLL_SECONDS[0]
    board.wakeup.clear()
    board.wake({card.name, "not-on-the-board"})
    assert board.wakeup.is_set() and board.due(clock.now) == [card]
    assert board.seconds_to_next_poll(clock.now) == 0.0
    fake.logs[card.name].append("written")
    assert [c.name for c, change in board.poll_due() if change.log] == [card.name]
    assert board.due(clock.now) == [] and not card.woken
    assert board.watched() == {card.name}
    fake.finish(card.name)
    board.wake({card.name})  # the job wrote its end
    board.poll_due()
    assert card.settled and board.watched() == frozenset()


def test_a_watched_quiet_card_backs_off_further_its_writes_wake_it(board, fake, clock):
    card = board.start(SPEC)
    board.watching = True
    for _ in range(12):
        clock.now = card.next_poll
        board.poll_due()
    assert card.interval == WATCHED_SLOWEST_SECONDS > LOCAL_POLL_SECONDS[1]
    fake.logs[card.name].append("written")
    board.wake({card.name})
    board.poll_due()
    assert card.interval == LOCAL_POLL_SECONDS[0]  # growing again: polled at the fastest pace


QUIET_CONTAINER = [sys.executable, "-c", "import signal, sys; print('started', flush=True); "
                   "signal.signal(signal.SIGTERM, lambda *_: sys.exit(143)); signal.pause()"]


def test_a_line_written_to_a_running_local_jobs_log_reaches_its_card_before_the_next_poll(tmp_path, small_dataset):
    """The local backend watches its jobs' files: a line the job writes is on the card in well under
    a second while its polls are 30 s apart; the watcher thread ends with the poller."""
    local = LocalBackend(home=tmp_path / "home", user="ana", container_command=QUIET_CONTAINER)
    local.store_dataset(small_dataset, name="solder")
    assert isinstance(local, WatchesLogs)
    board = JobBoard(lambda: local, poll_seconds=(30.0, 30.0))
    lines: list[tuple[float, list[str]]] = []
    poller = Poller(board, on_change=lambda card, change: change.log and lines.append((time.monotonic(),
                                                                                        list(card.log))))
    poller.start()
    card = None
    try:
        card = board.start(SPEC)
        wait_until(lambda: card.log and card.log[-1] == "started", 30, "the job's first line")
        time.sleep(0.5)  # the first poll after the wake-up is done: the next one is 30 s away
        assert card.next_poll - board.clock() > 25
        written = time.monotonic()
        with open(tmp_path / "home" / "jobs" / card.name / "log.txt", "a") as log:
            log.write("epoch 1 of 3\n")
        seen = wait_until(lambda: next((at for at, log in lines if log[-1:] == ["epoch 1 of 3"]), None), 5,
                          "the new line on the card")
        assert seen - written < 1.0
    finally:
        poller.stop()
        if card is not None:
            local.stop_job(card.name)
    assert not poller._thread.is_alive() and not poller._watcher.is_alive()
    assert poller.watch_failures == 0 and board.watching
    assert not [t for t in threading.enumerate() if t.name.startswith("amc-dashboard")]


class UnwatchableBackend(FakeBackend):
    """Claims the capability, but the system refuses the watch (as inotify does past its limit)."""

    def __init__(self):
        super().__init__()
        self.watches = 0

    def watch_logs(self, names, stop, timeout):
        self.watches += 1
        raise OSError(28, "OS file watch limit reached")


def test_when_watching_fails_the_cards_are_polled_as_before_and_watching_retried_later():
    fake = UnwatchableBackend()
    board = JobBoard(lambda: fake, poll_seconds=(0.05, 0.05))
    changed = threading.Event()
    poller = Poller(board, on_change=lambda card, change: change.log and changed.set(),
                    watch_timeout=0.05, watch_retry=0.2)
    poller.start()
    try:
        card = board.start(SPEC)
        fake.logs[card.name].append("polled, not watched")
        assert changed.wait(2.0) and list(card.log) == ["polled, not watched"]
        time.sleep(0.5)
    finally:
        poller.stop()
    assert 1 <= fake.watches == poller.watch_failures <= 5  # retried every 0.2 s, not in a tight loop
    assert not board.watching  # the cards back off no further than when nothing watches them
    assert not poller._watcher.is_alive()


def test_the_jobs_model_imports_no_widgets():
    assert_imports_no_widgets("amc_widgets.ui.models.jobs")


def card_view(card, **callbacks):
    """A card's view with callbacks that do nothing, but those given."""
    from amc_widgets.ui.views.jobs import JobCardView

    nothing = {name: (lambda _name: None) for name in ("on_stop", "on_download", "on_close", "on_deploy", "on_results")}
    return JobCardView(card, **{**nothing, **callbacks})

"""The dashboard's widget-free models: job board and poller (fake backend, injected clock), training
form, connection, datasets (real local backend), text helpers and the ONNX preview maths."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from amc_widgets.backends.base import DownloadResult, LogChunk
from amc_widgets.backends.local import LocalBackend
from amc_widgets.core.dataset_check import DatasetError
from amc_widgets.core.hyperparameters import HyperparameterError, decode_hyperparameters
from amc_widgets.core.instances import BATCH_PER_DEVICE, CATALOG
from amc_widgets.core.jobs import (
    COMPLETED,
    IN_PROGRESS,
    STOPPING,
    TERMINAL_STATUSES,
    JobDescription,
    JobNotFoundError,
    JobSpec,
)
from amc_widgets.core.metrics import format_metrics_line, parse_metrics
from amc_widgets.core.parameters import preset_values
from amc_widgets.ui.models import connection as connection_module
from amc_widgets.ui.models import dataset as dataset_module
from amc_widgets.ui.models.connection import AWS, AWS_UNAVAILABLE, LOCAL, ConnectionModel, NotConnectedError
from amc_widgets.ui.models.dataset import DatasetModel
from amc_widgets.ui.models.jobs import (
    BACKOFF,
    ERROR_RETRY_SECONDS,
    LOCAL_POLL_SECONDS,
    MAX_LOG_LINES,
    REMOTE_POLL_SECONDS,
    JobBoard,
    compare_series,
)
from amc_widgets.ui.models.parameters import INSTANCE_ERROR_KEY, LOCAL_INSTANCE, ParametersModel
from amc_widgets.ui.poller import Poller
from amc_widgets.core.onnx_model import PALETTE, Detection, class_names_of, decode_detections, letterbox, nms, predict_image
from amc_widgets.core.errors import redact
from amc_widgets.core.text import clean_log_line, human_bytes, human_duration, log_html
from tests.onnx_fakes import tiny_detector

SPEC = JobSpec(dataset="solder", hyperparameters={"model": "yolov5n", "epochs": "3"})
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"


# --- fakes ------------------------------------------------------------------------------------

class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeBackend:
    """In-memory Backend: jobs and logs the test writes, call counts, failures on demand."""

    def __init__(self, name: str = "local"):
        self.name, self.user = name, "ana"
        if name == "local":
            self.home = Path("fake-workspace")  # jobs "run here": the RunsJobsHere capability
        self.jobs: dict[str, JobDescription] = {}
        self.logs: dict[str, list[str]] = {}
        self.calls: Counter = Counter()
        self.fail: Exception | None = None  # raised by describe_job
        self.log_fail: Exception | None = None  # raised by read_logs
        self.hold_log = False  # a terminal job whose log is still arriving (CloudWatch lag)
        self.download_error: Exception | None = None
        self.onnx_bytes: bytes | None = None

    def add_job(self, name: str, created: float, status: str = IN_PROGRESS, **kw) -> JobDescription:
        self.jobs[name] = JobDescription(name=name, status=status, secondary_status="Training", dataset="solder",
                                         instance_type=kw.pop("instance_type", "local"),
                                         instance_count=kw.pop("instance_count", 1),
                                         hyperparameters={}, created=created, **kw)
        self.logs[name] = []
        return replace(self.jobs[name])

    def finish(self, name: str, status: str = COMPLETED) -> None:
        self.jobs[name].status = status

    def start_job(self, spec: JobSpec) -> JobDescription:
        return self.add_job(spec.name or f"job-{len(self.jobs) + 1}", created=float(len(self.jobs) + 1))

    def describe_job(self, name: str) -> JobDescription:
        self.calls["describe"] += 1
        if self.fail:
            raise self.fail
        return replace(self.jobs[name])

    def list_jobs(self) -> list[JobDescription]:
        return sorted((replace(j) for j in self.jobs.values()), key=lambda j: j.created, reverse=True)

    def stop_job(self, name: str) -> JobDescription:
        if self.jobs[name].status == IN_PROGRESS:
            self.jobs[name].status = STOPPING
        return replace(self.jobs[name])

    def read_logs(self, name: str, cursor=None) -> LogChunk:
        self.calls["logs"] += 1
        if self.log_fail:
            raise self.log_fail
        lines, start = self.logs[name], cursor or 0
        return LogChunk(list(lines[start:]), len(lines),
                        finished=self.jobs[name].status in TERMINAL_STATUSES and not self.hold_log)

    def read_metrics(self, name: str):
        self.calls["metrics"] += 1
        return parse_metrics(self.logs[name])

    def download_outputs(self, name: str, dest: Path, progress=None) -> DownloadResult:
        if self.download_error:
            raise self.download_error
        folder = Path(dest) / name
        if folder.exists():
            raise FileExistsError(f"{folder} already exists and is not empty")
        (folder / "model").mkdir(parents=True)
        onnx = None
        if self.onnx_bytes is not None:
            onnx = folder / "model" / "best.onnx"
            onnx.write_bytes(self.onnx_bytes)
        for done in (50, 100):
            if progress:
                progress(done, 100)
        return DownloadResult(folder=folder, onnx=onnx, files=[onnx] if onnx else [])


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


def test_metrics_are_read_only_when_a_metrics_line_arrives(board, fake):
    card = board.start(SPEC)
    fake.logs[card.name].append("loading dataset")
    (_, change), = board.poll_due()
    assert not change.metrics and fake.calls["metrics"] == 0 and card.epoch_text() == "-"
    fake.logs[card.name].append("12:00:01 " + format_metrics_line({"epoch": 1, "epochs": 3, "mAP50": 0.5}))
    card.next_poll = 0
    (_, change), = board.poll_due()
    assert change.metrics and fake.calls["metrics"] == 1
    assert card.metrics["mAP50"].tolist() == [0.5] and card.epoch_text() == "1 / 3"
    fake.logs[card.name].append("validating")
    card.next_poll = 0
    (_, change), = board.poll_due()
    assert change.log and not change.metrics and fake.calls["metrics"] == 1


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


def test_restore_adds_only_jobs_not_on_the_board(board, fake):
    mine = board.start(SPEC)
    fake.add_job("elsewhere-old", created=0.5)
    fake.add_job("elsewhere-new", created=50.0, status=COMPLETED)
    restored = board.restore()
    assert sorted(card.name for card in restored) == ["elsewhere-new", "elsewhere-old"]
    assert board.card(mine.name) is mine
    assert [card.name for card in board.cards()] == ["elsewhere-new", mine.name, "elsewhere-old"]
    assert board.restore() == []


def test_card_header_describes_the_job(board, fake):
    fake.add_job("remote", created=1000.0 - 3725, instance_type="ml.g4dn.12xlarge", instance_count=2, spot=True)
    card, = board.restore()
    header = card.header()
    assert header["Instance"] == "2 x ml.g4dn.12xlarge (spot)"
    assert header["Duration"] == "1:02:05"  # wall clock 1000, created 3725 s before
    assert header["Status"] == IN_PROGRESS and header["Billable"] == "-" and header["Epoch"] == "-"


def test_download_error_stays_on_the_card(board, fake, tmp_path):
    card = board.start(SPEC)
    fake.download_error = JobNotFoundError(f"Training job '{card.name}' has no outputs (yet)")
    states = []
    result = board.download(card.name, tmp_path, None, lambda c: states.append(c.download.running))
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
    first = board.download(card.name, tmp_path / "dl", image, lambda c: fractions.append(c.download.fraction))
    assert card.download.error == "" and first.onnx == tmp_path / "dl" / card.name / "model" / "best.onnx"
    assert 0.5 in fractions and fractions[-1] == 1.0
    assert card.download.preview.is_file() and "1 object(s)" in card.download.preview_note
    again = board.download(card.name, tmp_path / "dl", None, lambda c: None)  # backend: FileExistsError
    assert card.download.error == ""
    assert again.folder == first.folder and again.onnx == first.onnx and first.onnx in again.files
    assert "No validation image" in card.download.preview_note


def test_download_over_an_incomplete_earlier_one_is_an_error(board, fake, tmp_path):
    card = board.start(SPEC)
    (tmp_path / card.name).mkdir()
    (tmp_path / card.name / "partial.tmp").write_bytes(b"x")
    assert board.download(card.name, tmp_path, None, lambda c: None) is None
    assert "already exists" in card.download.error


def test_download_without_onnx_explains_why_there_is_no_preview(board, fake, tmp_path):
    card = board.start(SPEC)
    result = board.download(card.name, tmp_path, tmp_path / "unused.png", lambda c: None)
    assert result.onnx is None and card.download.preview is None
    assert "no ONNX model" in card.download.preview_note and card.download.error == ""


def test_compare_series_takes_jobs_that_reached_an_epoch(board, fake):
    with_metrics, without = board.start(SPEC), board.start(SPEC)
    fake.logs[with_metrics.name] += [format_metrics_line({"epoch": e, "epochs": 2, "mAP50": e / 4}) for e in (1, 2)]
    board.poll_due()
    assert compare_series([with_metrics, without], "mAP50") == {with_metrics.name: ([1, 2], [0.25, 0.5])}


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
    """With no card the thread sleeps on wakeup; stop() must still end it at once."""
    poller = Poller(JobBoard(lambda: fake), on_change=lambda *_: None)
    poller.start()
    time.sleep(0.05)
    started = time.monotonic()
    poller.stop()
    assert time.monotonic() - started < 1.0
    assert not poller._thread.is_alive()


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


# --- training form ----------------------------------------------------------------------------

def test_bad_value_is_kept_with_its_problem_and_a_fix_clears_it():
    params = ParametersModel()
    heard = []
    params.subscribe(heard.append)
    problem = params.set_value("epochs", "ten")
    assert problem == params.errors["epochs"] and "whole number" in problem and "ten" in problem
    assert params.value("epochs") == "ten" and heard == ["epochs"]
    assert ">= 1" in params.set_value("epochs", "0")
    assert "auto" in params.set_value("device", "gpu")
    assert params.set_value("epochs", "30") is None and "epochs" not in params.errors
    assert params.set_value("device", "0, 1") is None and params.errors == {}


def test_preset_resets_its_keys_and_their_errors():
    params = ParametersModel()
    params.set_value("lrf", "lots")
    params.apply_preset("scratch-med")
    assert "lrf" not in params.errors and params.value("lrf") == preset_values("scratch-med")["lrf"]


def test_auto_batch_follows_instances_until_the_user_types_one():
    params = ParametersModel(local=True)
    assert params.value("batch") == BATCH_PER_DEVICE
    params.set_local(False)
    assert params.instance_type == "ml.g4dn.xlarge" and params.value("batch") == 16  # 1 T4
    assert params.set_instance("ml.g5.12xlarge", 2, False) is None
    assert params.value("batch") == 16 * 4 * 2  # 4 A10G per instance, 2 instances
    params.set_value("batch", "24")
    params.set_instance("ml.p3.16xlarge", 1, False)
    assert not params.batch_auto and params.value("batch") == "24"
    params.set_batch_auto(True)
    assert params.value("batch") == 16 * 8  # 8 V100
    params.set_instance("ml.m5.xlarge", 1, False)
    assert params.value("batch") == 16  # a CPU instance counts as one device


def test_several_instances_are_refused_on_cpu_and_locally():
    params = ParametersModel(local=False)
    problem = params.set_instance("ml.m5.xlarge", 2, False)
    assert "GPU" in problem and "ml.m5.xlarge" in problem and params.errors[INSTANCE_ERROR_KEY] == problem
    assert not params.allows_several_instances() and params.cost() is None
    with pytest.raises(ValueError, match="GPU"):
        params.job_spec("solder")
    assert params.set_instance("ml.m5.xlarge", 1, False) is None and INSTANCE_ERROR_KEY not in params.errors
    assert "did you mean ml.g4dn.xlarge" in params.set_instance("ml.g4dn.xlarg", 1, False)
    params.set_local(True)
    assert params.allows_several_instances() is False
    assert "must be 1" in params.set_instance(LOCAL_INSTANCE, 2, False)


def test_job_spec_names_every_bad_field_and_needs_a_dataset():
    params = ParametersModel()
    with pytest.raises(ValueError, match="dataset"):
        params.job_spec("")
    params.set_value("epochs", "x")
    params.set_value("lr0", "5")
    with pytest.raises(HyperparameterError) as caught:
        params.job_spec("solder")
    assert set(caught.value.problems) == {"epochs", "lr0"}
    assert "epochs" in str(caught.value) and "lr0" in str(caught.value)


def test_job_spec_carries_the_form(tmp_path):
    params = ParametersModel(local=False)
    params.set_value("epochs", "12")
    params.set_instance("ml.g4dn.12xlarge", 2, True, max_hours=5)
    spec = params.job_spec("solder")
    assert (spec.dataset, spec.instance_type, spec.instance_count, spec.spot, spec.max_runtime_hours) == (
        "solder", "ml.g4dn.12xlarge", 2, True, 5)
    assert all(isinstance(v, str) for v in spec.hyperparameters.values())
    decoded = decode_hyperparameters(spec.hyperparameters)
    assert decoded["epochs"] == 12 and decoded["batch"] == 16 * 4 * 2


def test_save_refuses_to_overwrite_and_load_round_trips(tmp_path):
    params = ParametersModel()
    params.set_value("epochs", "7")
    params.set_value("lr0", "0.02")
    params.set_value("model", "yolov5m")
    path = params.save(tmp_path / "preset.yaml")
    with pytest.raises(FileExistsError):
        params.save(tmp_path / "preset.yaml")
    params.set_value("epochs", "8")
    params.save(tmp_path / "preset.yaml", overwrite=True)
    with pytest.raises(ValueError):
        params.save("  ")
    loaded = ParametersModel()
    loaded.load(path)
    assert (loaded.value("epochs"), loaded.value("lr0"), loaded.value("model")) == (8, 0.02, "yolov5m")
    assert not loaded.batch_auto and loaded.errors == {}


def test_save_refuses_a_form_with_errors(tmp_path):
    params = ParametersModel()
    params.set_value("imgsz", "100")
    with pytest.raises(HyperparameterError, match="imgsz"):
        params.save(tmp_path / "bad.yaml")
    assert not (tmp_path / "bad.yaml").exists()


def test_cost_is_none_locally_and_lower_with_spot():
    params = ParametersModel(local=True)
    assert params.cost() is None
    params.set_local(False)
    params.set_instance("ml.g4dn.xlarge", 1, False, max_hours=3)
    on_demand = params.cost()
    assert on_demand.on_demand == pytest.approx(CATALOG["ml.g4dn.xlarge"].price_per_hour * 3) and on_demand.spot is None
    params.set_instance("ml.g4dn.xlarge", 1, True)
    with_spot = params.cost()
    assert 0 < with_spot.spot < with_spot.on_demand == pytest.approx(on_demand.on_demand)
    params.set_instance("ml.g4dn.xlarge", 1, True, max_hours=0)
    assert "hours" in params.errors[INSTANCE_ERROR_KEY] and params.cost() is None


# --- connection -------------------------------------------------------------------------------

def aws_stub(test_error: Exception | None = None, connect_error: Exception | None = None,
             bucket_exists: bool = False) -> SimpleNamespace:
    """A stand-in for amc_widgets.backends.sagemaker recording how it was called."""
    info = SimpleNamespace(account="123456789012", arn="arn:aws:iam::123456789012:user/ana", user_name="ana",
                           region="eu-west-1", bucket="sagemaker-eu-west-1-123456789012",
                           bucket_exists=bucket_exists, roles=["arn:aws:iam::123456789012:role/SageMaker"])
    calls = []

    class SageMakerBackend:
        name = "sagemaker"

        def __init__(self, creds, role):
            self.user, self.creds, self.role = "ana", creds, role

        @staticmethod
        def test_connection(creds):
            calls.append(("test", creds))
            if test_error:
                raise test_error
            return info

        @classmethod
        def connect(cls, creds, role_arn, create_bucket=False):
            calls.append(("connect", creds, role_arn, create_bucket))
            if connect_error:
                raise connect_error
            return cls(creds, role_arn)

    return SimpleNamespace(AwsCredentials=lambda **kw: SimpleNamespace(**kw), SageMakerBackend=SageMakerBackend,
                           info=info, calls=calls)


def aws_model(module) -> ConnectionModel:
    model = ConnectionModel(local_factory=lambda: pytest.fail("local backend not expected"),
                            aws_loader=lambda: module)
    model.set_kind(AWS)
    model.aws.access_key_id, model.aws.secret_access_key, model.aws.session_token = " AKIAEXAMPLE ", SECRET, TOKEN
    model.aws.region = "eu-west-1"
    return model


def everything_shown(model: ConnectionModel) -> str:
    return " ".join([model.error, model.message, json.dumps(model.summary())])


def test_local_connect_summary_has_the_workspace_and_no_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("AMC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AMC_USER", "ana")
    monkeypatch.delenv(connection_module.CONTAINER_COMMAND_ENV, raising=False)
    model = ConnectionModel()
    model.aws.secret_access_key = SECRET
    assert model.summary() == {"Status": "Not connected"}
    backend = model.connect()
    assert model.connected and model.is_local and model.require_backend() is backend and model.kind == LOCAL
    assert model.summary() == {"Backend": "Local (this machine)", "User": "ana", "Workspace": str(tmp_path / "home")}
    assert SECRET not in everything_shown(model)


def test_failed_aws_test_never_shows_the_secret():
    module = aws_stub(test_error=RuntimeError(f"SignatureDoesNotMatch for {SECRET} (token {TOKEN})"))
    model = aws_model(module)
    heard = []
    model.subscribe(heard.append)
    assert model.test() is None
    assert model.error.startswith("Connection test failed") and "SignatureDoesNotMatch" in model.error
    assert "****" in model.error and SECRET not in model.error and TOKEN not in model.error
    assert heard == ["error"]
    _, creds = module.calls[0]
    assert creds.access_key_id == "AKIAEXAMPLE" and creds.region == "eu-west-1"


def test_failed_aws_connect_never_shows_the_secret():
    module = aws_stub(connect_error=RuntimeError(f"AccessDenied: key {SECRET} may not assume the role"))
    model = aws_model(module)
    model.aws.role_arn = module.info.roles[0]
    assert model.connect() is None and not model.connected
    assert "AccessDenied" in model.error and SECRET not in everything_shown(model)


def test_aws_test_then_connect_clears_the_secret_from_the_form():
    module = aws_stub(bucket_exists=False)
    model = aws_model(module)
    info = model.test()
    assert info is module.info and model.aws.role_arn == module.info.roles[0]
    assert module.info.bucket in model.message and model.error == ""
    backend = model.connect()
    assert backend is model.backend and model.connected and not model.is_local
    _, creds, role, create_bucket = module.calls[-1]
    assert (creds.secret_access_key, role, create_bucket) == (SECRET, module.info.roles[0], True)
    assert model.aws.secret_access_key == "" and model.aws.session_token == ""
    assert model.aws.access_key_id.strip() == "AKIAEXAMPLE"
    summary = model.summary()
    assert summary["Account"] == "123456789012" and summary["Bucket"] == module.info.bucket
    assert SECRET not in everything_shown(model) and TOKEN not in everything_shown(model)


def connection_form(module) -> "ConnectionView":
    """The Connection panel on an AWS model, with the secrets typed into its password fields."""
    from amc_widgets.ui.views.connection import ConnectionView

    view = ConnectionView(aws_model(module))
    view.model.aws.forget_secrets()  # as the user sees it: nothing typed yet
    view.access_key.input.value, view.region.input.value = "AKIAEXAMPLE", "eu-west-1"
    view.secret.input.value, view.token.input.value = SECRET, TOKEN
    return view


def test_a_failed_test_empties_the_secret_fields_and_forgets_the_secret():
    module = aws_stub(test_error=RuntimeError(f"SignatureDoesNotMatch for {SECRET}"))
    view = connection_form(module)
    view.test_button.click()
    assert module.calls[-1][1].secret_access_key == SECRET  # it was used
    assert (view.secret.input.value, view.token.input.value) == ("", "")
    assert not view.model.holds_secret and view.model.aws.session_token == ""
    assert "SignatureDoesNotMatch" in view.status.value and SECRET not in view.status.value


def test_a_successful_test_empties_the_fields_and_connect_uses_the_tested_secret():
    module = aws_stub()
    view = connection_form(module)
    view.test_button.click()
    assert (view.secret.input.value, view.token.input.value) == ("", "")
    assert view.model.holds_secret and "kept in memory" in view.secret.input.placeholder
    view.connect_button.click()  # the fields are empty now: the secret held in memory is used
    _, creds, role, _ = module.calls[-1]
    assert (creds.secret_access_key, creds.session_token, role) == (SECRET, TOKEN, module.info.roles[0])
    assert view.model.connected and not view.model.holds_secret and view.secret.input.placeholder == ""
    assert (view.secret.input.value, view.token.input.value) == ("", "")


def test_a_failed_connect_empties_the_secret_fields():
    module = aws_stub(connect_error=RuntimeError("AccessDenied"))
    view = connection_form(module)
    view.role.input.value = module.info.roles[0]
    view.connect_button.click()
    assert not view.model.connected and "AccessDenied" in view.status.value
    assert (view.secret.input.value, view.token.input.value) == ("", "") and not view.model.holds_secret


def test_close_forgets_backend_and_secret():
    module = aws_stub()
    model = aws_model(module)
    model.aws.role_arn = module.info.roles[0]
    model.connect()
    model.aws.secret_access_key = SECRET  # typed again after connecting
    heard = []
    model.subscribe(heard.append)
    model.close()
    assert model.backend is None and model.info is None and not model.connected
    assert model.aws.secret_access_key == "" and model.aws.session_token == ""
    assert model.summary() == {"Status": "Not connected"} and heard == ["closed"]
    with pytest.raises(NotConnectedError, match="Not connected"):
        model.require_backend()


def test_missing_role_arn_is_a_clear_message():
    module = aws_stub()
    model = aws_model(module)
    assert model.connect() is None
    assert "IAM role" in model.error and not model.connected
    assert not any(call[0] == "connect" for call in module.calls)


def test_aws_unavailable_when_the_module_cannot_be_imported():
    def missing():
        raise ImportError("No module named 'boto3'")

    model = ConnectionModel(local_factory=lambda: None, aws_loader=missing)
    assert model.aws_available is False
    model.set_kind(AWS)
    assert model.test() is None and model.error == AWS_UNAVAILABLE
    assert model.connect() is None and model.error == AWS_UNAVAILABLE
    with pytest.raises(ValueError, match="Unknown backend"):
        model.set_kind("azure")


# --- datasets (real local backend) ------------------------------------------------------------

@pytest.fixture()
def datasets(tmp_path, monkeypatch) -> DatasetModel:
    monkeypatch.setenv("AMC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AMC_USER", "ana")
    monkeypatch.delenv(connection_module.CONTAINER_COMMAND_ENV, raising=False)
    connection = ConnectionModel()
    connection.connect()
    (tmp_path / "uploads").mkdir()
    return DatasetModel(connection, upload_dir=tmp_path / "uploads")


def test_check_store_and_list_a_dataset(datasets, small_dataset):
    with pytest.raises(ValueError, match="Check a dataset first"):
        datasets.store("solder")
    with pytest.raises(ValueError):
        datasets.check("   ")
    report = datasets.check(small_dataset)
    assert report.ok and datasets.suggested_name()
    names, counts = datasets.histogram()
    assert names == report.names and sum(counts) == sum(split.instances for split in report.splits.values())
    heard = []
    datasets.subscribe(heard.append)
    info = datasets.store("solder")
    assert info.name == "solder" and datasets.names() == ["solder"] and "datasets" in heard
    assert Path(info.location).is_relative_to(Path(datasets.connection.backend.home))
    datasets.delete("solder")
    assert datasets.names() == []


def test_store_refuses_a_dataset_with_errors(datasets, dataset_copy):
    (dataset_copy / "train" / "labels" / "board_train_0000.txt").write_text("9 0.5 0.5 0.1 0.1\n")
    report = datasets.check(dataset_copy)
    assert not report.ok
    with pytest.raises(DatasetError, match="errors"):
        datasets.store("broken")
    assert datasets.refresh() == []


def test_browser_upload_refuses_non_zip_and_too_big(datasets, monkeypatch):
    with pytest.raises(ValueError, match=r"\.zip"):
        datasets.save_browser_upload("dataset.tar.gz", b"x")
    monkeypatch.setattr(dataset_module, "UPLOAD_LIMIT_BYTES", 1024)
    with pytest.raises(ValueError, match="copy it to the server"):
        datasets.save_browser_upload("big.zip", b"x" * 1025)
    assert list(datasets.upload_dir.iterdir()) == []


@pytest.mark.parametrize("filename", ["../../x.zip", "/etc/cron.d/x.zip", "..\\..\\x.zip", "my boards (v2).ZIP"])
def test_browser_upload_name_stays_inside_the_upload_folder(datasets, filename):
    path = datasets.save_browser_upload(filename, b"PK\x05\x06" + b"\0" * 18)
    assert path.parent == datasets.upload_dir
    assert path.resolve().is_relative_to(datasets.upload_dir.resolve())
    assert set(path.name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    assert path.read_bytes().startswith(b"PK")


def test_uploaded_zip_checks_stores_and_gives_a_validation_image(datasets, small_dataset, tmp_path):
    archive = Path(shutil.make_archive(str(tmp_path / "boards"), "zip", small_dataset))
    path = datasets.save_browser_upload("boards.zip", archive.read_bytes())
    assert datasets.check(path).ok
    datasets.store("boards")
    assert datasets.names() == ["boards"]
    image = datasets.validation_image("boards")
    location = Path(datasets.datasets[0].location)
    assert image is not None and image.is_file() and image.is_relative_to(location)
    assert "val" in image.relative_to(location).parts
    assert datasets.validation_image("unknown") is None  # the checked path is a zip, not a folder


def test_validation_image_from_the_folder_checked_here(datasets, small_dataset):
    datasets.check(small_dataset)
    image = datasets.validation_image("not-stored")
    assert image is not None and image.is_relative_to(small_dataset) and "val" in image.parts


def test_datasets_need_a_connection(tmp_path):
    model = DatasetModel(ConnectionModel(local_factory=lambda: None), upload_dir=tmp_path)
    with pytest.raises(NotConnectedError, match="Not connected"):
        model.refresh()


# --- text helpers -----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, shown", [
    ("\x1b[1;31mERROR\x1b[0m disk full\n", "ERROR disk full"),
    ("\x1b]0;window title\x07hello", "hello"),
    ("epoch 1  10%\repoch 1  50%\repoch 1 100%\r\n", "epoch 1 100%"),
    ("\r\n", ""),
    ("col\tumns\x07\x00", "col\tumns"),
])
def test_clean_log_line(raw, shown):
    assert clean_log_line(raw) == shown


def test_log_html_escapes_every_line_in_order():
    page = log_html([clean_log_line("\x1b[31m<script>alert('x')</script>\x1b[0m"), "a & b"])
    assert "<script>" not in page and "&lt;script&gt;" in page and "\x1b" not in page
    assert page.index("&lt;script&gt;") < page.index("a &amp; b")


@pytest.mark.parametrize("seconds, text", [(None, "-"), (0, "0:00:00"), (59.9, "0:00:59"), (3725, "1:02:05"),
                                           (90061, "25:01:01")])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


@pytest.mark.parametrize("size, text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KB"), (5 * 2**20, "5.0 MB"),
                                        (3 * 2**30, "3.0 GB"), (2**41, "2048.0 GB")])
def test_human_bytes(size, text):
    assert human_bytes(size) == text


def test_redact_replaces_every_secret_and_ignores_empty_ones():
    text = f"key={SECRET} token={TOKEN} again {SECRET}"
    assert redact(text, [SECRET, "", None, TOKEN]) == "key=**** token=**** again ****"
    assert redact("nothing here", ["", None]) == "nothing here"


# --- preview maths ----------------------------------------------------------------------------

def test_nms_keeps_the_best_of_overlapping_boxes_and_disjoint_ones():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.7], dtype=np.float32)
    assert nms(boxes, scores, 0.45) == [1, 2]  # IoU of the first two is 81/119
    assert nms(boxes, scores, 0.7) == [1, 0, 2]


def test_decode_detections_is_class_aware_and_drops_low_scores():
    rows = [  # cx, cy, w, h, score of class 0, score of class 1
        [100, 50, 20, 10, 0.10, 0.80],
        [101, 50, 20, 10, 0.05, 0.60],  # same object, same class, worse: suppressed
        [100, 50, 20, 10, 0.70, 0.00],  # same box, other class: kept
        [300, 300, 30, 30, 0.20, 0.10],  # below 0.25
    ]
    output = np.asarray(rows, dtype=np.float32).T[None]
    assert decode_detections(output) == [Detection((90.0, 45.0, 110.0, 55.0), pytest.approx(0.8), 1),
                                         Detection((90.0, 45.0, 110.0, 55.0), pytest.approx(0.7), 0)]
    assert [d.score for d in decode_detections(output, max_detections=1)] == [pytest.approx(0.8)]
    assert decode_detections(output, conf=0.9) == []


def test_letterbox_keeps_the_aspect_ratio_and_pads_with_grey():
    tensor, scale, pad = letterbox(Image.new("RGB", (200, 100), (255, 0, 0)), (64, 64))
    assert tensor.shape == (1, 3, 64, 64) and tensor.dtype == np.float32
    assert scale == pytest.approx(64 / 200) and pad == (0, 16)
    red, grey = [1.0, 0.0, 0.0], [114 / 255] * 3
    assert tensor[0, :, 15, 32].tolist() == pytest.approx(grey) and tensor[0, :, 48, 32].tolist() == pytest.approx(grey)
    assert tensor[0, :, 16, 0].tolist() == pytest.approx(red) and tensor[0, :, 47, 63].tolist() == pytest.approx(red)
    _, scale, pad = letterbox(Image.new("RGB", (100, 100)), (32, 64))  # (h, w): a wide model input
    assert scale == pytest.approx(0.32) and pad == (16, 0)


def test_predict_image_maps_boxes_back_to_the_original_image(tmp_path):
    """A 128x64 image in a 64x64 model: scale 1/2, 16 px grey bands above and below."""
    model = tiny_detector(tmp_path / "m.onnx", [[32, 32, 20, 10, 0.1, 0.9], [10, 10, 4, 4, 0.1, 0.1]])
    image = tmp_path / "board.png"
    Image.new("RGB", (128, 64), (0, 0, 0)).save(image)
    drawn, detections = predict_image(model, image)
    assert detections == [Detection((44.0, 22.0, 84.0, 42.0), pytest.approx(0.9), 1)]
    assert drawn.size == (128, 64)
    assert drawn.getpixel((44, 32)) == PALETTE[1]  # the box's left edge, in class 1's colour
    assert drawn.getpixel((64, 32)) == (0, 0, 0)  # inside the box: untouched


def test_class_names_come_from_the_model_metadata():
    def session(meta):
        return SimpleNamespace(get_modelmeta=lambda: SimpleNamespace(custom_metadata_map=meta))

    assert class_names_of(session({"names": "{0: 'good', 1: 'bridge'}"}), 3) == ["good", "bridge", "class 2"]
    assert class_names_of(session({"names": "not python {"}), 2) == ["class 0", "class 1"]
    assert class_names_of(session({}), 1) == ["class 0"]

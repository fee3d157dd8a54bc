"""Following CloudWatch logs over long jobs, against moto made as strict as AWS by the harness:
expiring tokens, Live Tail sessions that time out or sample, throttling, and the calls a poll costs."""

from __future__ import annotations

import threading
import time

import pytest

from amc_widgets.backends.aws_session import describe_connection
from amc_widgets.backends.cloudwatch_logs import SAMPLED_NOTE
from amc_widgets.backends.sagemaker import SageMakerBackend
from amc_widgets.core.container_contract import TRAINING_LOG_GROUP
from bench.log_api_calls import CallCounter, measure
from tests.dashboard_fakes import Clock
from tests.sagemaker_harness import (
    REGION,
    TOKEN_LIFETIME_SECONDS,
    MotoServer,
    StrictLogs,
    Throttle,
    create_running_job,
    hold_job,
    moto_client_factory,
    write_log,
)

ROLE_ARN = "arn:aws:iam::123456789012:role/amc/AmcLogs"


@pytest.fixture(scope="module")
def moto():
    with MotoServer() as server:
        moto_client_factory(server.endpoint)("logs").create_log_group(logGroupName=TRAINING_LOG_GROUP)
        yield server


@pytest.fixture(scope="module")
def info(moto):
    client = moto_client_factory(moto.endpoint)
    client("s3").create_bucket(Bucket=describe_connection(client, REGION).bucket)
    return describe_connection(client, REGION)


@pytest.fixture()
def backend(moto, info) -> SageMakerBackend:
    """A backend with clients of its own, so the hooks a test attaches stay in that test."""
    return SageMakerBackend(moto_client_factory(moto.endpoint), info, ROLE_ARN, image_uri="logs:test",
                            min_poll_seconds=0)


@pytest.fixture()
def writer(moto):
    """The hosts' own client, which writes the job's log."""
    return moto_client_factory(moto.endpoint)("logs")


def read_all(backend, name, cursor=None) -> tuple[list[str], object]:
    lines, more = [], True
    while more:
        chunk = backend.read_logs(name, cursor)
        lines, cursor, more = lines + chunk.lines, chunk.cursor, chunk.more
    return lines, cursor


def test_a_quiet_host_whose_token_expired_goes_on_without_gap_or_repeat(backend, writer):
    """Tokens expire after 24 h and the end of a stream hands back the same one, so a host quiet for a
    day holds an expired token: its next lines come by a seek to the last event's timestamp, and the
    events at that very millisecond already read are not repeated."""
    clock = Clock(1000.0)
    strict = StrictLogs(clock).attach(backend.logs)
    create_running_job(backend, "amc-quiet", instance_count=2)
    t = int(time.time() * 1000)
    write_log(writer, "amc-quiet/algo-1-1", ["a1", "a2", "a3"], [t, t + 1, t + 1])
    write_log(writer, "amc-quiet/algo-2-1", ["b1"], [t])
    first = backend.read_logs("amc-quiet")
    assert first.lines == ["[algo-1] a1", "[algo-2] b1", "[algo-1] a2", "[algo-1] a3"]
    clock.now += 3600
    assert backend.read_logs("amc-quiet", first.cursor).lines == []  # quiet: the same tokens come back
    clock.now += TOKEN_LIFETIME_SECONDS  # a day later
    write_log(writer, "amc-quiet/algo-1-1", ["a4", "a5"], [t + 1, t + 2])
    later = backend.read_logs("amc-quiet", first.cursor)
    assert strict.expired >= 1  # the old token was refused, as AWS refuses it
    assert later.lines == ["[algo-1] a4", "[algo-1] a5"]
    assert backend.read_logs("amc-quiet", later.cursor).lines == []
    write_log(writer, "amc-quiet/algo-2-1", ["b2"], [t + 3])
    assert backend.read_logs("amc-quiet", later.cursor).lines == ["[algo-2] b2"]
    assert read_all(backend, "amc-quiet")[0] == first.lines + later.lines + ["[algo-2] b2"]


def test_throttled_requests_are_absorbed_by_botocore_retries(backend, writer):
    throttle = Throttle({"GetLogEvents": 3, "DescribeLogStreams": 2, "DescribeTrainingJob": 3})
    for client in (backend.logs, backend.sm):
        throttle.attach(client)
    create_running_job(backend, "amc-throttled", instance_count=2)
    for host in (1, 2):
        write_log(writer, f"amc-throttled/algo-{host}-1", [f"host {host} line {i}" for i in range(20)])
    lines, _ = read_all(backend, "amc-throttled")
    assert len(lines) == 40 and len(set(lines)) == 40
    assert throttle.throttled["GetLogEvents"] and throttle.throttled["DescribeLogStreams"]
    assert throttle.throttled["DescribeTrainingJob"]


def test_streams_are_listed_until_every_host_has_one_again_after_a_restart_and_at_the_end(backend, writer):
    """DescribeLogStreams is throttled account-wide: it is not sent on every poll."""
    counter = CallCounter(backend.logs)
    name = "amc-hosts"
    create_running_job(backend, name, instance_count=2)
    write_log(writer, f"{name}/algo-1-1", ["one"])
    chunk = backend.read_logs(name)
    chunk = backend.read_logs(name, chunk.cursor)
    assert counter.calls["DescribeLogStreams"] == 2  # one host of two has a stream so far
    write_log(writer, f"{name}/algo-2-1", ["two"])
    chunk = backend.read_logs(name, chunk.cursor)
    assert chunk.lines == ["[algo-2] two"]
    for i in range(5):
        write_log(writer, f"{name}/algo-1-1", [f"more {i}"])
        chunk = backend.read_logs(name, chunk.cursor)
        assert chunk.lines == [f"[algo-1] more {i}"]
    assert counter.calls["DescribeLogStreams"] == 3
    # a spot interruption: every host starts again, into new streams
    hold_job(name, "InProgress", "Training", ["Starting", "Training", "Interrupted", "Starting", "Training"])
    write_log(writer, f"{name}/algo-1-2", ["restarted one"])
    chunk = backend.read_logs(name, chunk.cursor)
    write_log(writer, f"{name}/algo-2-2", ["restarted two"])
    chunk2 = backend.read_logs(name, chunk.cursor)
    assert chunk.lines + chunk2.lines == ["[algo-1] restarted one", "[algo-2] restarted two"]
    chunk = backend.read_logs(name, chunk2.cursor)
    assert counter.calls["DescribeLogStreams"] == 5
    hold_job(name, "Completed", "Completed")
    chunk = backend.read_logs(name, chunk.cursor)
    chunk = backend.read_logs(name, chunk.cursor)
    assert chunk.finished and counter.calls["DescribeLogStreams"] == 6  # once more at the end


def test_calls_per_poll_stay_flat_as_the_log_grows(moto):
    """What bench/log_api_calls.py prints, asserted: a poll costs the same at 100 and 10,000 lines,
    in requests and in bytes (today's code re-read every host's whole log on each metrics line)."""
    results = measure((100, 10_000), polls=4, lines_per_poll=10, endpoint=moto.endpoint)
    (small_calls, small_bytes), (large_calls, large_bytes) = results[100], results[10_000]
    assert sum(large_calls.values()) <= 1.1 * sum(small_calls.values())
    assert sum(large_bytes.values()) <= 1.1 * sum(small_bytes.values())
    assert large_calls["DescribeLogStreams"] == 0  # every host has its stream: no more listing


def _write_while_tailing(writer, strict, name: str, lines: list[str], every: float) -> threading.Thread:
    def run():
        while not strict.sessions:
            time.sleep(0.01)
        for line in lines:
            write_log(writer, f"{name}/algo-1-1", [line])
            time.sleep(every)
        time.sleep(0.2)
        hold_job(name, "Completed", "Completed")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_live_tail_reconnects_after_its_session_times_out_without_gap_or_repeat(backend, writer):
    """Live Tail sessions end after 3 h (SessionTimeoutException in the stream; here after 4 events):
    the next session starts from the last line pushed, each session's stream is closed, and polling
    from the returned cursor brings only the lines written after the last one pushed."""
    strict = StrictLogs(session_events=4).attach(backend.logs)
    name = "amc-tail-timeout"
    create_running_job(backend, name)
    write_log(writer, f"{name}/algo-1-1", ["before 1", "before 2"])
    history = backend.read_logs(name)
    write_log(writer, f"{name}/algo-1-1", ["between"])  # after the history was read, before Live Tail
    expected = history.lines + ["between"] + [f"live {i}" for i in range(14)]
    thread = _write_while_tailing(writer, strict, name, expected[3:], every=0.03)
    got: list[str] = []
    cursor = backend.tail_logs(name, got.append, history.cursor)
    thread.join(timeout=30)
    rest, _ = read_all(backend, name, cursor)
    assert history.lines + got + rest == expected
    assert len(strict.sessions) >= 3 and all(session.closed for session in strict.sessions)


def test_live_tail_says_when_it_samples(backend, writer):
    """Over 500 events a second Live Tail sends a sample (here over 5 per update): one line says so."""
    strict = StrictLogs(sample_above=5, update_seconds=0.2).attach(backend.logs)
    name = "amc-tail-sampled"
    create_running_job(backend, name)

    def burst():
        while not (strict.sessions and strict.sessions[0].updates):  # the history is read: Live Tail's turn
            time.sleep(0.01)
        write_log(writer, f"{name}/algo-1-1", [f"burst {i}" for i in range(12)])
        time.sleep(0.5)
        hold_job(name, "Completed", "Completed")

    thread = threading.Thread(target=burst, daemon=True)
    thread.start()
    got: list[str] = []
    backend.tail_logs(name, got.append)
    thread.join(timeout=30)
    note = SAMPLED_NOTE.format(job=name)
    assert got.count(note) == 1 and f"amc logs {name}" in note
    assert [line for line in got if line != note] == [f"burst {i}" for i in range(5)]

"""AWS calls a running job's card costs per poll, while its log grows from 100 to 10,000 lines.

A job of two hosts runs in moto (``tests/sagemaker_harness.py``: created by the backend's own
CreateTrainingJob request, held InProgress, its log written straight into moto's CloudWatch Logs).
The dashboard's model polls it (``JobCard.poll`` over ``SageMakerBackend``, as the poller thread
does) while each host writes ``--lines-per-poll`` lines between polls, one of them a metrics line
(an epoch ended, the costly case).  Every request the backend's clients send is counted through
botocore's events, per operation, with the bytes of the answers.  The peer is the same poll at the
small size: the ratio of calls per poll at ``--large`` lines to ``--small`` lines (target <= 1.1),
and of the bytes received per poll.

    .venv/bin/python bench/log_api_calls.py [--small 100] [--large 10000] [--polls 10] [--lines-per-poll 10]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from amc_widgets.backends.aws_session import describe_connection  # noqa: E402
from amc_widgets.backends.sagemaker import SageMakerBackend  # noqa: E402
from amc_widgets.core.container_contract import TRAINING_LOG_GROUP  # noqa: E402
from amc_widgets.core.metrics import format_metrics_line  # noqa: E402
from amc_widgets.ui.models.jobs import REMOTE_POLL_SECONDS, JobCard  # noqa: E402
from tests.sagemaker_harness import REGION, MotoServer, create_running_job, moto_client_factory, write_log  # noqa: E402

JOB, HOSTS = "amc-bench-log", 2
ROLE_ARN = "arn:aws:iam::123456789012:role/amc/AmcBench"
# about what ultralytics prints per batch, after the container's cleaning
LINE = "      {epoch}/300      1.2G      1.234      2.345      1.456         42        640: 100% 25/25 3.1it/s"


class CallCounter:
    """Requests sent (retries included) and bytes received, per operation, on the clients given."""

    def __init__(self, *clients):
        self.calls: Counter = Counter()
        self.bytes: Counter = Counter()
        for client in clients:
            client.meta.events.register("before-send", self._sent)
            client.meta.events.register("after-call", self._answered)

    def _sent(self, event_name: str, **_) -> None:
        self.calls[event_name.rsplit(".", 1)[-1]] += 1

    def _answered(self, http_response, model, **_) -> None:
        self.bytes[model.name] += len(http_response.content or b"")

    def reset(self) -> None:
        self.calls.clear()
        self.bytes.clear()


class GrowingLog:
    """Each host's stream, written as a training writes it: numbered lines, a metrics line per epoch."""

    def __init__(self, logs):
        self.logs, self.written, self.epoch = logs, 0, 0

    def write(self, lines_per_host: int) -> None:
        self.epoch += 1
        batch = [LINE.format(epoch=self.epoch)] * (lines_per_host - 1)
        batch.append(format_metrics_line({"epoch": self.epoch, "epochs": 300, "mAP50": 0.5}))
        for host in range(1, HOSTS + 1):
            write_log(self.logs, f"{JOB}/algo-{host}-1700000000", batch)
        self.written += lines_per_host * HOSTS


def measure(sizes: tuple[int, ...], polls: int, lines_per_poll: int,
            endpoint: str | None = None) -> dict[int, tuple[Counter, Counter]]:
    """Size -> (requests, bytes) per operation over ``polls`` polls, once the log has that many lines;
    on the moto server at ``endpoint``, or on one of its own."""
    with contextlib.ExitStack() as stack:
        if endpoint is None:
            endpoint = stack.enter_context(MotoServer()).endpoint
        client = moto_client_factory(endpoint)
        info = describe_connection(client, REGION)
        if not info.bucket_exists:
            client("s3").create_bucket(Bucket=info.bucket)
            info = describe_connection(client, REGION)
        clock = [0.0]  # the backend describes a running job at most every 10 s of this clock, as it would
        backend = SageMakerBackend(client, info, ROLE_ARN, image_uri="bench:latest", clock=lambda: clock[0])
        writer = moto_client_factory(endpoint)("logs")  # the hosts' own client: not counted
        with contextlib.suppress(writer.exceptions.ResourceAlreadyExistsException):
            writer.create_log_group(logGroupName=TRAINING_LOG_GROUP)
        create_running_job(backend, JOB, instance_count=HOSTS)
        log, card = GrowingLog(writer), JobCard(JOB, poll_seconds=REMOTE_POLL_SECONDS)
        counter = CallCounter(backend.sm, backend.logs, backend.s3)
        results = {}
        for size in sizes:
            while log.written < size:
                log.write(max(1, min(1000, (size - log.written) // HOSTS)))
            card.poll(backend, clock[0])
            while card.next_poll == clock[0]:  # a long log is read in bounded pieces, one right after another
                card.poll(backend, clock[0])
            assert card.log_lines_total == log.written and not card.error, card.error
            counter.reset()
            for _ in range(polls):
                log.write(lines_per_poll)
                clock[0] += REMOTE_POLL_SECONDS[0]
                card.poll(backend, clock[0])
            assert card.log_lines_total == log.written and int(card.metrics["epoch"].iloc[-1]) == log.epoch
            results[size] = (Counter(counter.calls), Counter(counter.bytes))
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--polls", type=int, default=10)
    parser.add_argument("--lines-per-poll", type=int, default=10, help="per host, one of them a metrics line")
    args = parser.parse_args()
    results = measure((args.small, args.large), args.polls, args.lines_per_poll)
    operations = sorted(set().union(*(calls for calls, _ in results.values())))
    print(f"{HOSTS} hosts, {args.polls} polls, {args.lines_per_poll} new lines per host per poll (one a metrics line)")
    print(f"{'log lines':>10} {'calls/poll':>10} {'KiB/poll':>9}  " + "  ".join(operations))
    calls, kib = {}, {}
    for size, (sent, received) in results.items():
        calls[size], kib[size] = sum(sent.values()) / args.polls, sum(received.values()) / args.polls / 1024
        detail = "  ".join(f"{sent[op] / args.polls:.1f}".rjust(len(op)) for op in operations)
        print(f"{size:>10} {calls[size]:>10.1f} {kib[size]:>9.1f}  {detail}")
    print(f"ratio {args.large} / {args.small} lines: calls per poll {calls[args.large] / calls[args.small]:.2f} "
          f"(target <= 1.1), bytes per poll {kib[args.large] / kib[args.small]:.2f}")


if __name__ == "__main__":
    main()
